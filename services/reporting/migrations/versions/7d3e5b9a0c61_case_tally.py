"""case tally: reported cases and events applied per tenant, kept by triggers (issue 13)

``GET /v1/progress`` counted the tenant's case facts and summed their events on every call, a scan
that grows with the cases. ``reporting.case_tally`` holds deltas per tenant appended by statement
triggers on ``reporting.case_facts`` (shared/platform/tally.py); the facts already stored are
counted here. ``gridcase reporting rebuild`` truncates it with the facts.

Revision ID: 7d3e5b9a0c61
Revises: 4e7a2c9d1b58
Create Date: 2026-12-07 22:30:00
"""
from collections.abc import Sequence

from alembic import op

from shared.platform.tally import drop_tally_ddl, tally_ddl

revision: str = "7d3e5b9a0c61"
down_revision: str | Sequence[str] | None = "4e7a2c9d1b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the tally, its triggers, and the first totals from the stored facts."""
    for statement in tally_ddl("reporting", "case_facts", "case_tally",
                               {"reported_cases": "(reported_at IS NOT NULL)::int",
                                "events_applied": "coalesce(event_count, 0)"}):
        op.execute(statement)


def downgrade() -> None:
    """Drop the triggers, their function and the tally."""
    for statement in drop_tally_ddl("reporting", "case_facts", "case_tally"):
        op.execute(statement)
