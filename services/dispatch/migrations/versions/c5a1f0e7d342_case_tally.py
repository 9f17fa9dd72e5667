"""case tally: cases and events emitted per tenant, kept by triggers (issue 13)

``GET /v1/progress`` counted the tenant's cases and summed their events on every call, a scan that
grows with the cases (at 640,000 cases under load it took over 10 s: docs/operations.md §3.1).
``dispatch.case_tally`` holds deltas per tenant appended by statement triggers on
``dispatch.cases`` (shared/platform/tally.py); the rows already stored are counted here.

Revision ID: c5a1f0e7d342
Revises: b7e3c9a41d25
Create Date: 2026-12-07 22:30:00
"""
from collections.abc import Sequence

from alembic import op

from shared.platform.tally import drop_tally_ddl, tally_ddl

revision: str = "c5a1f0e7d342"
down_revision: str | Sequence[str] | None = "b7e3c9a41d25"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the tally, its triggers, and the first totals from the stored cases."""
    for statement in tally_ddl("dispatch", "cases", "case_tally", {"cases": "1", "events_emitted": "events_emitted"}):
        op.execute(statement)


def downgrade() -> None:
    """Drop the triggers, their function and the tally."""
    for statement in drop_tally_ddl("dispatch", "cases", "case_tally"):
        op.execute(statement)
