"""The raw KPI figures of P from the rollups (services/reporting/kpis/cells.py) instead of a scan of
the cases: the same answer as :func:`services.reporting.kpis.queries.raw_figures`' scan, key for key.

When: every bound of P is a local midnight of the tenant's zone (or an open end), and the tenant's
cells were cut in that zone (``reporting.kpi_zones``; '' = mixed, e.g. after the migration, until
``gridcase reporting rebuild``). Otherwise :func:`rollup_figures` returns None and the caller scans.

Statements (each reads the cells of P, or the spans alive in it):

- events and means: the cells with ``day ∈ P`` and their span days (cells.py) within P, summed per
  group key and sub-period;
- states: the spans (cells.py) that close at or after P's first sub-period end and start before
  P's end (在办 and 超期 open at each sub-period's end);
- 应办结: the spans' ``due_open`` (``due = closed + due_open``);
- ``deadline < now``: the cells count a case as overdue from the later of its deadline and report;
  for a sub-period ending after ``now`` the cases whose deadline is not yet past (deadline ≥ now) are
  taken off again, read from the facts (open cases: index ``ix_reporting_case_facts_tenant_open_deadline``);
- medians and p90: the quantile sketches of the same cells (``reporting.kpi_sketches``, one jsonb
  per cell; :func:`sketch_quantiles_sql`), their bucket counts summed per group key and sub-period
  and the ranks looked up in PostgreSQL, the buckets' answers in Python (services/reporting/kpis/sketch.py:
  within relative 1 % of ``percentile_cont``).
  :func:`quantile_sql` is the scan's exact statement, kept for comparison and for the scan path.
  From the month cuboids, each slot reads the smallest cuboid that keeps what it needs, and a slot
  of one row its stored median and p90 (:func:`month_sketch_sql`, :func:`_month_sketch_quantiles`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import LIFETIME_END
from services.reporting.filters import (
    COUNTED_SQL,
    FILTER_SQL,
    SCOPE_SQL,
    CaseFilter,
    department_sql,
)
from services.reporting.kpis.cell_columns import (
    COUNTERS,
    EVENT_COUNTERS,
    SKETCH_STATS,
    STATE_COUNTERS,
    TIME_PREFIXES,
)
from services.reporting.kpis.cells import is_local_midnight, local_day
from services.reporting.kpis.clock import tz_name, working_clock_params
from services.reporting.kpis.cuboids import (
    DAY_CUBOID,
    choose,
    choose_day,
    choose_sketch,
    month_aligned,
)
from services.reporting.kpis.periods import OPEN_END, OPEN_START
from services.reporting.kpis.rules import GROUP_KEYS, TIME_RULES
from services.reporting.kpis.sketch import (
    SUMMARY_QS,
    bucket_value,
    quantiles,
    split_counts,
)
from services.reporting.kpis.sql import _cases_cte, bind, fetch_dicts

#: Stand-ins for an open end of P as days.
FIRST_DAY, LAST_DAY = date(1, 1, 1), date(9999, 12, 31)

_MICROS_PER_HOUR = 3_600_000_000
#: The endings of the counters that sum microseconds (cell_columns.TIME_COUNTERS ``<prefix>_us`` /
#: ``<prefix>_wus``): bigint columns whose sums over P are read as numeric (:func:`cells_sql`).
_MICROS = ("_us", "_wus")


def bound_days(bounds: Sequence[datetime], tz) -> list[date] | None:
    """The local days of ``bounds`` (open ends: :data:`FIRST_DAY` / :data:`LAST_DAY`), or None if a
    bound is not a local midnight of ``tz``."""
    days = []
    for i, b in enumerate(bounds):
        if i == 0 and b == OPEN_START:
            days.append(FIRST_DAY)
        elif i == len(bounds) - 1 and b == OPEN_END:
            days.append(LAST_DAY)
        elif is_local_midnight(b, tz):
            days.append(local_day(b, tz))
        else:
            return None
    return days


def _key(group_by: str | None, alias: str) -> str:
    if group_by is None or group_by.startswith("period:"):
        return "NULL::text"
    return GROUP_KEYS[group_by].replace("cf.", f"{alias}.")


def _scope(alias: str, month: bool) -> str:
    cuboid = f" AND {alias}.cuboid = :cuboid" if month else ""
    return f"{SCOPE_SQL.replace('cf.', f'{alias}.')} AND {department_sql(f'{alias}.department')}{cuboid}"


def _table(name: str, month: bool) -> str:
    """``reporting.kpi_<name>``, or its month cuboids' ``reporting.kpi_month_<name>``
    (services/reporting/kpis/cuboids.py: same columns, read with ``cuboid = :cuboid``)."""
    return f"reporting.kpi_month_{name}" if month else f"reporting.kpi_{name}"


def _cells_of_p(alias: str, month: bool) -> str:
    """The cells of P (and their sketches' rows): in scope, ``day ∈ P`` and the span days within P
    (services/reporting/kpis/cells.py)."""
    return (f"{_scope(alias, month)} AND {alias}.day >= :d0 AND {alias}.day < :dn\n"
            f"  AND ({alias}.lo IS NULL OR {alias}.lo >= :d0) AND ({alias}.hi IS NULL OR {alias}.hi < :dn)")


def cells_sql(group_by: str | None, business: bool, month: bool = False) -> str:
    """The counters of the cells of P summed per group key and sub-period ``b``, and over all of
    them (the row with ``b`` NULL: the total): counts as integers; the sums of microseconds as
    numeric, since over a big city's years they pass 2⁶³ (each row fits 64 bits, P's sum may not)."""
    sums = ", ".join(f"sum(c.{name}){'' if name.endswith(_MICROS) else '::bigint'} AS {name}"
                     for name in COUNTERS if name not in ("open_own", "open_transferred", "overdue"))
    if business:
        sums += ", coalesce(sum(c.accepted) FILTER (WHERE c.category_code = ANY(:business::text[])), 0)::bigint AS illegal_business"
    return (f"SELECT {_key(group_by, 'c')} AS key, width_bucket(c.day, :days::date[]) AS b, {sums}\n"
            f"FROM {_table('cells', month)} c\n"
            f"WHERE {_cells_of_p('c', month)}\nGROUP BY GROUPING SETS ((1, 2), ())")


def states_sql(group_by: str | None, month: bool = False) -> str:
    """The state spans alive at some sub-period end: ``(key, s, t, <counts>)`` with ``s`` / ``t`` the
    sub-periods of the first day and of the close day (``n + 1``: after P), as the scan's spans
    (:func:`~services.reporting.kpis.periods.counts_at_period_ends`)."""
    return (f"SELECT {_key(group_by, 's')} AS key, width_bucket(s.day, :days::date[]) AS s,\n"
            f"  width_bucket(s.close_day, :days::date[]) AS t,\n"
            f"  sum(s.open_own) AS open_own, sum(s.open_transferred) AS open_transferred, sum(s.overdue) AS overdue\n"
            f"FROM {_table('spans', month)} s\n"
            f"WHERE {_scope('s', month)} AND s.close_day >= :d1 AND s.day < :dn\n"
            f"  AND (s.open_own <> 0 OR s.open_transferred <> 0 OR s.overdue <> 0)\nGROUP BY 1, 2, 3")


def dues_sql(group_by: str | None, month: bool = False) -> str:
    return (f"SELECT {_key(group_by, 's')} AS key, width_bucket(s.day, :days::date[]) AS b,\n"
            f"  sum(s.due_open) FILTER (WHERE s.close_day >= (:days::date[])[width_bucket(s.day, :days::date[]) + 1]) AS per,\n"
            f"  sum(s.due_open) FILTER (WHERE s.close_day >= :dn) AS tot\n"
            f"FROM {_table('spans', month)} s\n"
            f"WHERE {_scope('s', month)} AND s.close_day >= :d1 AND s.day >= :d0 AND s.day < :dn\n"
            f"  AND (s.hi IS NULL OR s.hi < :dn) AND s.due_open <> 0\nGROUP BY 1, 2")


def not_yet_overdue_sql(group_by: str | None) -> str:
    """The counted, unshelved cases with a deadline not yet past (≥ now) before P's end, open or
    closed after now: the cells count them overdue from their deadline on (module docstring)."""
    close_t = "CASE WHEN cf.closed THEN greatest(coalesce(cf.final_closed_at, cf.closed_at, cf.reported_at), cf.reported_at) END"
    return (f"SELECT {_key(group_by, 'cf')} AS key, greatest(cf.deadline, cf.reported_at) AS t_from, {close_t} AS t_close\n"
            f"FROM reporting.case_facts cf\n"
            f"WHERE {FILTER_SQL} AND {COUNTED_SQL} AND cf.state IS DISTINCT FROM 'shelved'\n"
            f"  AND cf.deadline >= :now AND cf.deadline < :bn\n"
            f"  AND (NOT cf.closed OR (cf.closed AND {LIFETIME_END} > :now))")


def sketch_quantiles_sql(group_by: str | None, periods: bool) -> str:
    """The medians and p90 from the sketches of the cells of P (the cells :func:`cells_sql` sums),
    reckoned in PostgreSQL: the cells' bucket counts summed per answer slot (the group key, or the
    sub-period when ``periods``) and for the total (``g`` = 1), and for each statistic and q the
    buckets holding ranks ⌊q(n−1)⌋ and ⌈q(n−1)⌉ and the fraction between them — the steps of
    services/reporting/kpis/sketch.py :func:`~services.reporting.kpis.sketch.quantile` (buckets in
    key order, which is value order; only positive counts). Rows ``(slot, g, statistic, q, lo
    bucket, hi bucket, fraction)``: a few per slot instead of one per slot and bucket."""
    slot = "width_bucket(c.day, :days::date[])" if periods else _key(group_by, "c")
    return (f"WITH e AS (\n"
            f"  SELECT {slot} AS slot, e.key AS sb, e.value::int AS n\n"
            f"  FROM reporting.kpi_sketches c CROSS JOIN LATERAL jsonb_each_text(c.b) AS e\n"
            f"  WHERE {_cells_of_p('c', False)}),\n"
            f"s AS (\n"
            f"  SELECT slot, grouping(slot) AS g, split_part(sb, ':', 1) AS stat, split_part(sb, ':', 2)::int AS bucket,\n"
            f"    sum(n) AS n\n"
            f"  FROM e GROUP BY GROUPING SETS ((slot, sb), (sb)) HAVING sum(n) > 0),\n"
            f"r AS (\n"
            f"  SELECT slot, g, stat, bucket, sum(n) OVER (PARTITION BY slot, g, stat ORDER BY bucket) AS cum,\n"
            f"    sum(n) OVER (PARTITION BY slot, g, stat) AS total\n"
            f"  FROM s)\n"
            f"SELECT slot, g, stat, q.q,\n"
            f"  min(bucket) FILTER (WHERE cum > floor(q.q * (total - 1))) AS lo,\n"
            f"  min(bucket) FILTER (WHERE cum > ceil(q.q * (total - 1))) AS hi,\n"
            f"  q.q * (total - 1) - floor(q.q * (total - 1)) AS frac\n"
            f"FROM r CROSS JOIN (VALUES (0.5::float8), (0.9::float8)) AS q(q)\n"
            f"GROUP BY slot, g, stat, q.q, total")


def month_sketch_sql(group_by: str | None, periods: bool) -> str:
    """The month sketch rows of the cells of P in the cuboid ``:cuboid`` for
    :func:`_month_sketch_quantiles`: ``(slot, q, b)`` per row, ``slot`` the answer slot (the group
    key, the sub-period when ``periods``; NULL for the total), ``q`` the row's stored quantiles
    (services/reporting/kpis/rollup_fold.py), and the bucket map ``b`` as text only where it is
    needed: the slot has more than one row (their buckets are summed), or ``q`` is not kept yet (or
    was kept for another list of statistics)."""
    slot = "width_bucket(c.day, :days::date[])" if periods else _key(group_by, "c")
    # q of another length: kept for another list of statistics (cell_columns.SKETCH_STATS) until refolded.
    # An empty map is told by its stored size, which needs no decompression of b (most maps are
    # compressed; comparing each with '{}' unpacked a thousand by grid, ~5 ms): '{}' takes 8 bytes
    # (5 on disk), a map with one pair at least 13, compressed more than 8.
    return (f"SELECT slot, q, CASE WHEN q IS NULL OR cardinality(q) <> {2 * len(SKETCH_STATS)}\n"
            f"  OR count(*) OVER (PARTITION BY slot) > 1 THEN b::text END AS b\n"
            f"FROM (SELECT {slot} AS slot, c.q, c.b FROM reporting.kpi_month_sketches c\n"
            f"      WHERE {_cells_of_p('c', True)} AND pg_column_size(c.b) > pg_column_size('{{}}'::jsonb)) AS x")


def quantile_sql(group_by: str | None, periods: bool) -> str:
    """The medians and p90 of :data:`~services.reporting.kpis.rules.TIME_RULES` by the scan
    (``percentile_cont`` over the cases of P): rows of JSON ``{k, g, <prefix>_hours_q, …}``, ``k``
    the group key (one sub-period) or the sub-period, ``g`` 1 on the total."""
    key = "NULL::text" if periods else _key(group_by, "cf")
    parts = []
    for prefix, (hours, work, bucket) in TIME_RULES.items():
        part = bucket if periods else "c.key"
        qs = ", ".join(f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {col}) AS {stem}_q"
                       for col, stem in ((hours, f"{prefix}_hours"), (work, f"{prefix}_working_hours")))
        parts.append(f"SELECT row_to_json(x) AS j FROM (SELECT {part} AS k, grouping({part}) AS g, {qs} FROM c "
                     f"WHERE c.counted AND {bucket} BETWEEN 1 AND :n::int GROUP BY GROUPING SETS (({part}), ())) AS x")
    return f"{_cases_cte(key, materialized=True)}" + "\nUNION ALL\n".join(parts)


async def rollup_figures(conn: AsyncConnection, flt: CaseFilter, group_by: str | None, bounds: Sequence[datetime],
                         now: datetime, business: Sequence[str] | None = None, *, total=None,
                         by_month: bool = False) -> dict | None:
    """``raw_figures``' answer from the rollups (``total``: its key of the total row), or None when
    the cells cannot answer for P (module docstring). ``by_month``: from the month cuboids
    (services/reporting/kpis/cuboids.py), which answer when every bound of P is a month's first
    midnight and one cuboid keeps every dimension the question groups or filters by, or — by the
    tenant-by-day cuboid (cuboids.py ``DAY_CUBOID``) — for any bounds at local midnights when the
    question asks for nothing but the period."""
    days = bound_days(bounds, flt.tz)
    if days is None:
        return None
    cuboid = None
    if by_month:
        grouping = None if group_by is None or group_by.startswith("period:") else group_by
        asked = (grouping, flt.place_prefix, flt.category, flt.department, business is not None)
        cuboid = choose(*asked) if month_aligned(days) else None
        if cuboid is None:
            cuboid = choose_day(*asked)  # the tenant by day: any whole local days, nothing else asked
        if cuboid is None:
            return None
    zone = (await conn.exec_driver_sql("SELECT tz FROM reporting.kpi_zones WHERE tenant = $1", (flt.tenant,))).scalar()
    if zone != tz_name(flt.tz):
        return None
    n = len(bounds) - 1
    periods = n > 1
    grouped = not periods and group_by is not None and not group_by.startswith("period:")
    by = group_by if grouped else None
    params: dict[str, Any] = {**flt.sql_params(), "days": days, "d0": days[0], "d1": days[1], "dn": days[-1],
                              "cuboid": cuboid}
    if business is not None:
        params["business"] = list(business)
    # figures per (key, sub-period) → per answer key; the total sums them all
    slot = (lambda key, b: b) if periods else (lambda key, b: key)
    acc: dict[Any, dict[str, int]] = {}
    tot: dict[str, int] = {}

    def add(into: dict, figures: dict) -> None:
        for name, value in figures.items():
            if value:
                into[name] = into.get(name, 0) + int(value)

    for row in await fetch_dicts(conn, cells_sql(by, business is not None, by_month), params):
        key, b = row.pop("key"), row.pop("b")
        if b is None:  # the total (NULL sums when P has no cell)
            tot = {name: value for name, value in row.items() if value}
            continue
        into = acc.get(slot(key, b))
        if into is None:
            acc[slot(key, b)] = row
        else:
            add(into, row)
    for row in await fetch_dicts(conn, dues_sql(by, by_month), params):
        key, b = row["key"], row["b"]
        add(acc.setdefault(slot(key, b), {}), {"due_open": row["per"]})
        add(tot, {"due_open": row["tot"]})
    # states at each sub-period's end: states[key][k] (k = 1..n; index 0 unused), by the arithmetic
    # of periods.counts_at_period_ends (a span counts at the ends max(s, 1) ≤ k < min(t, n + 1)),
    # done for every key and counter in one pass over the spans: a thousand keys by grid
    diffs: dict[Any, tuple[list[int], ...]] = {}
    for row in await fetch_dicts(conn, states_sql(by, by_month), params):
        lo, hi = max(row["s"], 1), min(row["t"], n + 1)
        if lo >= hi:
            continue
        d = diffs.get(row["key"])
        if d is None:
            d = diffs[row["key"]] = tuple([0] * (n + 2) for _ in STATE_COUNTERS)
        for diff, name in zip(d, STATE_COUNTERS, strict=True):
            count = row[name]
            if count:
                diff[lo] += int(count)
                diff[hi] -= int(count)
    states: dict[Any, list[dict[str, int]]] = {}
    for key, d in diffs.items():
        ends = states[key] = [{} for _ in range(n + 1)]
        for diff, name in zip(d, STATE_COUNTERS, strict=True):
            running = 0
            for k in range(1, n + 1):
                running += diff[k]
                ends[k][name] = running
    # deadline < now: take off the cases not yet overdue at the ends after now
    late_ends = [k for k in range(1, n + 1) if bounds[k] > now]
    if late_ends:
        for row in await fetch_dicts(conn, not_yet_overdue_sql(by), {**flt.sql_params(), "now": now, "bn": bounds[-1]}):
            for k in late_ends:
                if row["t_from"] < bounds[k] and (row["t_close"] is None or row["t_close"] >= bounds[k]):
                    ends = states.setdefault(row["key"], [{} for _ in range(n + 1)])
                    ends[k]["overdue"] = ends[k].get("overdue", 0) - 1
    if by_month:
        quantiles = await _month_sketch_quantiles(conn, flt, by, params, periods)
    else:
        quantiles = await _sketch_quantiles(conn, by, params, periods)
    out: dict[Any, dict] = {}
    if periods:
        for b in range(1, n + 1):
            figures = acc.get(b, {})
            state = {m: sum(ends[b].get(m, 0) for ends in states.values()) for m in ("open_own", "open_transferred", "overdue")}
            out[b] = _raw(figures, state, quantiles.get(b, {}), extras=False)
        end = {m: sum(ends[n].get(m, 0) for ends in states.values()) for m in ("open_own", "open_transferred", "overdue")}
        out[total] = _raw(tot, end, quantiles.get(_TOTAL_Q, {}), extras=business is not None)
        return out
    for key in set(acc) | set(states) if grouped else ():
        state = states.get(key, [{}] * (n + 1))[n]
        raw = _raw(acc.get(key, {}), state, quantiles.get(key, {}), extras=business is not None)
        if any(map(raw.get, _PRESENT)):
            out[key] = raw
    end = {m: sum(ends[n].get(m, 0) for ends in states.values()) for m in ("open_own", "open_transferred", "overdue")}
    out[total] = _raw(tot, end, quantiles.get(_TOTAL_Q, {}), extras=business is not None)
    return out


async def _quantiles(conn: AsyncConnection, flt: CaseFilter, group_by: str | None, bounds: Sequence[datetime],
                     now: datetime, periods: bool) -> dict:
    """``{answer key: {<stem>_median, <stem>_p90}}`` from :func:`quantile_sql`, the total row under
    :data:`_TOTAL_Q`."""
    params = {**flt.sql_params(), "bounds": list(bounds), "b0": bounds[0], "bn": bounds[-1], "n": len(bounds) - 1,
              "now": now, **working_clock_params(flt.tz)}
    out: dict[Any, dict] = {}
    for row in await fetch_dicts(conn, quantile_sql(group_by, periods), params):
        j = row["j"] if isinstance(row["j"], dict) else json.loads(row["j"])
        k, g = j.pop("k"), j.pop("g")
        into = out.setdefault(_TOTAL_Q if g == 1 else k, {})
        for name, q in j.items():
            into[f"{name[:-2]}_median"], into[f"{name[:-2]}_p90"] = (q[0], q[1]) if q else (None, None)
    return out


async def _sketch_quantiles(conn: AsyncConnection, group_by: str | None, params: dict, periods: bool) -> dict:
    """``{answer key: {<stem>_median, <stem>_p90}}`` from the sketches (:func:`sketch_quantiles_sql`),
    the total row under :data:`_TOTAL_Q`: the answer key's sketch and the total's are the sums of the
    cells' bucket counts."""
    text, args = bind(sketch_quantiles_sql(group_by, periods), params)
    out: dict[Any, dict] = {}
    for slot, g, stat, q, lo, hi, frac in (await conn.exec_driver_sql(text, args)).all():
        v_lo = bucket_value(lo)
        name = "median" if q == 0.5 else "p90"
        out.setdefault(_TOTAL_Q if g else slot, {})[f"{stat}_{name}"] = v_lo + frac * (bucket_value(hi) - v_lo)
    return out


