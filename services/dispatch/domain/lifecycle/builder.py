"""How a decision is built: the :class:`Builder` that records each step as a :class:`Transition`,
and the assignment of a case to a handler (dispatch, re-dispatch, transfer) that starts the clock."""

from __future__ import annotations

from datetime import datetime

from services.dispatch.domain.lifecycle.guards import illegal
from services.dispatch.domain.lifecycle.model import (
    Case,
    Command,
    Context,
    Decision,
    IllegalAction,
    Transition,
    replace,
)
from services.dispatch.domain.lifecycle.states import (
    DISPATCHED,
    FILED,
    MEDIATING,
    POLICE,
    VIOLENCE_FLAG,
)
from services.dispatch.domain.routing import (
    MEDIATION_DEPARTMENT,
    TRIAGE_DEPARTMENT,
    RouteDecision,
    mediation_level_for,
)
from shared.contract.actions import MEDIATION_LEVELS
from shared.domain.workcalendar import dispose_deadline


class Builder:
    def __init__(self, case: Case, command: Command, now: datetime, context: Context) -> None:
        self.original = case
        self.case = case
        self.command = command
        self.now = now
        self.context = context
        self.transitions: list[Transition] = []

    def step(self, action: str, new: Case, reason: str, rule: str | None = None, *,
             outcome: bool = False, rating: bool = False, category_code: str | None = None) -> None:
        """Record ``action`` from the current case to ``new``. ``outcome``: the step records the
        outcome now on ``new`` (an ending step, or ``resolve``); ``rating``: it records the
        callback's rating; ``category_code``: the category the step set."""
        old = self.case
        self.transitions.append(Transition(
            action=action, from_state=old.state, to_state=new.state, at=self.now,
            actor_role=self.command.actor_role, reason=reason, department=new.department,
            target_kind=new.target_kind, mediation_level=new.mediation_level, level=new.level,
            unit=new.unit, deadline=new.deadline, transfer_count=new.transfer_count,
            return_count=new.return_count, rework_count=new.rework_count,
            supervision_level=new.supervision_level,
            extension_requested=new.extension_requested, extension_used=new.extension_used,
            note=self.command.note, evidence=self.command.evidence, rule=rule,
            actor_ref=self.command.actor_ref, from_department=old.department,
            from_mediation_level=old.mediation_level, place_code=new.place_code,
            outcome=new.outcome if outcome else None,
            duplicate_of=new.duplicate_of if outcome else None,
            satisfaction=new.satisfaction if rating else None,
            resident_resolved=new.resident_resolved if rating else None,
            category_code=category_code, reopen_count=new.reopen_count,
            recategorize_count=new.recategorize_count,
        ))
        self.case = new

    def refuse(self, reason: str) -> IllegalAction:
        """The refusal of this command (raise it): the state and allowed actions of the case as
        it was before the command (nothing changes)."""
        return illegal(self.original, self.now, reason, self.command.action, self.context)

    def decision(self) -> Decision:
        return Decision(self.case, tuple(self.transitions))


def decision_for(department: str, rule: str, place_code: str) -> RouteDecision:
    if department == MEDIATION_DEPARTMENT:
        return RouteDecision("mediation", department, rule, mediation_level_for(place_code))
    if department == TRIAGE_DEPARTMENT:
        return RouteDecision("triage", department, rule, None)
    return RouteDecision("department", department, rule, None)


def assign(case: Case, decision: RouteDecision, now: datetime, ctx: Context) -> tuple[Case, str]:
    """The case sent where ``decision`` says (dispatch, re-dispatch, transfer); starts the clock
    at the first dispatch to a handler."""
    kind, department, rung = decision.target_kind, decision.department, decision.mediation_level
    reason = f"派遣 dispatched by {decision.rule}"
    if kind == "mediation" and VIOLENCE_FLAG in case.flags:
        kind, department, rung = "department", POLICE, None
        reason += "; 涉暴力纠纷分流派出所 (a violent dispute forks to the police, docs/domain.md §3(c)7)"
    if kind == "triage":
        state, department, rung = FILED, TRIAGE_DEPARTMENT, None
        reason = f"待指挥中心分拨 (triage queue) by {decision.rule}"
    elif kind == "mediation":
        state = MEDIATING
        rung = rung if rung in MEDIATION_LEVELS else mediation_level_for(case.place_code)
    else:
        state, rung = DISPATCHED, None
    limit = ctx.limit if ctx.limit is not None else case.limit
    deadline, started = case.deadline, case.dispatched_at
    if deadline is None and state != FILED:
        if limit is not None:
            deadline = dispose_deadline(now, limit, ctx.zone, ctx.calendar)
        if started is None:
            started = now
    new = replace(case, state=state, department=department, target_kind=kind,
                  mediation_level=rung, limit=limit, deadline=deadline, dispatched_at=started)
    return new, reason


def handler_of(case: Case, decision: RouteDecision) -> str:
    """The department :func:`assign` would give ``case`` for ``decision`` (a violent dispute's
    mediation route goes to the police)."""
    if decision.target_kind == "mediation" and VIOLENCE_FLAG in case.flags:
        return POLICE
    return decision.department

