"""case_view: an index of the cases whose category was corrected (possible duplicates, issue 15)

The possible-duplicate probe reads the stored reports of the new report's category now: those
reported in it (ix_intake_reports_tenant_category_reported) and those corrected into it since,
found through this partial index (corrections are few).

Revision ID: 5c2d8e1f0a47
Revises: a13b0c0f1e01
Create Date: 2026-12-07 20:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c2d8e1f0a47"
down_revision: str | Sequence[str] | None = "a13b0c0f1e01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_intake_case_view_recategorized", "case_view", ["category_code"], schema="intake",
                    postgresql_where=sa.text("category_seq IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_intake_case_view_recategorized", table_name="case_view", schema="intake")
