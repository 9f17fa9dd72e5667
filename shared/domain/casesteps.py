"""Per-step facts of a case: one row per dispatch, transfer and lifecycle transition, so that figures
can count each event against the department (or mediation rung) it happened to (docs/kpis.md §2).

A step row is keyed by ``(case_id, sequence)`` and inserted once (``ON CONFLICT DO NOTHING``): the
table does not depend on the order events arrive in, and a redelivered event changes nothing.
Live steps carry dispatch's transition ``sequence`` (1, 2, …). A history record is replayed as a
recorded dispatch and recorded transfers (services/dispatch/domain/reports.py) and never gets live
transitions; its steps are numbered on their own: the recorded dispatch 0, the recorded transfers
1..n (their own sequence).

``from_department`` / ``from_mediation_level`` are the event's own (the department and rung before
the step); events from before they existed leave them NULL, and the KPI query then takes the
previous step's department or rung (services/reporting/kpis/sql.py ``step_sql``).
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.contract.events import (
    CaseDispatched,
    CaseTransferred,
    CaseTransitioned,
    Event,
)


def case_step_columns() -> list[sa.Column]:
    """Columns of a steps table beside its key ``(case_id, sequence)``; fresh objects on every call."""
    return [
        sa.Column("tenant", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("from_state", sa.String(24)),
        sa.Column("to_state", sa.String(24)),
        sa.Column("target_kind", sa.String(16)),
        sa.Column("department", sa.String(100), comment="the case's department after the step"),
        sa.Column("from_department", sa.String(100), comment="before the step, as the event says"),
        sa.Column("mediation_level", sa.String(16)),
        sa.Column("from_mediation_level", sa.String(16)),
        sa.Column("unit", sa.String(24)),
        sa.Column("outcome", sa.String(24)),
        sa.Column("satisfaction", sa.String(24)),
        sa.Column("resident_resolved", sa.Boolean),
        sa.Column("history", sa.Boolean, nullable=False, server_default=sa.false()),
    ]


def step_values(ev: Event) -> dict | None:
    """The step row of a dispatch, transfer or transition (insert form), ``None`` for other events;
    the same keys for every step."""
    row = {"case_id": ev.case_id, "tenant": ev.tenant, "at": ev.occurred_at, "unit": None, "outcome": None,
           "satisfaction": None, "resident_resolved": None, "from_mediation_level": None}
    if isinstance(ev, CaseDispatched):
        # a live dispatch always starts in filed (the triage queue, or after a return or recategorization)
        row.update(sequence=0 if ev.history else ev.sequence, action="dispatch",
                   from_state=None if ev.history else "filed", to_state=ev.state, target_kind=ev.target_kind,
                   department=ev.department, from_department=ev.from_department, mediation_level=ev.mediation_level,
                   unit=ev.unit, history=ev.history)
    elif isinstance(ev, CaseTransferred):
        row.update(sequence=ev.sequence, action="transfer", from_state=None, to_state=None, target_kind=None,
                   department=ev.to_department, from_department=ev.from_department, mediation_level=None,
                   history=ev.history)
    elif isinstance(ev, CaseTransitioned):
        row.update(sequence=ev.sequence, action=ev.action, from_state=ev.from_state, to_state=ev.to_state,
                   target_kind=ev.target_kind, department=ev.department, from_department=ev.from_department,
                   mediation_level=ev.mediation_level, from_mediation_level=ev.from_mediation_level, unit=ev.unit,
                   outcome=ev.outcome, satisfaction=ev.satisfaction, resident_resolved=ev.resident_resolved,
                   history=False)
    else:
        return None
    return row
