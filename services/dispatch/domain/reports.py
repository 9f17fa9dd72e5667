"""Dispatch's pure decisions: what events a reported case produces (no I/O).

A live report is routed by the tenant's routing table (:func:`services.dispatch.domain.routing.route`)
and gets one ``CaseDispatched``. A historical record (``history`` set) is replayed as it happened
(issue "whole pipeline", item 4): dispatched to the recorded department at the report time (or
routed when the source has no department column), then each recorded transfer, then the recorded
closure or the recorded open status; every derived event is marked ``history``.

Derived event ids are ``uuid5(case_id, kind, n)``, so deriving them again after a crash yields the
same ids and consumers skip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.dispatch.domain.routing import RouteDecision, route
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

TRIAGE = RouteDecision(target_kind="triage", department="triage", rule="triage:unknown-tenant", mediation_level=None)


@dataclass(frozen=True)
class CaseState:
    """Dispatch's view of a case after its report was handled (a row of ``dispatch.cases``)."""

    status: str
    target_kind: str
    department: str
    rule: str
    mediation_level: str | None
    dispatched_at: datetime
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
