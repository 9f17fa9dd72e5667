"""case view: deadline_seq (the deadline no longer depends on arrival order)

Revision ID: c3f1d2e4a5b6
Revises: b7e2a9c41d03
Create Date: 2026-11-29 12:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3f1d2e4a5b6"
down_revision: str | Sequence[str] | None = "b7e2a9c41d03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add case_view.deadline_seq; existing deadlines count as written by the newest transition."""
    op.add_column("case_view", sa.Column("deadline_seq", sa.Integer(), comment="sequence of the event that wrote deadline"),
                  schema="intake")
    op.execute("UPDATE intake.case_view SET deadline_seq = state_seq WHERE deadline IS NOT NULL")


def downgrade() -> None:
    """Drop case_view.deadline_seq."""
    op.drop_column("case_view", "deadline_seq", schema="intake")
