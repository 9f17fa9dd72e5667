"""case facts: deadline_seq (the deadline no longer depends on arrival order)

Revision ID: e8a4c6b2d913
Revises: 36cf83fdb72f
Create Date: 2026-11-29 12:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e8a4c6b2d913"
down_revision: str | Sequence[str] | None = "36cf83fdb72f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add case_facts.deadline_seq; existing deadlines count as written by the newest transition
    (``gridcase reporting rebuild`` recomputes them exactly)."""
    op.add_column("case_facts", sa.Column("deadline_seq", sa.Integer(), comment="sequence of the event that wrote deadline"),
                  schema="reporting")
    op.execute("UPDATE reporting.case_facts SET deadline_seq = state_seq WHERE deadline IS NOT NULL")


def downgrade() -> None:
    """Drop case_facts.deadline_seq."""
    op.drop_column("case_facts", "deadline_seq", schema="reporting")
