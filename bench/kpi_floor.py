"""Benchmark: how fast can one exact KPI statement over per-case rows be in PostgreSQL at all?

bench/kpis.py times the real dashboard queries (services/reporting/kpis/) over 1,000,000 case
facts. This script measures the *floor* of that design on the same data: what PostgreSQL needs
for the same figures when everything a query can be spared has been taken away in advance.

1. Loads the same synthetic ``reporting.case_facts`` as bench/kpis.py (bench/kpi_data.py; or reuses them with
   ``--keep-data``), then builds ``bench_floor.cases``: one narrow row per case of the KPI
   universe (kpis/rules.py ``CASE_COLUMNS['universe']``) holding only what the rules read, with every
   per-case value precomputed by kpis/rules.py's own SQL expressions: the close / dispatch / disposal /
   overdue times, ``filed`` and ``shelved``, and the four durations in hours and working hours
   (so no query does clock arithmetic), in report-time order, with a covering index on
   ``(tenant, lifetime end, reported_at)`` that INCLUDEs every column (index-only scans).
2. Times, for the last calendar month (P as in bench/kpis.py), statements that use kpis/rules.py's
   rule text unchanged (``EVENT_RULES``, ``STATE_RULES``, ``TIME_RULES`` through kpis/sql.py ``measures``):

   - ``scan``: count the candidates of P (the index range every KPI statement reads);
   - ``counts``: every count KPI of P, no time statistics;
   - ``full``: the whole KPI row of P (counts, means, medians, p90s: the ``group_by``-less query);
   - ``full by grid`` / ``full by category``: the same per group, without the total row;
   - ``steps``: every per-event figure of P (kpis/rules.py ``STEP_RULES``) from precomputed events
     (``bench_floor.step_events``), one index-only range.

3. Checks that ``full`` gives the figures kpis/queries.py ``query_kpis`` gives for P (so the floor computes the
   same thing), and prints p50 / p95 in ms beside the 50 ms goal of issue 4.

Usage: ``python bench/kpi_floor.py [--rows 1000000] [--repeat 30] [--database-url URL --keep-data]``.
Prints figures; asserts nothing but the agreement of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.kpi_data import (  # noqa: E402
    GOAL_MS,
    TENANT,
    TZ,
    add_data_arguments,
    bench_database,
    month_before,
)
from services.reporting.filters import CaseFilter  # noqa: E402
from services.reporting.kpis.clock import local_epoch_sql, working_clock_params  # noqa: E402
from services.reporting.kpis.queries import (  # noqa: E402
    TOTAL,
    WORK_MEM,
    raw_figures,
    unpack_quantiles,
)
from services.reporting.kpis.rules import CASE_COLUMNS  # noqa: E402
from services.reporting.kpis.sketch import ALPHA  # noqa: E402
from services.reporting.kpis.sql import LOCAL_EPOCHS, bind, measures  # noqa: E402
from shared.platform.db import libpq_url, make_engine  # noqa: E402

#: Columns of bench_floor.cases and the kpis/rules.py expression (over ``cf``, a case_facts row with its
#: local epochs ``l_*``) each is precomputed from.
FLOOR_COLUMNS: dict[str, str] = {
    "tenant": "cf.tenant",
    "place_code": "cf.place_code",
    "category_code": "cf.category_code",
    "request_type": "cf.request_type",
    "reported_at": "cf.reported_at",
    "life_end": "CASE WHEN cf.closed THEN greatest(coalesce(cf.final_closed_at, cf.closed_at, cf.reported_at), "
                "cf.reported_at) ELSE 'infinity'::timestamptz END",
    "close_t": f"CASE WHEN cf.closed THEN {CASE_COLUMNS['close_t']} END",
    "first_close_t": "cf.closed_at",
    "deadline": "cf.deadline",
    "dispatch_t": "CASE WHEN cf.target_kind IS DISTINCT FROM 'triage' THEN cf.dispatched_at END",
    "ack_t": "cf.acknowledged_at",
    "dispose_t": "coalesce(cf.resolved_at, CASE WHEN cf.closed OR cf.closed_at IS NOT NULL THEN "
                 "greatest(coalesce(cf.closed_at, cf.reported_at), cf.reported_at) END)",
    "overdue_t": "CASE WHEN cf.state IS DISTINCT FROM 'shelved' THEN greatest(cf.deadline, cf.reported_at) END",
    "filed": CASE_COLUMNS["filed"],
    "shelved": CASE_COLUMNS["shelved"],
    "transfer_count": "cf.transfer_count",
    "return_count": "cf.return_count",
    "rework_count": "cf.rework_count",
    "supervision_level": "cf.supervision_level",
    "outcome": "cf.outcome",
    "close_h": CASE_COLUMNS["close_h"],
    "close_wh": CASE_COLUMNS["close_wh"],
    "final_close_h": CASE_COLUMNS["final_close_h"],
    "final_close_wh": CASE_COLUMNS["final_close_wh"],
    "ack_h": CASE_COLUMNS["ack_h"],
    "ack_wh": CASE_COLUMNS["ack_wh"],
}


def build_sql() -> str:
    """``CREATE TABLE bench_floor.cases AS …`` over the tenant's case facts of the KPI universe."""
    epochs = ", ".join(f"{local_epoch_sql(expr)} AS l_{name}" for name, expr in LOCAL_EPOCHS.items())
    cols = ",\n  ".join(f"{expr} AS {name}" for name, expr in FLOOR_COLUMNS.items())
    return (f"CREATE TABLE bench_floor.cases AS\nSELECT {cols}\n"
            f"FROM (SELECT cf.*, {epochs} FROM reporting.case_facts cf WHERE cf.tenant = :tenant "
            f"AND {CASE_COLUMNS['universe']}) AS cf\nORDER BY cf.reported_at")


