"""case tally: TRUNCATE of reporting.case_facts empties the tally too

``TRUNCATE`` fires no row or statement trigger of INSERT/UPDATE/DELETE, so after a truncate of
``reporting.case_facts`` by anything but ``gridcase reporting rebuild`` (the KPI bench's loader,
bench/kpi_data.py; an operator) the tally (7d3e5b9a0c61) still counted the facts gone. A fourth
trigger, ``AFTER TRUNCATE``, empties it with them (shared/platform/tally.py).

Revision ID: 615ca2d1dfba
Revises: 7d3e5b9a0c61
Create Date: 2026-12-07 23:00:00
"""
from collections.abc import Sequence

from alembic import op

from shared.platform.tally import tally_truncate_ddl

revision: str = "615ca2d1dfba"
down_revision: str | Sequence[str] | None = "7d3e5b9a0c61"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The trigger function that knows TRUNCATE, and its truncate trigger."""
    for statement in tally_truncate_ddl("reporting", "case_facts", "case_tally",
                                        {"reported_cases": "(reported_at IS NOT NULL)::int",
                                         "events_applied": "coalesce(event_count, 0)"}):
        op.execute(statement)


def downgrade() -> None:
    """Drop the truncate trigger (the function's TRUNCATE branch is then never called)."""
    op.execute('DROP TRIGGER IF EXISTS case_tally_truncate ON "reporting".case_facts')
