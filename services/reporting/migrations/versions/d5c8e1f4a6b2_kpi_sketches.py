"""KPI quantile sketches (issue 14): per cell of kpi_cells, the count per time statistic and bucket
of ddsketch's LogarithmicMapping (services/reporting/kpis/sketch.py), as jsonb.

Revision ID: d5c8e1f4a6b2
Revises: a9d4e7c2b815
Create Date: 2026-12-07 00:00:00

No backfill: every tenant is marked mixed (``kpi_zones.tz`` = '') so its KPI readers scan the facts
(services/reporting/kpis/rollup_query.py) until ``gridcase reporting rebuild`` refolds the cells and
the sketches together.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d5c8e1f4a6b2"
down_revision: str | Sequence[str] | None = "a9d4e7c2b815"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'kpi_sketches',
        sa.Column('tenant', sa.String(40), nullable=False),
        sa.Column('place_code', sa.String(24), nullable=False),
        sa.Column('category_code', sa.String(64)),
        sa.Column('department', sa.String(100)),
        sa.Column('channel', sa.String(64)),
        sa.Column('day', sa.Date(), nullable=False, comment="the cell's day (kpi_cells.day)"),
        sa.Column('lo', sa.Date(), comment="the cell's lo (kpi_cells.lo)"),
        sa.Column('hi', sa.Date(), comment="the cell's hi (kpi_cells.hi)"),
        sa.Column('b', postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"),
                  comment='{"<statistic>:<bucket>": count}: statistic <prefix>_hours or <prefix>_working_hours (rules.py '
                          "TIME_RULES), bucket the ddsketch LogarithmicMapping(0.01) key of the hours, -2147483648 for zero "
                          "(services/reporting/kpis/sketch.py); no zero counts"),
        schema='reporting', comment="KPI rollups: per cell, the quantile sketches' counts per time statistic and bucket",
    )
    op.create_index('ux_reporting_kpi_sketches_key', 'kpi_sketches',
                    ['tenant', 'day', 'place_code', 'category_code', 'department', 'channel', 'lo', 'hi'],
                    unique=True, schema='reporting', postgresql_nulls_not_distinct=True)
    op.execute("UPDATE reporting.kpi_zones SET tz = ''")


def downgrade() -> None:
    op.drop_table("kpi_sketches", schema="reporting")
