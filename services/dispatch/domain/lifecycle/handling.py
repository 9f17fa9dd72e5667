"""The main path and the ladders: acceptance, filing, 自行处置, 逐级上报, dispatch, acknowledgement,
disposal, the check and rework, 转办 and mediation (docs/domain.md §3(c)1–5, §3(c)7)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from services.dispatch.domain.lifecycle.builder import Builder, assign, decision_for
from services.dispatch.domain.lifecycle.model import Context, replace
from services.dispatch.domain.lifecycle.outcomes import outcome_fields
from services.dispatch.domain.lifecycle.places import unit_at
from services.dispatch.domain.lifecycle.states import (
    ACCEPTED,
    ACKNOWLEDGED,
    CHECKING,
    CLOSED,
    DISPATCHED,
    ESCALATION_LEVELS,
    FILED,
    IN_PROGRESS,
    MEDIATION_NOTE_LABELS,
    POLICE,
    RESOLVED,
    SHELVED,
    STREET_OFFICE,
    TRANSFER_ESCALATION_THRESHOLD,
)
from services.dispatch.domain.routing import TRIAGE_DEPARTMENT
from shared.contract.actions import MEDIATION_LEVELS, OUTCOMES
from shared.domain.workcalendar import resume


def _accept(b: Builder, ctx: Context) -> None:
    b.step("accept", replace(b.case, state=ACCEPTED), "受理 accepted")


def _file(b: Builder, ctx: Context) -> None:
    b.step("file", replace(b.case, state=FILED), "立案 filed")


def _self_handle(b: Builder, ctx: Context) -> None:
    if not any(e and e.strip() for e in b.command.evidence):
        raise b.refuse("自行处置须附照片等证据 (self_handle needs evidence, "
                       "docs/domain.md §3(c)2)")
    fields = outcome_fields(b, OUTCOMES, "resolved")
    b.step("self_handle", replace(b.case, state=CLOSED, **fields),
           "自行处置结案 closed by the grid worker's own handling (能处则处)", outcome=True)


def _escalate(b: Builder, ctx: Context) -> None:
    case = b.case
    upper = ESCALATION_LEVELS[ESCALATION_LEVELS.index(case.level) + 1]
    unit = unit_at(case.place_code, upper, ctx.tenant)
    b.step("escalate", replace(case, level=upper, unit=unit),
           f"逐级上报 {case.level}→{upper} (能处则处,不能办理则逐级上报, docs/seeds.md block E)")


def _dispatch(b: Builder, ctx: Context) -> None:
    if ctx.route is None:
        raise b.refuse("dispatch needs the router's decision (context.route)")
    new, reason = assign(b.case, ctx.route, b.now, ctx)
    b.step("dispatch", new, reason, rule=ctx.route.rule)


def _acknowledge(b: Builder, ctx: Context) -> None:
    b.step("acknowledge", replace(b.case, state=ACKNOWLEDGED), "签收 acknowledged")


def _start(b: Builder, ctx: Context) -> None:
    case = b.case
    if case.state != SHELVED:
        b.step("start", replace(case, state=IN_PROGRESS), "开始处置 started")
        return
    paused_from = case.paused_since
    if b.now < paused_from:
        raise b.refuse("cannot resume before the case was shelved")
    deadline = case.deadline
    if deadline is not None:
        if case.limit is not None:
            deadline = resume(deadline, paused_from, b.now, case.limit, ctx.zone, ctx.calendar)
        else:
            deadline = deadline + (b.now - paused_from)
    b.step("start", replace(case, state=IN_PROGRESS, deadline=deadline, paused_since=None),
           "解除挂账,恢复处置 resumed from shelving; deadline shifted by the paused time")


def _resolve(b: Builder, ctx: Context) -> None:
    fields = outcome_fields(b, OUTCOMES, "resolved")
    b.step("resolve", replace(b.case, state=RESOLVED, **fields),
           "处置反馈 resolved by the department", outcome=True)
    _begin_check(b, ctx)


def _begin_check(b: Builder, ctx: Context) -> None:
    b.step("begin_check", replace(b.case, state=CHECKING), "核查 check begins (automatic)")


def _verify_pass(b: Builder, ctx: Context) -> None:
    # a case resolved before outcomes were recorded closes as resolved (resolve's default)
    b.step("verify_pass", replace(b.case, state=CLOSED, outcome=b.case.outcome or "resolved"),
           "核查通过,结案 check passed, closed", outcome=True)


def _verify_fail(b: Builder, ctx: Context) -> None:
    case = b.case
    b.step("verify_fail", replace(case, state=IN_PROGRESS, rework_count=case.rework_count + 1,
                                  outcome=None, duplicate_of=None),
           "核查不通过,返工 rework by the same department (docs/domain.md §3(c)5)")


def _transfer(b: Builder, ctx: Context) -> None:
    case, target = b.case, b.command.target_department
    if not target:
        raise b.refuse("transfer needs target_department")
    if target == case.department:
        raise b.refuse("transfer to the same department")
    if target == TRIAGE_DEPARTMENT:
        raise b.refuse("use return to send a case back to triage")
    count = case.transfer_count + 1
    counted = replace(case, transfer_count=count)
    if count == TRANSFER_ESCALATION_THRESHOLD and case.department != STREET_OFFICE:
        street = unit_at(case.place_code, "street", ctx.tenant)
        level = case.level
        if level in ESCALATION_LEVELS and ESCALATION_LEVELS.index(level) < 2:
            level = "street"
        new = replace(counted, state=DISPATCHED, department=STREET_OFFICE,
                      target_kind="department", mediation_level=None, unit=street, level=level)
        b.step("transfer", new, f"转办≥3次提级至街道 third transfer escalates to the street office "
               f"{street or '(unknown street)'} instead of {target} (docs/domain.md §1.5, §3(c)3)",
               rule="transfer:escalate-street")
        return
    decision = decision_for(target, "transfer", case.place_code)
    new, reason = assign(counted, decision, b.now, ctx)
    b.step("transfer", new, f"转办 transfer {case.department}→{new.department} (#{count}); {reason}",
           rule=decision.rule)


def _mediation_agreement(b: Builder, ctx: Context) -> None:
    if b.command.outcome not in (None, "resolved"):
        raise b.refuse("an agreement (调解协议) resolves the dispute (outcome resolved); "
                       "use mediation_failed when it does not")
    rung = b.case.mediation_level
    b.step("mediation_agreement", replace(b.case, state=CLOSED, outcome="resolved", duplicate_of=None),
           f"达成调解协议 agreement at {MEDIATION_NOTE_LABELS[rung]}", outcome=True)


def _mediation_failed(b: Builder, ctx: Context) -> None:
    case = b.case
    i = MEDIATION_LEVELS.index(case.mediation_level)
    if i + 1 < len(MEDIATION_LEVELS):
        upper = MEDIATION_LEVELS[i + 1]
        unit = unit_at(case.place_code, upper, ctx.tenant) if upper != "linked" else case.unit
        b.step("mediation_failed", replace(case, mediation_level=upper, unit=unit),
               f"调解不成,上报{MEDIATION_NOTE_LABELS[upper]} mediation failed at "
               f"{case.mediation_level}, up to {upper}")
        return
    b.step("mediation_failed",
           replace(case, state=DISPATCHED, department=POLICE, target_kind="department",
                   mediation_level=None),
           "联动调解不成,调解终结,转派出所 mediation failed at the last rung (linked): "
           "dispatched to the police")


#: The main path's actions and their rules (:func:`~services.dispatch.domain.lifecycle.machine.decide` runs them).
HANDLERS: Mapping[str, Callable[[Builder, Context], None]] = MappingProxyType({
    "accept": _accept, "file": _file, "self_handle": _self_handle, "escalate": _escalate,
    "dispatch": _dispatch, "acknowledge": _acknowledge, "start": _start, "resolve": _resolve,
    "begin_check": _begin_check, "verify_pass": _verify_pass, "verify_fail": _verify_fail,
    "transfer": _transfer, "mediation_agreement": _mediation_agreement,
    "mediation_failed": _mediation_failed,
})
