"""outbox notify on commit (issue 13)

A statement trigger runs pg_notify('dispatch_outbox', '') after every INSERT into dispatch.outbox; the
relays LISTEN and wake at once instead of polling (shared/platform/notify.py).

Revision ID: d13b0c0f1e02
Revises: f8987cd83bab
Create Date: 2026-12-06 22:40:00
"""
from collections.abc import Sequence

from alembic import op

from shared.platform.notify import drop_outbox_notify_ddl, outbox_notify_ddl

revision: str = "d13b0c0f1e02"
down_revision: str | Sequence[str] | None = "f8987cd83bab"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create dispatch.outbox_notify() and its trigger on dispatch.outbox."""
    for statement in outbox_notify_ddl("dispatch"):
        op.execute(statement)


def downgrade() -> None:
    """Drop the trigger and its function."""
    for statement in drop_outbox_notify_ddl("dispatch"):
        op.execute(statement)
