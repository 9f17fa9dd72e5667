"""case tally: TRUNCATE of dispatch.cases empties the tally too

``TRUNCATE`` fires no row or statement trigger of INSERT/UPDATE/DELETE, so after a truncate of
``dispatch.cases`` the tally (c5a1f0e7d342) still counted the cases gone. A fourth trigger,
``AFTER TRUNCATE``, empties it with them (shared/platform/tally.py).

Revision ID: 75e0a556f065
Revises: c5a1f0e7d342
Create Date: 2026-12-07 23:00:00
"""
from collections.abc import Sequence

from alembic import op

from shared.platform.tally import tally_truncate_ddl

revision: str = "75e0a556f065"
down_revision: str | Sequence[str] | None = "c5a1f0e7d342"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The trigger function that knows TRUNCATE, and its truncate trigger."""
    for statement in tally_truncate_ddl("dispatch", "cases", "case_tally", {"cases": "1", "events_emitted": "events_emitted"}):
        op.execute(statement)


def downgrade() -> None:
    """Drop the truncate trigger (the function's TRUNCATE branch is then never called)."""
    op.execute('DROP TRIGGER IF EXISTS case_tally_truncate ON "dispatch".cases')
