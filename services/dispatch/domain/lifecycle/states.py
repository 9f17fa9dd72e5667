"""The state machine's vocabulary: states, actions, which actions each state allows, the ladders
and the constants of the rules (docs/domain.md §3(c), §3(d); the package docstring says why)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.contract.actions import MEDIATION_LEVEL_LABELS

# --------------------------------------------------------------------------- states

REPORTED = "reported"
ACCEPTED = "accepted"
REJECTED = "rejected"
FILED = "filed"
DISPATCHED = "dispatched"
ACKNOWLEDGED = "acknowledged"
IN_PROGRESS = "in_progress"
RESOLVED = "resolved"
CHECKING = "checking"
CLOSED = "closed"
CANCELLED = "cancelled"
SHELVED = "shelved"
MEDIATING = "mediating"

#: All states, main path first.
STATES: tuple[str, ...] = (
    REPORTED, ACCEPTED, REJECTED, FILED, DISPATCHED, ACKNOWLEDGED, IN_PROGRESS, RESOLVED,
    CHECKING, CLOSED, CANCELLED, SHELVED, MEDIATING,
)

#: zh-CN labels of the states (docs/domain.md §3(c)).
STATE_LABELS: Mapping[str, str] = MappingProxyType({
    REPORTED: "已上报", ACCEPTED: "已受理", REJECTED: "不予受理", FILED: "已立案",
    DISPATCHED: "已派遣", ACKNOWLEDGED: "已签收", IN_PROGRESS: "处置中", RESOLVED: "已处置",
    CHECKING: "核查中", CLOSED: "已结案", CANCELLED: "已作废", SHELVED: "已挂账",
    MEDIATING: "调解中",
})

#: States that end a case. Rejected and cancelled accept no action; closed accepts only the
#: closed loop's ``callback`` and ``reopen`` (:data:`AFTER_CLOSURE_ACTIONS`).
TERMINAL_STATES: frozenset[str] = frozenset({CLOSED, REJECTED, CANCELLED})

#: States in which the disposal clock runs and 督办 applies.
SUPERVISABLE_STATES: frozenset[str] = frozenset({DISPATCHED, ACKNOWLEDGED, IN_PROGRESS, MEDIATING})

# --------------------------------------------------------------------------- actions

#: Actions taken by people (the API uses exactly these names).
USER_ACTIONS: tuple[str, ...] = (
    "accept", "reject", "file", "acknowledge", "start", "resolve", "return", "transfer",
    "request_extension", "approve_extension", "shelve", "verify_pass", "verify_fail",
    "mediation_agreement", "mediation_failed", "cancel", "self_handle",
    "callback", "reopen", "recategorize", "merge_duplicate",
)
#: Actions taken by dispatch itself.
SYSTEM_ACTIONS: tuple[str, ...] = ("dispatch", "begin_check", "escalate", "supervise")
ACTIONS: tuple[str, ...] = USER_ACTIONS + SYSTEM_ACTIONS

#: zh-CN labels of the actions.
ACTION_LABELS: Mapping[str, str] = MappingProxyType({
    "accept": "受理", "reject": "不予受理", "file": "立案", "dispatch": "派遣",
    "acknowledge": "签收", "start": "开始处置", "resolve": "处置反馈", "begin_check": "核查",
    "verify_pass": "核查通过", "verify_fail": "核查不通过(返工)", "return": "退回(错误派遣)",
    "transfer": "转办", "request_extension": "申请延期", "approve_extension": "批准延期",
    "shelve": "挂账", "mediation_agreement": "达成调解协议", "mediation_failed": "调解不成上报",
    "cancel": "作废", "self_handle": "自行处置", "escalate": "逐级上报", "supervise": "督办",
    "callback": "回访", "reopen": "重办", "recategorize": "改类", "merge_duplicate": "合并重复件",
})

#: Who normally takes each action (docs/domain.md §3(c)2–5, §1.2); recorded, not enforced here.
ACTION_ACTORS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "accept": ("intake_clerk",), "reject": ("intake_clerk",), "file": ("shift_lead",),
    "dispatch": ("system", "dispatcher"), "acknowledge": ("department",),
    "start": ("department",), "resolve": ("department",), "begin_check": ("system",),
    "verify_pass": ("supervisor", "grid_worker"), "verify_fail": ("supervisor", "grid_worker"),
    "return": ("department",), "transfer": ("department", "dispatcher"),
    "request_extension": ("department",), "approve_extension": ("shift_lead",),
    "shelve": ("shift_lead",), "mediation_agreement": ("mediator",),
    "mediation_failed": ("mediator",), "cancel": ("shift_lead",),
    "self_handle": ("grid_worker",), "escalate": ("grid_worker", "system"),
    "supervise": ("system",), "callback": ("intake_clerk",), "reopen": ("shift_lead",),
    "recategorize": ("dispatcher", "shift_lead"), "merge_duplicate": ("shift_lead",),
})

#: Actions a closed case still accepts (the 12345 loop, docs/domain.md §1.5, §3(c)6).
AFTER_CLOSURE_ACTIONS: tuple[str, ...] = ("callback", "reopen")

#: Outcomes a rejection, cancellation or merge may record (the first is the default).
DISCARD_OUTCOMES: tuple[str, ...] = ("unfounded", "not_remit", "duplicate")

#: The actions that take a case out of every figure (it ends rejected or cancelled, docs/kpis.md
#: §2): refused while cases merged into it as duplicates count as it (docs/domain.md §3(c)5).
LEAVING_ACTIONS: tuple[str, ...] = ("reject", "cancel", "merge_duplicate")

STATE_ACTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    REPORTED: ("accept", "reject", "cancel", "merge_duplicate"),
    ACCEPTED: ("file", "self_handle", "escalate", "recategorize", "cancel", "merge_duplicate"),
    FILED: ("dispatch", "recategorize", "cancel", "merge_duplicate"),
    DISPATCHED: ("acknowledge", "return", "transfer", "request_extension", "approve_extension",
                 "shelve", "supervise", "recategorize", "cancel", "merge_duplicate"),
    ACKNOWLEDGED: ("start", "transfer", "request_extension", "approve_extension", "shelve",
                   "supervise", "recategorize", "cancel", "merge_duplicate"),
    IN_PROGRESS: ("resolve", "transfer", "request_extension", "approve_extension", "shelve",
                  "supervise", "recategorize", "cancel", "merge_duplicate"),
    RESOLVED: ("begin_check", "cancel", "merge_duplicate"),
    CHECKING: ("verify_pass", "verify_fail", "cancel", "merge_duplicate"),
    SHELVED: ("start", "cancel", "merge_duplicate"),
    MEDIATING: ("mediation_agreement", "mediation_failed", "supervise", "recategorize", "cancel",
                "merge_duplicate"),
    CLOSED: AFTER_CLOSURE_ACTIONS, REJECTED: (), CANCELLED: (),
})

# --------------------------------------------------------------------------- ladders, units

#: Coordinating levels for 逐级上报 (docs/domain.md §3(d)2).
ESCALATION_LEVELS: tuple[str, ...] = ("grid", "community", "street", "district")

# Mediation rungs (docs/domain.md §3(c)7, docs/seeds.md block E), lowest first: the contract's
# MEDIATION_LEVELS (shared/contract/actions.py), 院落/网格 → 社区调委会 → 街道调解中心 → 联动调解.
#: The rungs as dispatch's step notes name them: the contract's labels, the linked rung with whom
#: it brings in (court, legal workers, community police).
MEDIATION_NOTE_LABELS: Mapping[str, str] = MappingProxyType({
    **MEDIATION_LEVEL_LABELS, "linked": "联动调解(法院、法律工作者、社区民警)",
})

#: Department code of a street office (街道办); not in shared/data/taxonomy.yaml yet.
STREET_OFFICE = "street_office"
#: The police station (派出所) department of the taxonomy.
POLICE = "police"
#: Case flag that forks a dispute to the police (docs/domain.md §3(c)7).
VIOLENCE_FLAG = "violence"
#: The transfer count at which a transfer goes to the street office instead (docs/domain.md §1.5, §3(c)3).
TRANSFER_ESCALATION_THRESHOLD = 3
#: Highest supervision level: 1 = 督办 at red, 2 = 提级督办 at red + 5 WD (docs/domain.md §3(d)4).
MAX_SUPERVISION_LEVEL = 2