def cases_cte(key: str) -> str:
    """The per-case rows of P over bench_floor.cases, with kpis/rules.py's column names (bucket
    numbers by ``width_bucket`` as kpis/rules.py ``CASE_COLUMNS``)."""
    wb = "width_bucket({}, :bounds::timestamptz[])"
    return (
        "WITH c AS (\n  SELECT {key} AS key, f.deadline, f.transfer_count, f.return_count, f.rework_count, "
        "f.supervision_level, f.request_type, f.category_code, f.outcome, f.filed, f.close_t, f.shelved, f.close_h, "
        "f.close_wh, f.final_close_h, f.final_close_wh, f.ack_h, f.ack_wh,\n"
        # the table holds the universe only (no merged duplicates: kpis/sql.py _cases_cte)
        "    TRUE AS counted, FALSE AS merged_duplicate,\n"
        f"    {wb.format('f.reported_at')} AS rb,\n"
        f"    CASE WHEN f.close_t IS NOT NULL THEN {wb.format('f.close_t')} ELSE :n::int + 1 END AS cb,\n"
        f"    {wb.format('f.deadline')} AS db, {wb.format('f.dispatch_t')} AS pb, {wb.format('f.ack_t')} AS ab,\n"
        f"    {wb.format('f.dispose_t')} AS sb, {wb.format('f.first_close_t')} AS fb,\n"
        f"    CASE WHEN f.deadline < :now AND f.overdue_t IS NOT NULL THEN {wb.format('f.overdue_t')} "
        "ELSE :n::int + 1 END AS ob\n"
        "  FROM bench_floor.cases f\n  WHERE f.tenant = :tenant AND f.life_end >= :b0 AND f.reported_at < :bn\n"
        "  OFFSET 0\n)\n"  # each per-case column computed once (kpis/sql.py _cases_cte)
    ).replace("{key}", key)


#: The per-event figures at best: every counted event precomputed (figure, department, rung, time,
#: value, case; services/reporting/kpis/step_cells.py ``step_events``, the twin of kpis/sql.py
#: ``step_sql``'s rules), read by one index-only range over P and counted per figure and rung.
STEP_STATEMENT = ("SELECT e.m, e.r, grouping(e.r) AS gr, count(*) AS n, sum(e.v) AS v, count(DISTINCT e.case_id) AS cases "
                  "FROM bench_floor.step_events e WHERE e.tenant = :tenant AND e.t >= :b0 AND e.t < :bn "
                  "GROUP BY GROUPING SETS ((e.m), (e.m, e.r))")

