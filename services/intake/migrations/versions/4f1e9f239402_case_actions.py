"""case actions: each requested action's id and dispatch's decision on it

Revision ID: 4f1e9f239402
Revises: c3f1d2e4a5b6
Create Date: 2026-12-06 04:10:00

Issue 12 (one authority for actions): intake no longer judges an action against its case view;
it records the request here (pending) and the case-view consumer marks it applied or refused
when dispatch's answer arrives.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4f1e9f239402"
down_revision: str | Sequence[str] | None = "c3f1d2e4a5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create intake.case_actions."""
    op.create_table(
        "case_actions",
        sa.Column("action_id", sa.UUID(), nullable=False,
                  comment="the request's id (its CaseActionRequested event id and action_id)"),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("tenant", sa.String(40), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor_ref", sa.String(64), comment="the requesting credential's id"),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False,
                  comment="pending | applied | refused"),
        sa.Column("reason", sa.String(500), server_default="", nullable=False,
                  comment="dispatch's reason for a refusal"),
        sa.Column("state", sa.String(24), comment="the case's state after the action (applied) or when refused"),
        sa.Column("allowed_actions", postgresql.JSONB(astext_type=sa.Text()),
                  comment="the actions allowed in that state (refused)"),
        sa.Column("sequence", sa.Integer(), comment="sequence of the newest transition that applied it"),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_case_actions")),
        schema="intake",
        comment="each action asked for through POST /v1/cases/{id}/actions and dispatch's decision on it",
    )
    op.create_index("ix_intake_case_actions_case", "case_actions", ["case_id", "requested_at"], schema="intake")


def downgrade() -> None:
    """Drop intake.case_actions."""
    op.drop_index("ix_intake_case_actions_case", table_name="case_actions", schema="intake")
    op.drop_table("case_actions", schema="intake")