async def _month_sketch_quantiles(conn: AsyncConnection, flt: CaseFilter, group_by: str | None, params: dict,
                                  periods: bool) -> dict:
    """:func:`_sketch_quantiles`' answer from the month sketches (:func:`month_sketch_sql`): each slot
    from the smallest cuboid that keeps what it needs (services/reporting/kpis/cuboids.py
    ``choose_sketch``; for the tenant by day, :data:`DAY_CUBOID`'s own sketches), the total from the
    smallest that keeps the filters (the tenant by day's only when P is not whole months). A slot
    of one row
    answers with the row's stored quantiles; the buckets of a slot of several rows (a quarter, say)
    are summed and the ranks found in Python (sketch.py
    :func:`~services.reporting.kpis.sketch.quantiles`)."""
    statements = [(_TOTAL_Q, None, False)]
    if periods or group_by is not None:
        statements.append((None, group_by, periods))
    out: dict[Any, dict] = {}
    raw = (await conn.get_raw_connection()).driver_connection
    # the total of P from the tenant by day only when P is not whole months: a month of days
    # (period:day, period:week) takes its total from the month's one row, whose buckets are the
    # days' sum, instead of summing thirty
    whole_months = month_aligned([params["d0"], params["dn"]])
    for total, by, per in statements:
        by_day = params.get("cuboid") == DAY_CUBOID and not (total is not None and whole_months)
        cuboid = DAY_CUBOID if by_day else choose_sketch(by, flt.place_prefix, flt.category, flt.department)
        text, args = bind(month_sketch_sql(by, per), {**params, "cuboid": cuboid})
        # asyncpg's records as they come: a thousand rows by grid, which SQLAlchemy's Row would double
        summed: dict[Any, dict[str, int]] = {}
        for slot, q, b in await raw.fetch(text, *args):
            slot = total or slot
            if b is None:
                figures = out.setdefault(slot, {})
                for stat, (median, p90) in zip(SKETCH_STATS, zip(q[::2], q[1::2], strict=True), strict=True):
                    if median is not None:
                        figures[f"{stat}_median"], figures[f"{stat}_p90"] = median, p90
                continue
            # summed on the stored keys ("<statistic>:<bucket>"), split once per slot: a week of
            # day rows holds thousands of buckets each
            counts = json.loads(b)
            into = summed.get(slot)
            if into is None:
                summed[slot] = counts
                continue
            get = into.get
            for key, n in counts.items():
                into[key] = get(key, 0) + n
        for slot, merged in summed.items():
            for stat, counts in split_counts(merged).items():
                median, p90 = quantiles(counts, SUMMARY_QS)
                if median is not None:
                    out.setdefault(slot, {}).update({f"{stat}_median": median, f"{stat}_p90": p90})
    return out


