"""The clock's actions: 延期 (``request_extension``, ``approve_extension``), 挂账 (``shelve``) and
督办 (``supervise``; docs/domain.md §3(c)4, §3(c)8, §3(d)4)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from services.dispatch.domain.lifecycle.builder import Builder
from services.dispatch.domain.lifecycle.model import Context, replace
from services.dispatch.domain.lifecycle.states import SHELVED
from shared.domain.workcalendar import add_working_days, higher_supervision_at


def _request_extension(b: Builder, ctx: Context) -> None:
    days = b.command.extension_days
    asked = f" {days:g} WD" if days else ""
    b.step("request_extension", replace(b.case, extension_requested=True),
           f"申请延期{asked} extension requested before the deadline")


def _approve_extension(b: Builder, ctx: Context) -> None:
    days = b.command.extension_days
    if days is None or isinstance(days, bool) or not days > 0:
        raise b.refuse("approve_extension needs extension_days > 0")
    case = b.case
    deadline = add_working_days(case.deadline, days, ctx.zone, ctx.calendar)
    b.step("approve_extension", replace(case, deadline=deadline, extension_used=True),
           f"批准延期 {days:g} WD (once, docs/domain.md §3(c)4)")


def _shelve(b: Builder, ctx: Context) -> None:
    b.step("shelve", replace(b.case, state=SHELVED, paused_since=b.now),
           "挂账 shelved: the clock is paused (docs/domain.md §3(c)4)")


def _supervise(b: Builder, ctx: Context) -> None:
    case = b.case
    target = b.command.level if b.command.level is not None else case.supervision_level + 1
    if isinstance(target, bool) or target not in (1, 2) or target <= case.supervision_level:
        raise b.refuse(f"supervision level must rise to 1 or 2 (now "
                       f"{case.supervision_level}, asked {target!r})")
    if target == 2:
        due = higher_supervision_at(case.deadline, ctx.zone, ctx.calendar)
        if b.now < due:
            raise b.refuse(f"提级督办 falls due 5 WD after red, at {due.isoformat()}")
    for level in range(case.supervision_level + 1, target + 1):
        if level == 1:
            reason = ("督办 red alert: automatic supervision, superior of "
                      f"{case.department} notified (docs/domain.md §3(d)4)")
        else:
            reason = "提级督办并通报 higher-level supervision 5 WD after red (docs/domain.md §3(d)4)"
        b.step("supervise", replace(b.case, supervision_level=level), reason)


#: The clock's actions and their rules (:func:`~services.dispatch.domain.lifecycle.machine.decide` runs them).
HANDLERS: Mapping[str, Callable[[Builder, Context], None]] = MappingProxyType({
    "request_extension": _request_extension, "approve_extension": _approve_extension,
    "shelve": _shelve, "supervise": _supervise,
})
