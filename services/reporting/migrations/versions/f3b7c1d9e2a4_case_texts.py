"""case texts: the masked text of each case, for hot issues (issue 15, docs/classifier.md §5)

Revision ID: f3b7c1d9e2a4
Revises: c4d2e8f1a7b3
Create Date: 2026-12-06 20:00:00

Existing cases get their text from ``gridcase reporting rebuild`` (it folds the event log again).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "f3b7c1d9e2a4"
down_revision: str | Sequence[str] | None = "c4d2e8f1a7b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_texts",
        sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant", sa.String(40), nullable=False),
        sa.Column("place_code", sa.String(24), nullable=False),
        sa.Column("category_code", sa.String(64)),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reporter_key", sa.String(32), comment="the reporter within one community and month (services/reporting/handlers.py reporter_key)"),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        schema="reporting",
        comment="masked case texts for hot issues (services/reporting/hotspots.py)",
    )
    op.create_index("ix_reporting_case_texts_tenant_reported", "case_texts", ["tenant", "reported_at"],
                    schema="reporting")


def downgrade() -> None:
    op.drop_index("ix_reporting_case_texts_tenant_reported", table_name="case_texts", schema="reporting")
    op.drop_table("case_texts", schema="reporting")
