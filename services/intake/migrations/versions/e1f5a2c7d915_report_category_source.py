"""reports: how the category came about (category_source, model_version, confidence, suggestions)
and an index for possible duplicates (issue 15, docs/classifier.md §3–§4)

Revision ID: e1f5a2c7d915
Revises: e5a1c7d9b2f4
Create Date: 2026-12-06 19:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "e1f5a2c7d915"
down_revision: str | Sequence[str] | None = "e5a1c7d9b2f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the classification columns (existing reports carried their code: ``reported``)."""
    op.add_column("reports", sa.Column("category_source", sa.String(16), nullable=False, server_default="reported",
                                       comment="reported | predicted | unclassified (corrected: case view)"),
                  schema="intake")
    op.add_column("reports", sa.Column("model_version", sa.String(64), comment="the text model that predicted"),
                  schema="intake")
    op.add_column("reports", sa.Column("category_confidence", sa.Float(), comment="probability of the predicted class"),
                  schema="intake")
    op.add_column("reports", sa.Column("category_suggestions", pg.JSONB(),
                                       comment="top three [{category_code, confidence}] when predicted"),
                  schema="intake")
    op.create_index("ix_intake_reports_tenant_category_reported", "reports",
                    ["tenant", "category_code", "reported_at"], schema="intake")


def downgrade() -> None:
    op.drop_index("ix_intake_reports_tenant_category_reported", table_name="reports", schema="intake")
    for column in ("category_suggestions", "category_confidence", "model_version", "category_source"):
        op.drop_column("reports", column, schema="intake")
