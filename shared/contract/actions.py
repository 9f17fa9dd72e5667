"""The vocabulary of case commands: the actions an actor may request, closure outcomes, callback
ratings, the states of a requested action, the mediation rungs and the self-accepted channels. Part of the contract (docs/domain.md §3(c)):
intake validates requests against it, dispatch decides them, reporting counts them.

Only the names and their zh-CN labels live here; whether an action is legal for a case now is
dispatch's decision alone (services/dispatch/domain/lifecycle/, ``decide`` in machine.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

#: Actions people may request through ``POST /v1/cases/{id}/actions`` (dispatch's own system
#: actions — dispatch, begin_check, supervise — are not requestable).
REQUESTABLE_ACTIONS: tuple[str, ...] = (
    "accept", "reject", "file", "acknowledge", "start", "resolve", "return", "transfer",
    "request_extension", "approve_extension", "shelve", "verify_pass", "verify_fail",
    "mediation_agreement", "mediation_failed", "cancel", "self_handle", "escalate",
    "callback", "reopen", "recategorize", "merge_duplicate",
)

#: How a case ended (结案类型 by result). Every path that ends a case records one.
Outcome = Literal["resolved", "partly_resolved", "unresolved", "unfounded", "duplicate", "not_remit"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
OUTCOME_LABELS: Mapping[str, str] = MappingProxyType({
    "resolved": "已解决", "partly_resolved": "部分解决", "unresolved": "未解决",
    "unfounded": "不属实", "duplicate": "重复", "not_remit": "非职责",
})

#: The resident's rating at the callback (回访).
Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied", "unreachable"]
SATISFACTIONS: tuple[str, ...] = get_args(Satisfaction)
SATISFACTION_LABELS: Mapping[str, str] = MappingProxyType({
    "satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意",
    "unreachable": "未联系上",
})
#: Ratings that count as satisfied in 满意率 (docs/kpis.md).
SATISFIED: frozenset[str] = frozenset({"satisfied", "basically_satisfied"})

#: A requested action is ``pending`` until dispatch has decided it, then ``applied`` or ``refused``.
ActionStatus = Literal["pending", "applied", "refused"]

#: The rungs of the mediation ladder (the ``mediation_level`` of events), lowest first (docs/domain.md
#: §1.6, §3(c)7): 院落/网格 → 社区调委会 → 街道调解中心 → 联动调解. dispatch climbs it
#: (services/dispatch/domain/lifecycle/handling.py); reporting counts each rung.
MediationLevel = Literal["grid", "community", "street", "linked"]
MEDIATION_LEVELS: tuple[str, ...] = get_args(MediationLevel)
MEDIATION_LEVEL_LABELS: Mapping[str, str] = MappingProxyType({
    "grid": "院落/网格调解", "community": "社区调委会", "street": "街道调解中心", "linked": "联动调解",
})

#: Report channels dispatch accepts and files by itself (网格员上报 is verified on site; docs/domain.md
#: §3(c)): such a report counts as accepted (受理) from its report time.
AUTO_ACCEPTED_CHANNELS: frozenset[str] = frozenset({"grid_worker"})