STATEMENTS: dict[str, str] = {
    "scan": cases_cte("NULL::text") + "SELECT count(*) FROM c",
    "counts": cases_cte("NULL::text") + f"SELECT {measures('1', '1', states=True, times=False)} FROM c",
    "full": cases_cte("NULL::text") + f"SELECT {measures('1', '1', states=True)} FROM c",
    "full by grid": cases_cte("f.place_code") + f"SELECT c.key, {measures('1', '1', states=True)} FROM c GROUP BY c.key",
    "full by category": cases_cte("f.category_code")
    + f"SELECT c.key, {measures('1', '1', states=True)} FROM c GROUP BY c.key",
    "steps": STEP_STATEMENT,
}


async def build(url: str) -> None:
    """(Re)create bench_floor.cases and bench_floor.step_events with their covering indexes;
    ``VACUUM ANALYZE`` (all-visible)."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS bench_floor CASCADE; CREATE SCHEMA bench_floor")
        sql, args = bind(build_sql(), {"tenant": TENANT, **working_clock_params(TZ)})
        await conn.execute(sql, *args)
        include = ", ".join(c for c in FLOOR_COLUMNS if c not in ("tenant", "life_end", "reported_at"))
        await conn.execute(f"CREATE INDEX ON bench_floor.cases (tenant, life_end, reported_at) INCLUDE ({include})")
        await conn.execute("VACUUM ANALYZE bench_floor.cases")
        await conn.execute("CREATE TABLE bench_floor.step_events (tenant text, t timestamptz, m text, dept text, r text, "
                           "v bigint, case_id uuid)")
        await _load_step_events(url, conn)
        await conn.execute("CREATE INDEX ON bench_floor.step_events (tenant, t) INCLUDE (m, dept, r, v, case_id)")
        await conn.execute("VACUUM ANALYZE bench_floor.step_events")
    finally:
        await conn.close()


async def _load_step_events(url: str, conn, page: int = 20_000) -> None:
    """Every counted event of the tenant's cases into bench_floor.step_events (the fold's reading,
    services/reporting/step_rollup.py ``read_cases``)."""
    from services.reporting.kpis.clock import working_clock  # noqa: PLC0415
    from services.reporting.kpis.step_cells import step_events  # noqa: PLC0415
    from services.reporting.step_rollup import read_cases  # noqa: PLC0415

    engine, clock, last = make_engine(url), working_clock(), None
    try:
        async with engine.connect() as aconn:
            while True:
                ids = [r[0] for r in await conn.fetch(
                    "SELECT case_id FROM reporting.case_facts WHERE tenant = $1 AND ($2::uuid IS NULL OR case_id > $2) "
                    "ORDER BY case_id LIMIT $3", TENANT, last, page)]
                if not ids:
                    return
                rows = []
                for case_id, (fact, steps) in (await read_cases(aconn, ids)).items():
                    if fact["counted"]:
                        rows += [(TENANT, e.at, e.figure, e.department, e.rung, e.value, case_id)
                                 for e in step_events(steps, fact["urgency"], TZ, clock)]
                await conn.copy_records_to_table("step_events", schema_name="bench_floor", records=rows)
                last = ids[-1]
    finally:
        await engine.dispose()


async def measure(url: str, now: datetime, repeat: int) -> list[tuple[str, float, float]]:
    """Time each statement of :data:`STATEMENTS` for the last month; check ``full`` against the KPI query."""
    start, end = month_before(now, "month")
    params = {"tenant": TENANT, "bounds": [start, end], "b0": start, "bn": end, "n": 1, "now": now}
    conn = await asyncpg.connect(libpq_url(url))
    out = []
    try:
        await conn.execute(f"SET work_mem = '{WORK_MEM}'")
        for label, sql in STATEMENTS.items():
            text, args = bind(sql, params)
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + text, *args))
            await conn.fetch(text, *args)  # warm-up
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                await conn.fetch(text, *args)
                samples.append((time.perf_counter() - t0) * 1000)
            samples.sort()
            p50 = statistics.median(samples)
            p95 = samples[min(len(samples) - 1, int(round(0.95 * len(samples))) - 1)]
            out.append((label, p50, p95))
            scan = "index-only" if "Index Only Scan" in plan else "heap"
            print(f"  {label:<18} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   ({scan})   "
                  f"{'ok' if p95 < GOAL_MS else 'over the goal'}", flush=True)
        text, args = bind(STATEMENTS["full"], params)
        floor = unpack_quantiles(dict(await conn.fetchrow(text, *args)))
    finally:
        await conn.close()
    engine = make_engine(url)
    try:
        async with engine.connect() as aconn, aconn.begin():
            real = await raw_figures(aconn, CaseFilter(TENANT, start, end, tz=TZ), None, [start, end], now)
    finally:
        await engine.dispose()
    real = real[TOTAL]
    # medians and p90: the KPI query reads them from the quantile sketches when the rollups answer,
    # within relative α of percentile_cont (services/reporting/kpis/sketch.py; docs/kpis.md §10)
    differ = [k for k in real if not (_within_sketch_bound if k.endswith(("_median", "_p90")) else _same)(real[k], floor.get(k))]
    print(f"  figures of 'full' equal the KPI query's for P (medians and p90 within relative {ALPHA}): {'yes' if not differ else 'NO: ' + ', '.join(differ)} "
          f"({len(real)} raw figures; 受理 {floor['accepted']:,}, 办结 {floor['closed']:,})")
    differ += await _check_steps(url, params, start, end, now)
    if differ:
        raise SystemExit(1)
    return out


async def _check_steps(url: str, params: dict, start: datetime, end: datetime, now: datetime) -> list[str]:
    """Whether ``steps`` gives the per-event figures kpis/queries.py ``step_figures`` gives for P."""
    from services.reporting.kpis.queries import step_figures  # noqa: PLC0415
    from services.reporting.kpis.rules import STEP_RULES  # noqa: PLC0415

    conn = await asyncpg.connect(libpq_url(url))
    try:
        text, args = bind(STEP_STATEMENT, params)
        rows = await conn.fetch(text, *args)
    finally:
        await conn.close()
    floor = {}
    for r in rows:
        if r["gr"] == 1 or r["r"] is not None:
            agg = STEP_RULES[r["m"]].agg
            value = r["n"] if agg == "sum" else r["cases"] if agg == "cases" else float(r["v"]) / r["n"] / 3.6e9
            floor[r["m"] if r["gr"] == 1 else f"{r['m']}_{r['r']}"] = value
    engine = make_engine(url)
    try:
        async with engine.connect() as aconn, aconn.begin():
            real = (await step_figures(aconn, CaseFilter(TENANT, start, end, tz=TZ), None, [start, end], now))[TOTAL]
    finally:
        await engine.dispose()
    # a figure without an event: left out (or 0) by the KPI query, no row here
    differ = [k for k in set(real) | set(floor) if not _same(real.get(k) or 0, floor.get(k) or 0)]
    print(f"  figures of 'steps' equal the KPI query's per-event figures for P: "
          f"{'yes' if not differ else 'NO: ' + ', '.join(sorted(differ))} ({len(real)} figures)")
    return differ


def _within_sketch_bound(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= ALPHA * abs(float(b)) + 1e-9


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))


def main() -> None:
    """Parse the arguments, provide the database and data, build the floor table, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with bench_database(args, now) as url:
        t0 = time.perf_counter()
        asyncio.run(build(url))
        print(f"built bench_floor.cases in {time.perf_counter() - t0:.1f} s")
        start, end = month_before(now, "month")
        print(f"period P = [{start.date()}, {end.date()}) {TZ.key}; now {now.isoformat(timespec='seconds')}")
        results = asyncio.run(measure(url, now, args.repeat))
    worst = max(p95 for _, _, p95 in results)
    print(f"worst p95 {worst:.1f} ms (goal p95 < {GOAL_MS:.0f} ms)")


if __name__ == "__main__":
    main()
