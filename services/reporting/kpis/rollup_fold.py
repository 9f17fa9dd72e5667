"""Keeping the KPI rollups (services/reporting/kpis/cells.py) in the fold's transaction: from the fact
rows of the batch's cases before and after the fold, one set-based upsert per rollup table adding
``contributions(new) − contributions(old)``.

The rows come from the step fold's two reads of the touched cases (services/reporting/step_rollup.py
``StepFold``: one statement before the fold, after the cases' advisory locks, reading the fact
rows ``FOR UPDATE`` with their steps, and one after), shared with the step cells. The locks make a
concurrent fold of the same case (a second consumer, a replica) wait and then see this one's
result: the pair (before, after) is always a real step of the row, and sums commute, so the cells
stay exact under redeliveries (dropped by ``processed_events`` before the fold) and any arrival order.

Why not ``INSERT … ON CONFLICT … RETURNING old.*, new.*`` (PostgreSQL 18): the fold sends each event
type as an executemany, and a batch may hold several events of one case and type, each a separate
statement; RETURNING would turn the executemany into one multi-row INSERT (SQLAlchemy's
insertmanyvalues), which cannot touch one row twice. Two primary-key reads per batch (shared
with the step cells) cost less than changing the fold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import (
    case_facts,
    kpi_cells,
    kpi_month_cells,
    kpi_month_sketches,
    kpi_month_spans,
    kpi_sketches,
    kpi_spans,
    kpi_zones,
)
from services.reporting.kpis.cell_columns import COUNTERS, SKETCH_STATS, SPAN_COUNTERS
from services.reporting.kpis.cells import CellKey, SpanKey, all_deltas
from services.reporting.kpis.clock import tz_name
from services.reporting.kpis.cuboids import MonthCellKey, MonthSpanKey, month_deltas
from services.reporting.kpis.sketch import summary

_CELL_KEY = CellKey._fields
_SPAN_KEY = SpanKey._fields
_MONTH_CELL_KEY = MonthCellKey._fields
_MONTH_SPAN_KEY = MonthSpanKey._fields


def _types(table: sa.Table, names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        t = table.c[name].type
        out.append("date" if isinstance(t, sa.Date) else "bigint" if isinstance(t, sa.BigInteger)
                   else "int" if isinstance(t, sa.Integer) else "bool" if isinstance(t, sa.Boolean) else "text")
    return out


def upsert_sql(table: sa.Table, key: Sequence[str], counters: Sequence[str]) -> str:
    """``INSERT … SELECT FROM unnest($1, …) ON CONFLICT (key) DO UPDATE SET c = cell.c + excluded.c``:
    additive cells, one array per column in ``key`` then ``counters`` order (the KPI rollups here,
    the step cells in services/reporting/step_rollup.py)."""
    cols = [*key, *counters]
    args = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_types(table, cols), start=1))
    sets = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in counters)
    return (f"INSERT INTO {table.schema}.{table.name} AS t ({', '.join(cols)})\n"
            f"SELECT * FROM unnest({args})\n"
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}")


def sketches_sql(table: sa.Table, key: Sequence[str], returning: bool = False) -> str:
    """The sketches' upsert: one jsonb ``{"<statistic>:<bucket>": count}`` per cell, merged key by
    key on conflict, the counts that reach 0 dropped (a cell whose cases all moved on keeps ``{}``).
    ``returning``: each row's ``ctid`` and merged map as text, for :data:`SUMMARY_SQL`."""
    tail = "\nRETURNING t.ctid, t.b::text" if returning else ""
    return (f"INSERT INTO {table.schema}.{table.name} AS t ({', '.join(key)}, b)\n"
            f"SELECT u.{', u.'.join(key)}, u.b::jsonb FROM unnest("
            f"{', '.join(f'${i}::{t}[]' for i, t in enumerate(_types(table, key), start=1))}, "
            f"${len(key) + 1}::text[]) AS u({', '.join(key)}, b)\n"
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET b = (\n"
            f"  SELECT coalesce(jsonb_object_agg(e.k, e.n), '{{}}'::jsonb) FROM (\n"
            f"    SELECT k, sum(v::int) AS n FROM (SELECT * FROM jsonb_each_text(t.b) UNION ALL SELECT * FROM jsonb_each_text(excluded.b)) AS x(k, v)\n"
            f"    GROUP BY k HAVING sum(v::int) <> 0) AS e){tail}")


#: A month sketch row's stored quantiles (``kpi_month_sketches.q``), set by ``ctid`` right after
#: its upsert (:func:`sketches_sql` ``returning``) in the same transaction, which holds the row's lock.
SUMMARY_SQL = ("UPDATE reporting.kpi_month_sketches AS t SET q = u.q::float8[]\n"
               "FROM unnest($1::tid[], $2::text[]) AS u(id, q) WHERE t.ctid = u.id")


#: The day rollups, then the month cuboids (services/reporting/kpis/cuboids.py): (cells, spans,
#: sketches) statements, each with its key columns.
DAY_SQL = ((upsert_sql(kpi_cells, _CELL_KEY, COUNTERS), _CELL_KEY),
           (upsert_sql(kpi_spans, _SPAN_KEY, SPAN_COUNTERS), _SPAN_KEY),
           (sketches_sql(kpi_sketches, _CELL_KEY), _CELL_KEY))
MONTH_SQL = ((upsert_sql(kpi_month_cells, _MONTH_CELL_KEY, COUNTERS), _MONTH_CELL_KEY),
             (upsert_sql(kpi_month_spans, _MONTH_SPAN_KEY, SPAN_COUNTERS), _MONTH_SPAN_KEY),
             (sketches_sql(kpi_month_sketches, _MONTH_CELL_KEY, returning=True), _MONTH_CELL_KEY))
#: The zone a tenant's cells are cut in; a second zone marks them mixed ('') until a rebuild.
ZONES_SQL = ("INSERT INTO reporting.kpi_zones AS z (tenant, tz) SELECT * FROM unnest($1::text[], $2::text[]) "
             "ON CONFLICT (tenant) DO UPDATE SET tz = CASE WHEN z.tz = excluded.tz THEN z.tz ELSE '' END "
             "WHERE z.tz IS DISTINCT FROM excluded.tz")


def _sort_key(kv) -> tuple:
    return tuple("" if v is None else str(v) for v in kv[0])


async def _upsert(conn: AsyncConnection, statements, cells: dict, dues: dict, points: dict) -> None:
    """One statement per table: cells and spans as arrays of key columns and counters, the sketch
    points as one jsonb of bucket counts per cell."""
    for (sql, key), rows, counters in zip(statements[:2], (cells, dues), (COUNTERS, SPAN_COUNTERS), strict=True):
        if not rows:
            continue
        # sorted, so that concurrent transactions take the rows' locks in one order
        items = sorted(rows.items(), key=_sort_key)
        columns: list[list[Any]] = [[k[i] for k, _ in items] for i in range(len(key))]
        columns += [[v.get(name, 0) for _, v in items] for name in counters]
        await conn.exec_driver_sql(sql, tuple(columns))
    if points:
        sql, key = statements[2]
        sketches: dict[tuple, dict[str, int]] = {}
        for (cell, stat, bucket), n in points.items():
            sketches.setdefault(cell, {})[f"{stat}:{bucket}"] = n
        items = sorted(sketches.items(), key=_sort_key)
        columns = [[k[i] for k, _ in items] for i in range(len(key))]
        columns.append([json.dumps(v, sort_keys=True) for _, v in items])
        result = await conn.exec_driver_sql(sql, tuple(columns))
        if result.returns_rows:
            await _summarize(conn, result.all())


def _pg_array(values: Sequence[float | None]) -> str:
    """A float8[] literal (``{1.5,NULL}``); ``repr`` keeps every digit of a float."""
    return "{" + ",".join("NULL" if v is None else repr(v) for v in values) + "}"


async def _summarize(conn: AsyncConnection, rows: Sequence) -> None:
    """Store each upserted month sketch row's quantiles (:data:`SUMMARY_SQL`): the median and p90
    of every statistic (services/reporting/kpis/sketch.py ``summary``), so that a reader whose slot
    is this one row needs neither its buckets nor a sum (services/reporting/kpis/rollup_query.py)."""
    ids = [ctid for ctid, _ in rows]
    qs = [_pg_array(summary(json.loads(b), SKETCH_STATS)) for _, b in rows]
    await conn.exec_driver_sql(SUMMARY_SQL, (ids, qs))


async def apply_cell_deltas(conn: AsyncConnection, cells: dict, dues: dict, points: dict | None = None) -> None:
    """Add the deltas (:func:`services.reporting.kpis.cells.all_deltas`) to the day rollup tables and
    their sums to the month cuboids (services/reporting/kpis/cuboids.py), one statement per table
    (``points``: the sketches' bucket deltas)."""
    points = points or {}
    await _upsert(conn, DAY_SQL, cells, dues, points)
    await _upsert(conn, MONTH_SQL, *month_deltas(cells, dues, points))


async def apply_rollups(conn: AsyncConnection, ids: Iterable, before: Mapping[Any, Mapping],
                        after: Mapping[Any, Mapping], tz_of: Callable[[str], tzinfo]) -> None:
    """Move the rollups by the change of each case's fact row: ``before`` and ``after`` are the fact
    rows of the cases ``ids`` as the fold found and left them (``{case_id: row}``, no key: no row;
    read by services/reporting/step_rollup.py ``StepFold``, the rows before ``FOR UPDATE``)."""
    ids = list(ids)
    cells, dues, points = all_deltas(((before.get(i), after.get(i)) for i in ids), tz_of)
    tenants = sorted({row["tenant"] for row in after.values()})
    await conn.exec_driver_sql(ZONES_SQL, ([t for t in tenants], [tz_name(tz_of(t)) for t in tenants]))
    await apply_cell_deltas(conn, cells, dues, points)


async def rollups_from_facts(conn: AsyncConnection, tenant: str, tz_of: Callable[[str], tzinfo],
                             page: int = 5_000) -> int:
    """Empty ``tenant``'s rollups and recompute them from its ``case_facts`` as they stand (each
    case's contributions, added page by page); for facts loaded without the fold (bench/kpi_data.py's
    COPY). ``gridcase reporting rebuild`` refolds the events instead. Returns the cases read."""
    for table in (kpi_cells, kpi_spans, kpi_sketches, kpi_month_cells, kpi_month_spans, kpi_month_sketches, kpi_zones):
        await conn.execute(sa.delete(table).where(table.c.tenant == tenant))
    cases, tenants = 0, set()
    # pages in report-time order (the unreported first), so that a page moves the rows of a few
    # months, not of every month: a month cuboid row is rewritten once per page that touches it
    f = case_facts.c
    for reported in (False, True):
        last = None
        while True:
            q = sa.select(case_facts).where(f.tenant == tenant, f.reported_at.is_not(None) if reported
                                            else f.reported_at.is_(None))
            if reported:
                q = q.order_by(f.reported_at, f.case_id)
                if last is not None:
                    q = q.where(f.reported_at >= last[0], sa.tuple_(f.reported_at, f.case_id) > last)
            else:
                q = q.order_by(f.case_id)
                if last is not None:
                    q = q.where(f.case_id > last[1])
            rows = [dict(r._mapping) for r in await conn.execute(q.limit(page))]
            if not rows:
                break
            last, cases = (rows[-1]["reported_at"], rows[-1]["case_id"]), cases + len(rows)
            tenants |= {r["tenant"] for r in rows}
            await apply_cell_deltas(conn, *all_deltas(((None, r) for r in rows), tz_of))
    if tenants:
        names = sorted(tenants)
        await conn.exec_driver_sql(ZONES_SQL, (names, [tz_name(tz_of(t)) for t in names]))
    return cases