#: The key :func:`_quantiles` files the total row under (replaced by the caller's total key).
_TOTAL_Q = object()


#: The names :func:`_raw` reads and writes, worked out once (it runs for every row of a breakdown:
#: a thousand grids).
_RAW_COUNTS = tuple(name for name in EVENT_COUNTERS if name != "swept")
_RAW_ZEROS = (0,) * len(_RAW_COUNTS)
#: Per time prefix: ``(<p>_n, <p>_wn, <p>_us, <p>_wus, <p>_hours_mean, <p>_working_hours_mean,
#: (<p>_hours_median, <p>_hours_p90, <p>_working_hours_median, <p>_working_hours_p90))``.
_RAW_TIMES = tuple(
    (f"{p}_n", f"{p}_wn", f"{p}_us", f"{p}_wus", f"{p}_hours_mean", f"{p}_working_hours_mean",
     tuple(f"{stem}_{q}" for stem in (f"{p}_hours", f"{p}_working_hours") for q in ("median", "p90")))
    for p in TIME_PREFIXES)
#: The figures of which one not 0 gives a group its row (:func:`rollup_figures`).
_PRESENT = (*EVENT_COUNTERS, "in_progress_own", "in_progress_transferred", "overdue_open")


def _raw(figures: dict, state: dict, quantiles: dict, *, extras: bool) -> dict:
    """One row of raw figures, named as the scan names them (services/reporting/kpis/sql.py)."""
    get = figures.get
    raw: dict[str, Any] = dict(zip(_RAW_COUNTS, map(get, _RAW_COUNTS, _RAW_ZEROS), strict=True))
    raw["due"] = get("closed", 0) + get("due_open", 0)
    if extras:
        raw["swept"] = get("swept", 0)
        raw["illegal_business"] = get("illegal_business", 0)
    qget = quantiles.get
    for n_name, wn_name, us_name, wus_name, mean_name, wmean_name, q_names in _RAW_TIMES:
        n, wn = get(n_name, 0), get(wn_name, 0)
        raw[n_name] = n
        # int(): a sum of microseconds comes as a Decimal (cells_sql), exactly
        raw[mean_name] = int(get(us_name, 0)) / n / _MICROS_PER_HOUR if n else None
        raw[wmean_name] = int(get(wus_name, 0)) / wn / _MICROS_PER_HOUR if wn else None
        for q_name in q_names:
            raw[q_name] = qget(q_name)
    raw["in_progress_own"] = state.get("open_own", 0)
    raw["in_progress_transferred"] = state.get("open_transferred", 0)
    raw["overdue_open"] = state.get("overdue", 0)
    return raw
