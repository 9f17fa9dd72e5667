"""The closed loop after closure (12345): 回访 ``callback`` and 重办 ``reopen`` (docs/domain.md
§3(c)6, [P22])."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from services.dispatch.domain.lifecycle.builder import Builder
from services.dispatch.domain.lifecycle.guards import max_reopens
from services.dispatch.domain.lifecycle.model import Context, replace
from services.dispatch.domain.lifecycle.states import (
    DISPATCHED,
    FILED,
    MEDIATING,
    MEDIATION_NOTE_LABELS,
)
from services.dispatch.domain.routing import TRIAGE_DEPARTMENT
from shared.contract.actions import MEDIATION_LEVELS, SATISFACTION_LABELS, SATISFACTIONS
from shared.domain.workcalendar import dispose_deadline


def _callback(b: Builder, ctx: Context) -> None:
    rating, resolved = b.command.satisfaction, b.command.resident_resolved
    if rating not in SATISFACTIONS:
        raise b.refuse(f"回访须有满意度 (callback needs satisfaction, one of "
                       f"{', '.join(SATISFACTIONS)}; got {rating!r})")
    if resolved is not None and not isinstance(resolved, bool):
        raise b.refuse("resident_resolved must be true, false or absent")
    if rating == "unreachable" and resolved is not None:
        raise b.refuse("未联系上 an unreachable resident cannot judge whether it was resolved")
    judged = "" if resolved is None else ("; 群众认为已解决 resolved" if resolved
                                          else "; 群众认为未解决 not resolved")
    b.step("callback", replace(b.case, satisfaction=rating, resident_resolved=resolved),
           f"回访 callback: {SATISFACTION_LABELS[rating]} {rating}{judged}", rating=True)


def _reopen(b: Builder, ctx: Context) -> None:
    case = b.case
    if not b.command.note.strip():
        raise b.refuse("重办须说明原因 (reopen needs the reason in note)")
    limit = case.limit if case.limit is not None else ctx.limit
    if case.target_kind == "mediation" and case.mediation_level in MEDIATION_LEVELS:
        state, department, kind, rung = MEDIATING, case.department, "mediation", case.mediation_level
        whom = MEDIATION_NOTE_LABELS[rung]
    elif case.department and case.department != TRIAGE_DEPARTMENT:
        state, department, kind, rung = DISPATCHED, case.department, case.target_kind or "department", None
        whom = case.department
    else:  # closed without a handler (自行处置): the triage queue decides
        state, department, kind, rung = FILED, TRIAGE_DEPARTMENT, "triage", None
        whom = "the triage queue"
    clock = state != FILED
    deadline = dispose_deadline(b.now, limit, ctx.zone, ctx.calendar) if clock and limit else None
    count = case.reopen_count + 1
    new = replace(case, state=state, department=department, target_kind=kind, mediation_level=rung,
                  limit=limit, deadline=deadline, dispatched_at=b.now if clock else None,
                  paused_since=None, supervision_level=0, extension_requested=False,
                  extension_used=False, outcome=None, duplicate_of=None, satisfaction=None,
                  resident_resolved=None, reopen_count=count)
    b.step("reopen", new, f"重办 reopened ({count} of at most {max_reopens(ctx)}), back to {whom} "
           "with a full new limit from now (docs/domain.md §3(c)6)")


#: The actions after closure and their rules (:func:`~services.dispatch.domain.lifecycle.machine.decide` runs them).
HANDLERS: Mapping[str, Callable[[Builder, Context], None]] = MappingProxyType({
    "callback": _callback, "reopen": _reopen,
})
