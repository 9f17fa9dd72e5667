"""outbox notify on commit (issue 13)

A statement trigger runs pg_notify('intake_outbox', '') after every INSERT into intake.outbox; the
relays LISTEN and wake at once instead of polling (shared/platform/notify.py).

Revision ID: a13b0c0f1e01
Revises: e1f5a2c7d915
Create Date: 2026-12-06 22:40:00
"""
from collections.abc import Sequence

from alembic import op

from shared.platform.notify import drop_outbox_notify_ddl, outbox_notify_ddl

revision: str = "a13b0c0f1e01"
down_revision: str | Sequence[str] | None = "e1f5a2c7d915"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create intake.outbox_notify() and its trigger on intake.outbox."""
    for statement in outbox_notify_ddl("intake"):
        op.execute(statement)


def downgrade() -> None:
    """Drop the trigger and its function."""
    for statement in drop_outbox_notify_ddl("intake"):
        op.execute(statement)
