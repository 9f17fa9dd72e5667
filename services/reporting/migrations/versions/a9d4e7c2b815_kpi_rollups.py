"""KPI rollups (issue 14): additive cells per tenant, local day, place, category, department and
channel, the spans (应办结, 在办, 超期 open) and the zone of each tenant's cells (services/reporting/kpis/cells.py).

Revision ID: a9d4e7c2b815
Revises: a14b5c7e9d21
Create Date: 2026-12-06 23:00:00

No backfill here: every tenant that already has facts is marked mixed (``kpi_zones.tz`` = '') so
its KPI readers keep scanning the facts (services/reporting/kpis/rollup_query.py) until
``gridcase reporting rebuild`` refolds the event log into the facts and the cells together.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a9d4e7c2b815"
down_revision: str | Sequence[str] | None = "a14b5c7e9d21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'kpi_cells',
        sa.Column('tenant', sa.String(40), nullable=False),
        sa.Column('place_code', sa.String(24), nullable=False),
        sa.Column('category_code', sa.String(64)),
        sa.Column('department', sa.String(100)),
        sa.Column('channel', sa.String(64)),
        sa.Column('day', sa.Date(), nullable=False, comment="local day (tenant's time zone) of the counted moment"),
        sa.Column('lo', sa.Date(), comment='close day, when before day (the case must not be closed before P)'),
        sa.Column('hi', sa.Date(), comment='report day, when after day (the case must be reported before P ends)'),
        sa.Column('accepted', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('filed', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('swept', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('closed', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('resolved', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('partly_resolved', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('unresolved', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('unfounded', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('duplicate', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('not_remit', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('outcome_unrecorded', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('closed_on_time', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('closed_late', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('dispatched', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('transferred', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('disposed', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('rework', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('supervisions', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('supervised_cases', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('merged_duplicates', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('ack_n', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('ack_us', sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column('ack_wn', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('ack_wus', sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column('close_n', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('close_us', sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column('close_wn', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('close_wus', sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column('final_close_n', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('final_close_us', sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column('final_close_wn', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('final_close_wus', sa.BigInteger(), nullable=False, server_default="0"),
        schema='reporting', comment='KPI rollups: additive cells per tenant, local day, place, category, department, channel',
    )
    op.create_index('ux_reporting_kpi_cells_key', 'kpi_cells', ['tenant', 'day', 'place_code', 'category_code', 'department', 'channel', 'lo', 'hi'], unique=True, schema='reporting',
                    postgresql_nulls_not_distinct=True)
    op.create_table(
        'kpi_spans',
        sa.Column('tenant', sa.String(40), nullable=False),
        sa.Column('place_code', sa.String(24), nullable=False),
        sa.Column('category_code', sa.String(64)),
        sa.Column('department', sa.String(100)),
        sa.Column('channel', sa.String(64)),
        sa.Column('day', sa.Date(), nullable=False, comment='first day: due day (应办结), report day (在办), overdue day'),
        sa.Column('hi', sa.Date(), comment='report day, when after a due day'),
        sa.Column('close_day', sa.Date(), nullable=False, comment='close day; 9999-12-31 while open'),
        sa.Column('due_open', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('open_own', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('open_transferred', sa.Integer(), nullable=False, server_default="0"),
        sa.Column('overdue', sa.Integer(), nullable=False, server_default="0"),
        schema='reporting', comment="KPI rollups: spans from a first day to the close day (应办结's open part, 在办, 超期 open)",
    )
    op.create_index('ux_reporting_kpi_spans_key', 'kpi_spans', ['tenant', 'close_day', 'day', 'place_code', 'category_code', 'department', 'channel', 'hi'], unique=True, schema='reporting',
                    postgresql_nulls_not_distinct=True)
    op.create_table(
        'kpi_zones',
        sa.Column('tenant', sa.String(40), primary_key=True),
        sa.Column('tz', sa.String(64), nullable=False, comment="time zone of the tenant's cells; '' if mixed"),
        schema='reporting', comment="KPI rollups: the time zone each tenant's cells were cut in",
    )

    op.execute("INSERT INTO reporting.kpi_zones (tenant, tz) SELECT DISTINCT tenant, '' FROM reporting.case_facts")


def downgrade() -> None:
    op.drop_table("kpi_zones", schema="reporting")
    op.drop_table("kpi_due_cells", schema="reporting")
    op.drop_table("kpi_cells", schema="reporting")
