"""Corrections (改类): ``recategorize`` and a ``return`` (退回, wrong dispatch) that may correct the
category and place; the corrected case re-routes by the new category (docs/domain.md §3(c)3,
§3(d)3; the package docstring)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from services.dispatch.domain.lifecycle.builder import (
    Builder,
    assign,
    decision_for,
    handler_of,
)
from services.dispatch.domain.lifecycle.model import Context, replace
from services.dispatch.domain.lifecycle.places import place_level
from services.dispatch.domain.lifecycle.states import ACCEPTED, FILED
from services.dispatch.domain.routing import TRIAGE_DEPARTMENT
from shared.domain.workcalendar import dispose_deadline


def correction_of(b: Builder, ctx: Context) -> tuple[dict, str] | None:
    """The case fields a category/place correction changes, and its reason; ``None`` when the
    command corrects nothing (same category, same place).

    The limit becomes the corrected category's (``ctx.limit``). If the case's clock runs and
    the limit changed, the deadline is recounted from when the clock started (the first
    dispatch, :attr:`Case.dispatched_at`; now if unknown), as if the category had been right
    from the start; when that moves the deadline, supervision and extension, granted against
    the old deadline, start afresh.
    A new place restarts the coordinating level at the new place's."""
    case, cmd, tenant = b.case, b.command, ctx.tenant
    code = cmd.category_code or case.category_code
    place = cmd.to_place_code or case.place_code
    if cmd.category_code and ctx.taxonomy is not None and ctx.taxonomy.category(code) is None:
        raise b.refuse(f"unknown category {code!r}: not in the taxonomy")
    if cmd.to_place_code and tenant is not None and tenant.owner(place) is None:
        raise b.refuse(f"place {place!r} is not a place of tenant {tenant.tenant!r}")
    if code == case.category_code and place == case.place_code:
        return None
    limit = ctx.limit if ctx.limit is not None else case.limit
    changes: dict = {"category_code": code, "place_code": place, "limit": limit,
                     "recategorize_count": case.recategorize_count + 1}
    reason = f"改类 recategorized {case.category_code or '?'}→{code}"
    if place != case.place_code:
        changes.update(level=place_level(place, tenant), unit=None)
        reason += f", place {case.place_code}→{place}"
    if case.deadline is not None and limit is not None and limit != case.limit:
        start = case.dispatched_at or b.now
        deadline = dispose_deadline(start, limit, ctx.zone, ctx.calendar)
        if deadline != case.deadline:  # another limit can give the same moment (24 h = 1 WD)
            changes.update(deadline=deadline, supervision_level=0, extension_requested=False,
                           extension_used=False)
            reason += (f"; deadline recounted: {limit.value:g} {limit.unit} from the first dispatch "
                       f"{start.isoformat()} (docs/domain.md §3(d)3)")
    return changes, reason


def route_on(b: Builder, ctx: Context, returned_by: str | None = None) -> None:
    """Dispatch the (filed) case by the corrected category's route, unless the route names no
    handler (triage) or names ``returned_by``, the department that just returned it: then the
    case waits in the triage queue."""
    decision = ctx.route
    if decision is None or decision.target_kind == "triage":
        return
    if returned_by is not None and handler_of(b.case, decision) == returned_by:
        return
    new, reason = assign(b.case, decision, b.now, ctx)
    b.step("dispatch", new, f"改类后派遣 dispatched by the corrected category; {reason}",
           rule=decision.rule, category_code=new.category_code)


def _return(b: Builder, ctx: Context) -> None:
    case, cmd, target = b.case, b.command, b.command.target_department
    if target is not None and target == case.department:
        raise b.refuse("a return must name another department")
    correction = correction_of(b, ctx) if cmd.category_code or cmd.to_place_code else None
    returned = replace(case, state=FILED, department=TRIAGE_DEPARTMENT, target_kind="triage",
                       mediation_level=None, return_count=case.return_count + 1)
    b.step("return", returned, f"退回(错误派遣) returned by {case.department}: wrong dispatch")
    corrected = None
    if correction is not None:
        changes, reason = correction
        b.step("recategorize", replace(b.case, **changes), f"{reason} (on the return)",
               category_code=changes["category_code"])
        corrected = changes["category_code"]
    if target is not None:
        decision = decision_for(target, "return:redispatch", b.case.place_code)
        new, reason = assign(b.case, decision, b.now, ctx)
        b.step("dispatch", new, f"改派 re-dispatched after a return; {reason}",
               rule=decision.rule, category_code=corrected)
    elif corrected is not None:
        route_on(b, ctx, returned_by=case.department)


def _recategorize(b: Builder, ctx: Context) -> None:
    case, code = b.case, b.command.category_code
    if not code:
        raise b.refuse("recategorize needs category_code (the corrected category)")
    correction = correction_of(b, ctx)
    if correction is None:
        raise b.refuse(f"nothing to correct: the case already has category {code} at place "
                       f"{case.place_code}")
    changes, reason = correction
    corrected = replace(case, **changes)
    if case.state in (ACCEPTED, FILED):
        # not with a handler yet: filing routes by the new category; a filed case routes now
        b.step("recategorize", corrected, reason, category_code=code)
        if case.state == FILED:
            route_on(b, ctx)
        return
    decision = ctx.route
    if (decision is None or decision.target_kind == "triage"
            or handler_of(case, decision) == case.department):
        b.step("recategorize", corrected, f"{reason}; {case.department} keeps the case", category_code=code)
        return
    b.step("recategorize", replace(corrected, state=FILED, department=TRIAGE_DEPARTMENT,
                                   target_kind="triage", mediation_level=None),
           f"{reason}; leaves {case.department} (the dispatch was not accurate)", category_code=code)
    route_on(b, ctx)


#: The correcting actions and their rules (:func:`~services.dispatch.domain.lifecycle.machine.decide` runs them).
HANDLERS: Mapping[str, Callable[[Builder, Context], None]] = MappingProxyType({
    "return": _return, "recategorize": _recategorize,
})
