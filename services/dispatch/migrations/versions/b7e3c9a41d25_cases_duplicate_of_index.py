"""cases: index of the original a case names (duplicate_of)

``CaseBook.merged_into`` (services/dispatch/store.py) finds the cases merged into the cases of a
batch's cancel, reject and merge actions, and of any refused action: through the tenant and status
index it read every cancelled case of the tenant and its lifecycle JSON (50–70 ms with 100,000
cancelled cases on the test machine); this partial expression index holds only the cases that name
an original (1 ms).

Revision ID: b7e3c9a41d25
Revises: d13b0c0f1e02
Create Date: 2026-12-07 01:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e3c9a41d25"
down_revision: str | Sequence[str] | None = "d13b0c0f1e02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_dispatch_cases_duplicate_of", "cases", [sa.text("(lifecycle ->> 'duplicate_of')")],
                    schema="dispatch", postgresql_where=sa.text("(lifecycle ->> 'duplicate_of') IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_dispatch_cases_duplicate_of", table_name="cases", schema="dispatch")
