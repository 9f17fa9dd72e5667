"""step cells by month: the per-event KPIs' cells and case days in the month cuboids 0–3, and the
case days by tenant and day (cuboid 10) (issue 14; services/reporting/kpis/step_cuboids.py,
docs/kpis.md §10)

Revision ID: 4e7a2c9d1b58
Revises: cb378725bf37
Create Date: 2026-12-07 16:30:00

Both tables are backfilled here from the day tables ``step_cells`` and ``step_case_days``, as the
fold would have added them (step_cuboids.py ``month_cells`` and ``month_case_days``): each day
becomes the first day of its month, the place the grid's code (cuboid 0) or its community's (1–3),
the one dimension kept the category (1), the department (2) or the channel (3); case days whose
previous day lies in their own month are left out, and those counted per department are kept only
in the cuboids 2 and 10. No rebuild is needed.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4e7a2c9d1b58"
down_revision: str | Sequence[str] | None = "cb378725bf37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The counters of step_cells, as of this revision.
COUNTERS = ("events", "transfers_out", "transfers_in", "dispatches", "inaccurate_dispatches", "returned",
            "recategorized", "handovers", "responded", "callbacks", "callbacks_unreachable", "callbacks_satisfied",
            "callbacks_rated", "callbacks_resolved", "reopened", "escalations", "mediation_agreements",
            "mediation_escalations", "mediation_handoffs", "mediation_hours_us", "mediation_hours_n")
CELL_KEY = ("cuboid", "tenant", "day", "place_code", "category_code", "department", "channel", "rung")
CASE_DAY_KEY = ("cuboid", "tenant", "figure", "day", "prev_day", "by_department", "by_rung", "department", "rung",
                "place_code", "category_code", "channel")
#: cuboid → (its place expression over the day row s, the dimension it keeps or None)
CUBOIDS = {0: ("s.place_code", None), 1: ("left(s.place_code, 12)", "category_code"),
           2: ("left(s.place_code, 12)", "department"), 3: ("left(s.place_code, 12)", "channel")}
DAY_CUBOID = 10


def _month(column: str) -> str:
    """The first day of the date's month (date arithmetic: no time zone involved)."""
    return f"({column} - (extract(day FROM {column})::int - 1))"


def _dims(cuboid: int) -> dict[str, str]:
    dim = CUBOIDS[cuboid][1]
    return {d: (f"s.{d}" if d == dim else "NULL::text") for d in ("category_code", "department", "channel")}


def backfill_cells_sql(cuboid: int, one_tenant: bool = False) -> str:
    """The month cuboid ``cuboid``'s cells summed from ``step_cells``; ``one_tenant``: only the
    tenant ``$1`` (a test's)."""
    dims = _dims(cuboid)
    sums = ", ".join(f"sum(s.{c})" for c in COUNTERS)
    return (
        f"INSERT INTO reporting.step_month_cells ({', '.join(CELL_KEY)}, {', '.join(COUNTERS)})\n"
        f"SELECT {cuboid}, s.tenant, {_month('s.day')}, {CUBOIDS[cuboid][0]}, {dims['category_code']}, "
        f"{dims['department']}, {dims['channel']}, s.rung, {sums}\n"
        f"FROM reporting.step_cells s{' WHERE s.tenant = $1' if one_tenant else ''}\n"
        "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8\n"
        f"HAVING {' OR '.join(f'sum(s.{c}) <> 0' for c in COUNTERS)}")


def backfill_case_days_sql(cuboid: int, one_tenant: bool = False) -> str:
    """The cuboid ``cuboid``'s case days (0–3 by month, :data:`DAY_CUBOID` by day) summed from
    ``step_case_days``; ``one_tenant``: only the tenant ``$1`` (a test's)."""
    if cuboid == DAY_CUBOID:
        day, prev, place, dims = "s.day", "s.prev_day", "''", {"category_code": "NULL::text",
                                                               "department": "s.department", "channel": "NULL::text"}
        where = ["TRUE"]
    else:
        day, prev, place, dims = _month("s.day"), _month("s.prev_day"), CUBOIDS[cuboid][0], _dims(cuboid)
        where = [f"(s.prev_day IS NULL OR {prev} <> {day})"]
        if cuboid != 2:
            where.append("NOT s.by_department")
    if one_tenant:
        where.append("s.tenant = $1")
    return (
        f"INSERT INTO reporting.step_month_case_days ({', '.join(CASE_DAY_KEY)}, cases)\n"
        f"SELECT {cuboid}, s.tenant, s.figure, {day}, {prev}, s.by_department, s.by_rung, {dims['department']}, "
        f"s.rung, {place}, {dims['category_code']}, {dims['channel']}, sum(s.cases)\n"
        f"FROM reporting.step_case_days s WHERE {' AND '.join(where)}\n"
        "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12\n"
        "HAVING sum(s.cases) <> 0")


def _key_columns() -> list[sa.Column]:
    return [sa.Column("cuboid", sa.SmallInteger(), nullable=False),
            sa.Column("tenant", sa.String(40), nullable=False), sa.Column("day", sa.Date(), nullable=False),
            sa.Column("place_code", sa.String(24), nullable=False), sa.Column("category_code", sa.String(64)),
            sa.Column("department", sa.String(100)), sa.Column("channel", sa.String(64)),
            sa.Column("rung", sa.String(16))]


def upgrade() -> None:
    op.create_table(
        "step_month_cells",
        *_key_columns(),
        *[sa.Column(c, sa.BigInteger() if c.endswith("_us") else sa.Integer(), nullable=False, server_default="0")
          for c in COUNTERS],
        schema="reporting",
        comment="per-event KPI cells by month: cuboid (0 grid, 1 community x category, 2 community x department, "
                "3 community x channel) x tenant x month x rung",
    )
    op.create_index("ux_reporting_step_month_cells_key", "step_month_cells", list(CELL_KEY), unique=True,
                    schema="reporting", postgresql_nulls_not_distinct=True)
    op.create_table(
        "step_month_case_days",
        *_key_columns(),
        sa.Column("figure", sa.String(32), nullable=False),
        sa.Column("prev_day", sa.Date()),
        sa.Column("by_department", sa.Boolean(), nullable=False),
        sa.Column("by_rung", sa.Boolean(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False, server_default="0"),
        schema="reporting",
        comment="first-in-period case days of the per-event 'cases' KPIs by month (cuboids 0-3) and by tenant x day (10)",
    )
    op.create_index("ux_reporting_step_month_case_days_key", "step_month_case_days", list(CASE_DAY_KEY), unique=True,
                    schema="reporting", postgresql_nulls_not_distinct=True)
    for cuboid in CUBOIDS:
        op.execute(backfill_cells_sql(cuboid))
    for cuboid in (*CUBOIDS, DAY_CUBOID):
        op.execute(backfill_case_days_sql(cuboid))


def downgrade() -> None:
    op.drop_index("ux_reporting_step_month_case_days_key", table_name="step_month_case_days", schema="reporting")
    op.drop_table("step_month_case_days", schema="reporting")
    op.drop_index("ux_reporting_step_month_cells_key", table_name="step_month_cells", schema="reporting")
    op.drop_table("step_month_cells", schema="reporting")
