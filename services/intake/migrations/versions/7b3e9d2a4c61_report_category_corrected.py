"""reports: the corrected category beside the reported one, and the duplicate probe's index by the
category now (issue 15, docs/classifier.md §4)

The possible-duplicate probe selected stored reports by the category as reported, so a case
corrected into the new report's category was never read. ``category_corrected`` holds the case
view's corrected category (the case-view consumer copies it when a recategorization arrives:
services/intake/textstore.py ``keep_corrected_categories``); the probe's index is on
``coalesce(category_corrected, category_code)``, the category now, in place of the one on the
category as reported (which only the probe used). The column is filled here from the case view for
the cases already recategorized (``category_seq`` set): few rows, and no rewrite of the others.

Revision ID: 7b3e9d2a4c61
Revises: a13b0c0f1e01
Create Date: 2026-12-07 22:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b3e9d2a4c61"
down_revision: str | Sequence[str] | None = "a13b0c0f1e01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column, fill it from the case view, swap the probe's index."""
    op.add_column("reports", sa.Column("category_corrected", sa.String(64),
                                       comment="the case view's corrected category (NULL: never recategorized); "
                                               "possible duplicates"),
                  schema="intake")
    op.execute("UPDATE intake.reports AS r SET category_corrected = v.category_code "
               "FROM intake.case_view AS v "
               "WHERE v.case_id = r.case_id AND v.category_seq IS NOT NULL AND v.category_code IS NOT NULL")
    op.create_index("ix_intake_reports_tenant_category_now_reported", "reports",
                    ["tenant", sa.text("coalesce(category_corrected, category_code)"), "reported_at"],
                    schema="intake")
    op.drop_index("ix_intake_reports_tenant_category_reported", table_name="reports", schema="intake")


def downgrade() -> None:
    op.create_index("ix_intake_reports_tenant_category_reported", "reports",
                    ["tenant", "category_code", "reported_at"], schema="intake")
    op.drop_index("ix_intake_reports_tenant_category_now_reported", table_name="reports", schema="intake")
    op.drop_column("reports", "category_corrected", schema="intake")
