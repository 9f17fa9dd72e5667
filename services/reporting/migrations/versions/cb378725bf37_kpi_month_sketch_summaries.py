"""KPI month sketches: the sketch-only cuboids 4–9, each row's stored quantiles, and the tenant by
day (cuboid 10) (issue 14;
services/reporting/kpis/cuboids.py SKETCH_CUBOIDS, docs/kpis.md §10).

Revision ID: cb378725bf37
Revises: 6e2f9a1c4b70
Create Date: 2026-12-07 13:10:00

``kpi_month_sketches.q`` holds the median and p90 of each statistic of the row's buckets ``b``
(services/reporting/kpis/sketch.py ``summary``); the fold keeps it. Rows without it (NULL, as every
row after this migration) are read from ``b`` as before, so no rebuild is needed; ``gridcase
reporting rebuild`` fills it.

The sketch-only cuboids are backfilled here from the cuboids 0–3 already kept, by summing their
bucket maps: 4 (the tenant), 5 (street) and 6 (community) from cuboid 0, 7 (category) from 1,
8 (department) from 2, 9 (channel) from 3: each the sum over the dimensions it drops, as the fold
would have added them (cuboids.py ``month_deltas``). A tenant still marked mixed has no cuboid
rows, so nothing to backfill.

Cuboid 10, the tenant by day (cuboids.py ``DAY_CUBOID``: counters, spans and sketches with their
days as they are), is backfilled from the day tables ``kpi_cells``, ``kpi_spans`` and
``kpi_sketches``, summed over the place, category, department and channel.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "cb378725bf37"
down_revision: str | Sequence[str] | None = "6e2f9a1c4b70"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: target cuboid → (source cuboid, the target's place expression, the dimension it keeps or None)
BACKFILL = {
    4: (0, "''", None),
    5: (0, "left(s.place_code, 9)", None),
    6: (0, "left(s.place_code, 12)", None),
    7: (1, "''", "category_code"),
    8: (2, "''", "department"),
    9: (3, "''", "channel"),
}


def backfill_sql(target: int, one_tenant: bool = False) -> str:
    """Sum the source cuboid's bucket maps into the target cuboid's rows (:data:`BACKFILL`);
    ``one_tenant``: only the tenant ``$1`` (a test's)."""
    source, place, dim = BACKFILL[target]
    dims = {d: (f"s.{d}" if d == dim else "NULL") for d in ("category_code", "department", "channel")}
    return (
        "INSERT INTO reporting.kpi_month_sketches (cuboid, tenant, day, lo, hi, place_code, category_code, department, channel, b)\n"
        f"SELECT {target}, tenant, day, lo, hi, place_code, category_code, department, channel,\n"
        "  jsonb_object_agg(k, n)\n"
        "FROM (\n"
        f"  SELECT s.tenant, s.day, s.lo, s.hi, {place} AS place_code, {dims['category_code']}::text AS category_code,\n"
        f"    {dims['department']}::text AS department, {dims['channel']}::text AS channel, e.key AS k, sum(e.value::int) AS n\n"
        "  FROM reporting.kpi_month_sketches s CROSS JOIN LATERAL jsonb_each_text(s.b) AS e\n"
        f"  WHERE s.cuboid = {source}{' AND s.tenant = $1' if one_tenant else ''}\n"
        "  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9\n"
        "  HAVING sum(e.value::int) <> 0) AS x\n"
        "GROUP BY tenant, day, lo, hi, place_code, category_code, department, channel")


#: The counters of kpi_cells / kpi_month_cells and of kpi_spans / kpi_month_spans, as of this revision.
CELL_COUNTERS = ("accepted", "filed", "swept", "closed", "resolved", "partly_resolved", "unresolved", "unfounded",
                 "duplicate", "not_remit", "outcome_unrecorded", "closed_on_time", "closed_late", "dispatched",
                 "transferred", "disposed", "rework", "supervisions", "supervised_cases", "merged_duplicates",
                 "ack_n", "ack_us", "ack_wn", "ack_wus", "close_n", "close_us", "close_wn", "close_wus",
                 "final_close_n", "final_close_us", "final_close_wn", "final_close_wus")
SPAN_COUNTERS = ("due_open", "open_own", "open_transferred", "overdue")
DAY_CUBOID = 10


def backfill_day_sql(one_tenant: bool = False) -> list[str]:
    """The tenant-by-day cuboid summed from the day tables (cells, spans, sketches); ``one_tenant``:
    only the tenant ``$1`` (a test's)."""
    where = "WHERE tenant = $1 " if one_tenant else ""
    cells = ", ".join(CELL_COUNTERS)
    sums = ", ".join(f"sum({c})" for c in CELL_COUNTERS)
    spans = ", ".join(SPAN_COUNTERS)
    span_sums = ", ".join(f"sum({c})" for c in SPAN_COUNTERS)
    return [
        f"INSERT INTO reporting.kpi_month_cells (cuboid, tenant, day, lo, hi, place_code, {cells})\n"
        f"SELECT {DAY_CUBOID}, tenant, day, lo, hi, '', {sums} FROM reporting.kpi_cells {where}GROUP BY tenant, day, lo, hi",
        f"INSERT INTO reporting.kpi_month_spans (cuboid, tenant, day, hi, close_day, place_code, {spans})\n"
        f"SELECT {DAY_CUBOID}, tenant, day, hi, close_day, '', {span_sums} FROM reporting.kpi_spans {where}"
        "GROUP BY tenant, day, hi, close_day",
        "INSERT INTO reporting.kpi_month_sketches (cuboid, tenant, day, lo, hi, place_code, b)\n"
        f"SELECT {DAY_CUBOID}, tenant, day, lo, hi, '', jsonb_object_agg(k, n) FROM (\n"
        "  SELECT s.tenant, s.day, s.lo, s.hi, e.key AS k, sum(e.value::int) AS n\n"
        "  FROM reporting.kpi_sketches s CROSS JOIN LATERAL jsonb_each_text(s.b) AS e\n"
        f"  {where.replace('tenant', 's.tenant')}GROUP BY 1, 2, 3, 4, 5 HAVING sum(e.value::int) <> 0) AS x\n"
        "GROUP BY tenant, day, lo, hi",
    ]


def upgrade() -> None:
    op.add_column("kpi_month_sketches", sa.Column(
        "q", postgresql.ARRAY(sa.Float()),
        comment="median and p90 of b per statistic (services/reporting/kpis/sketch.py summary, order "
                "cell_columns.SKETCH_STATS), kept by the fold; NULL: not yet, read b"),
        schema="reporting")
    for target in BACKFILL:
        op.execute(backfill_sql(target))
    for sql in backfill_day_sql():
        op.execute(sql)


def downgrade() -> None:
    op.execute(f"DELETE FROM reporting.kpi_month_sketches WHERE cuboid IN ({', '.join(map(str, [*BACKFILL, DAY_CUBOID]))})")
    op.execute(f"DELETE FROM reporting.kpi_month_cells WHERE cuboid = {DAY_CUBOID}")
    op.execute(f"DELETE FROM reporting.kpi_month_spans WHERE cuboid = {DAY_CUBOID}")
    op.drop_column("kpi_month_sketches", "q", schema="reporting")
