"""KPI rollups by month and cuboid (issue 14; services/reporting/kpis/cuboids.py): the day cells,
spans and sketches summed over the month and over all dimensions but one, so that a month's
dashboard reads a few thousand rows.

Revision ID: 6e2f9a1c4b70
Revises: d5c8e1f4a6b2
Create Date: 2026-12-07 04:30:00

No backfill: every tenant is marked mixed (``kpi_zones.tz`` = '') so its KPI readers scan the facts
(services/reporting/kpis/rollup_query.py) until ``gridcase reporting rebuild`` refolds the day cells
and the cuboids together.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "6e2f9a1c4b70"
down_revision: str | Sequence[str] | None = "d5c8e1f4a6b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'kpi_month_cells',
        sa.Column('cuboid', sa.SmallInteger(), nullable=False, comment='services/reporting/kpis/cuboids.py CUBOIDS: which dimensions the row keeps'),
        sa.Column('tenant', sa.String(40), nullable=False),
        sa.Column('place_code', sa.String(24), nullable=False),
        sa.Column('category_code', sa.String(64)),
        sa.Column('department', sa.String(100)),
        sa.Column('channel', sa.String(64)),
        sa.Column('day', sa.Date(), nullable=False, comment="first day of the month (kpi_cells.day's month)"),
        sa.Column('lo', sa.Date(), comment="kpi_cells.lo's month"),
        sa.Column('hi', sa.Date(), comment="kpi_cells.hi's month"),
        sa.Column('accepted', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('filed', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('swept', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('closed', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('resolved', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('partly_resolved', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('unresolved', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('unfounded', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('duplicate', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('not_remit', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('outcome_unrecorded', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('closed_on_time', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('closed_late', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('dispatched', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('transferred', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('disposed', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('rework', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('supervisions', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('supervised_cases', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('merged_duplicates', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('ack_n', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('ack_us', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('ack_wn', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('ack_wus', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('close_n', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('close_us', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('close_wn', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('close_wus', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('final_close_n', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('final_close_us', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('final_close_wn', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('final_close_wus', sa.BigInteger(), nullable=False, server_default='0'),
        schema='reporting', comment='KPI rollups by month and cuboid (sums of kpi_cells)',
    )
    op.create_index('ux_reporting_kpi_month_cells_key', 'kpi_month_cells', ['tenant', 'cuboid', 'day', 'place_code', 'category_code', 'department', 'channel', 'lo', 'hi'], unique=True, schema='reporting',
                    postgresql_nulls_not_distinct=True)
    op.create_table(
        'kpi_month_spans',
        sa.Column('cuboid', sa.SmallInteger(), nullable=False, comment='services/reporting/kpis/cuboids.py CUBOIDS: which dimensions the row keeps'),
        sa.Column('tenant', sa.String(40), nullable=False),
        sa.Column('place_code', sa.String(24), nullable=False),
        sa.Column('category_code', sa.String(64)),
        sa.Column('department', sa.String(100)),
        sa.Column('channel', sa.String(64)),
        sa.Column('day', sa.Date(), nullable=False, comment="kpi_spans.day's month"),
        sa.Column('hi', sa.Date(), comment="kpi_spans.hi's month"),
        sa.Column('close_day', sa.Date(), nullable=False, comment="kpi_spans.close_day's month; 9999-12-31 while open"),
        sa.Column('due_open', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('open_own', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('open_transferred', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('overdue', sa.Integer(), nullable=False, server_default='0'),
        schema='reporting', comment='KPI rollups: the spans by month and cuboid (sums of kpi_spans)',
    )
    op.create_index('ux_reporting_kpi_month_spans_key', 'kpi_month_spans', ['tenant', 'cuboid', 'close_day', 'day', 'place_code', 'category_code', 'department', 'channel', 'hi'], unique=True, schema='reporting',
                    postgresql_nulls_not_distinct=True)
    op.create_table(
        'kpi_month_sketches',
        sa.Column('cuboid', sa.SmallInteger(), nullable=False, comment='services/reporting/kpis/cuboids.py CUBOIDS: which dimensions the row keeps'),
        sa.Column('tenant', sa.String(40), nullable=False),
        sa.Column('place_code', sa.String(24), nullable=False),
        sa.Column('category_code', sa.String(64)),
        sa.Column('department', sa.String(100)),
        sa.Column('channel', sa.String(64)),
        sa.Column('day', sa.Date(), nullable=False, comment="first day of the month (kpi_cells.day's month)"),
        sa.Column('lo', sa.Date(), comment="kpi_cells.lo's month"),
        sa.Column('hi', sa.Date(), comment="kpi_cells.hi's month"),
        sa.Column('b', postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"), comment='as kpi_sketches.b, summed over the month and the dimensions the cuboid drops'),
        schema='reporting', comment='KPI rollups: the quantile sketches by month and cuboid',
    )
    op.create_index('ux_reporting_kpi_month_sketches_key', 'kpi_month_sketches', ['tenant', 'cuboid', 'day', 'place_code', 'category_code', 'department', 'channel', 'lo', 'hi'], unique=True, schema='reporting',
                    postgresql_nulls_not_distinct=True)
    op.execute("UPDATE reporting.kpi_zones SET tz = ''")


def downgrade() -> None:
    for table in ("kpi_month_sketches", "kpi_month_spans", "kpi_month_cells"):
        op.drop_table(table, schema="reporting")
