"""What a newly reported case becomes: dispatch's pure decisions on a ``CaseReported`` (no I/O).

- A live report starts a lifecycle case (:func:`start_live_case`): routed by the tenant's routing
  table (:func:`services.dispatch.domain.routing.route`), its disposal limit by urgency with the
  category's override (:func:`case_context`). A report from a grid worker (channel
  ``grid_worker``) is accepted and filed by the system at once (网格员上报 is already verified on
  site) and dispatched by the routing table; reports from other channels wait in ``reported`` for
  the intake clerk's ``accept``.
- A historical record (``history`` set) is replayed as it happened (:func:`handle_report`; issue
  "whole pipeline", item 4): dispatched to the recorded department at the report time (or routed
  when the source has no department column), then each recorded transfer, then the recorded
  closure or the recorded open status; every derived event is marked ``history``. The dispatch
  carries the deadline the source recorded (``RecordedOutcome.deadline``, e.g. Boston
  ``TARGET_DT``), so reporting's on-time and overdue figures of history are the source's own; a
  historical case gets no deadline timers (it is replayed, not worked).
- Either way the case's row in ``dispatch.cases`` is described by a :class:`CaseState`.

Derived event ids are ``uuid5(case_id, kind, n)``, so deriving them again after a crash yields the
same ids and consumers skip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.dispatch.domain import lifecycle
from services.dispatch.domain.lifecycle import Case, Command, Context, Transition
from services.dispatch.domain.routing import RouteDecision, route
from shared.contract.actions import AUTO_ACCEPTED_CHANNELS
from shared.contract.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseStatusRecorded,
    CaseTransferred,
    Envelope,
    derive_id,
)
from shared.domain.taxonomy import Taxonomy
from shared.domain.tenants import TenantConfig
from shared.domain.workcalendar import Limit, limits_for

TRIAGE = RouteDecision(target_kind="triage", department="triage", rule="triage:unknown-tenant", mediation_level=None)


@dataclass(frozen=True)
class CaseState:
    """Dispatch's view of a case after its report was handled (a row of ``dispatch.cases``;
    ``dispatched_at`` is ``None`` for a live case still waiting to be filed)."""

    status: str
    target_kind: str
    department: str
    rule: str
    mediation_level: str | None
    dispatched_at: datetime | None
    closed_at: datetime | None
    transfer_count: int


def handle_report(
    report: CaseReported,
    tenant: TenantConfig | None,
    taxonomy: Taxonomy,
    now: datetime,
) -> tuple[CaseState, list[Envelope]]:
    """Decide the state and the lifecycle events of a newly reported case.

    Args:
        report: the ``CaseReported`` event.
        tenant: the tenant's configuration, ``None`` if the tenant is not configured here (the
            case then goes to the triage queue rather than failing).
        taxonomy: the category taxonomy.
        now: the dispatch time of a live report (timezone-aware).

    Returns:
        The case's state and the events to publish, in order.
    """
    base = {"case_id": report.case_id, "tenant": report.tenant, "place_code": report.place_code}
    hist = report.history
    if hist is not None and hist.department:
        decision = RouteDecision(target_kind="department", department=hist.department, rule="history", mediation_level=None)
    elif tenant is None:
        decision = TRIAGE
    else:
        decision = route(report.category_code, report.place_code, tenant, taxonomy, at=report.reported_at)

    dispatched_at = report.reported_at if hist is not None else max(now, report.reported_at)
    events: list[Envelope] = [
        CaseDispatched(
            event_id=derive_id(report.case_id, "case.dispatched", 1),
            occurred_at=dispatched_at,
            target_kind=decision.target_kind,
            department=decision.department,
            rule=decision.rule,
            mediation_level=decision.mediation_level,
            deadline=hist.deadline if hist is not None else None,
            history=hist is not None,
            **base,
        )
    ]
    status = "triage" if decision.target_kind == "triage" else "dispatched"
    department = decision.department
    closed_at = None
    transfers = 0
    if hist is not None:
        for seq, transfer in enumerate(hist.transfers, start=1):
            to = transfer.to_department or None
            events.append(
                CaseTransferred(
                    event_id=derive_id(report.case_id, "case.transferred", seq),
                    occurred_at=transfer.at or report.reported_at,
                    from_department=department,
                    to_department=to,
                    sequence=seq,
                    history=True,
                    **base,
                )
            )
            department = to or department
            transfers = seq
        if transfers:
            status = "transferred"
        if hist.closed:
            closed_at = hist.closed_at
            events.append(
                CaseClosed(
                    event_id=derive_id(report.case_id, "case.closed", 1),
                    occurred_at=hist.closed_at or report.reported_at,
                    closed_at=hist.closed_at,
                    source_status=hist.status,
                    history=True,
                    **base,
                )
            )
            status = "closed"
        elif hist.status:
            events.append(
                CaseStatusRecorded(
                    event_id=derive_id(report.case_id, "case.status_recorded", 1),
                    occurred_at=report.reported_at,
                    source_status=hist.status,
                    **base,
                )
            )
    state = CaseState(
        status=status,
        target_kind=decision.target_kind,
        department=department,
        rule=decision.rule,
        mediation_level=decision.mediation_level,
        dispatched_at=dispatched_at,
        closed_at=closed_at,
        transfer_count=transfers,
    )
    return state, events


def case_context(tenant: TenantConfig | None, taxonomy: Taxonomy, category_code: str, place_code: str,
                 urgency: str, at: datetime) -> Context:
    """Routing decision and limit for a case (routes by the tenant's table, no route for a tenant
    not configured here; limit by urgency with the category's override, workcalendar.limits_for)."""
    decision = route(category_code, place_code, tenant, taxonomy, at=at) if tenant else None
    overrides = _dispose_overrides(taxonomy)
    limit = limits_for(urgency if urgency in ("特急", "紧急", "一般", "复杂") else "一般", category_code,
                       overrides).dispose
    return Context(route=decision, limit=limit, tenant=tenant)


#: The taxonomy the overrides below were read from, and them (one taxonomy per service: read once,
#: not once per case; a frozen Taxonomy cannot change under it).
_OVERRIDES: list = [None, {}]


def _dispose_overrides(taxonomy: Taxonomy) -> dict[str, Limit]:
    """The category dispose-limit overrides of ``taxonomy`` as :class:`Limit` s (workcalendar.limits_for)."""
    if _OVERRIDES[0] is not taxonomy:
        _OVERRIDES[1] = {code: Limit(value, unit) for code, (value, unit) in taxonomy.dispose_limits().items()}
        _OVERRIDES[0] = taxonomy
    return _OVERRIDES[1]


def start_live_case(report: CaseReported, tenant: TenantConfig | None, taxonomy: Taxonomy,
                    now: datetime) -> tuple[Case, tuple[Transition, ...], Context]:
    """A new live case: grid-worker reports are accepted, filed and dispatched at once."""
    ctx = case_context(tenant, taxonomy, report.category_code, report.place_code, report.urgency, report.reported_at)
    case = Case.new(report.place_code, flags=report.flags, limit=ctx.limit, tenant=ctx.tenant,
                    category_code=report.category_code)
    transitions: tuple[Transition, ...] = ()
    if report.channel in AUTO_ACCEPTED_CHANNELS:
        when = max(now, report.reported_at)
        for action in ("accept", "file", "dispatch"):
            case, steps = lifecycle.decide(case, Command(action=action, actor_role="system"), when, ctx)
            transitions += steps
    return case, transitions, ctx


def live_state(case: Case, transitions: tuple[Transition, ...], rule: str | None) -> CaseState:
    """The :class:`CaseState` of a live case just started (:func:`start_live_case`); ``rule`` is
    the routing rule that chose its handler, if any."""
    return CaseState(
        status=case.state,
        target_kind=case.target_kind or "",
        department=case.department or "",
        rule=(rule or "")[:120],
        mediation_level=case.mediation_level,
        dispatched_at=next((t.at for t in transitions if t.action == "dispatch"), None),
        closed_at=None,
        transfer_count=case.transfer_count,
    )
