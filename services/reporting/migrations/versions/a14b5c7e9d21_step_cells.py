"""step cells: the per-event KPIs as additive rollups (issue 14, services/reporting/kpis/step_cells.py)

Revision ID: a14b5c7e9d21
Revises: f3b7c1d9e2a4
Create Date: 2026-12-06 23:00:00

Existing steps get their cells from ``gridcase reporting rebuild`` (it folds the event log again).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a14b5c7e9d21"
down_revision: str | Sequence[str] | None = "f3b7c1d9e2a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ("tenant", "day", "place_code", "category_code", "department", "channel", "rung")
COUNTERS = ("events", "transfers_out", "transfers_in", "dispatches", "inaccurate_dispatches", "returned",
            "recategorized", "handovers", "responded", "callbacks", "callbacks_unreachable", "callbacks_satisfied",
            "callbacks_rated", "callbacks_resolved", "reopened", "escalations", "mediation_agreements",
            "mediation_escalations", "mediation_handoffs", "mediation_hours_us", "mediation_hours_n")
CASE_DAY_KEY = ("tenant", "figure", "day", "by_department", "by_rung", "department", "rung", "place_code",
                "category_code", "channel", "prev_day")


def _key_columns() -> list[sa.Column]:
    return [sa.Column("tenant", sa.String(40), nullable=False), sa.Column("day", sa.Date(), nullable=False),
            sa.Column("place_code", sa.String(24), nullable=False), sa.Column("category_code", sa.String(64)),
            sa.Column("department", sa.String(100)), sa.Column("channel", sa.String(64)),
            sa.Column("rung", sa.String(16))]


def upgrade() -> None:
    op.create_table(
        "step_cells",
        *_key_columns(),
        *[sa.Column(c, sa.BigInteger() if c.endswith("_us") else sa.Integer(), nullable=False, server_default="0")
          for c in COUNTERS],
        schema="reporting",
        comment="per-event KPI cells: tenant x local day x grid x category x department x channel x rung",
    )
    op.create_index("ux_reporting_step_cells_key", "step_cells", list(KEY), unique=True, schema="reporting",
                    postgresql_nulls_not_distinct=True)
    op.create_table(
        "step_day_cells",
        sa.Column("tenant", sa.String(40), nullable=False), sa.Column("day", sa.Date(), nullable=False),
        sa.Column("department", sa.String(100)), sa.Column("rung", sa.String(16)),
        *[sa.Column(c, sa.BigInteger() if c.endswith("_us") else sa.Integer(), nullable=False, server_default="0")
          for c in COUNTERS],
        schema="reporting",
        comment="per-event KPI cells summed over places, categories and channels: tenant x local day x department x rung",
    )
    op.create_index("ux_reporting_step_day_cells_key", "step_day_cells", ["tenant", "day", "department", "rung"],
                    unique=True, schema="reporting", postgresql_nulls_not_distinct=True)
    op.create_table(
        "step_case_days",
        *_key_columns(),
        sa.Column("figure", sa.String(32), nullable=False),
        sa.Column("prev_day", sa.Date()),
        sa.Column("by_department", sa.Boolean(), nullable=False),
        sa.Column("by_rung", sa.Boolean(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False, server_default="0"),
        schema="reporting",
        comment="first-in-period case days of the per-event 'cases' KPIs",
    )
    op.create_index("ux_reporting_step_case_days_key", "step_case_days", list(CASE_DAY_KEY), unique=True,
                    schema="reporting", postgresql_nulls_not_distinct=True)
    op.create_table(
        "step_cell_zones",
        sa.Column("tenant", sa.String(40), primary_key=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        schema="reporting",
    )


def downgrade() -> None:
    op.drop_table("step_cell_zones", schema="reporting")
    op.drop_index("ux_reporting_step_day_cells_key", table_name="step_day_cells", schema="reporting")
    op.drop_table("step_day_cells", schema="reporting")
    op.drop_index("ux_reporting_step_case_days_key", table_name="step_case_days", schema="reporting")
    op.drop_table("step_case_days", schema="reporting")
    op.drop_index("ux_reporting_step_cells_key", table_name="step_cells", schema="reporting")
    op.drop_table("step_cells", schema="reporting")
