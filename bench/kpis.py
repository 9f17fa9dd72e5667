"""Benchmark: the KPI dashboard queries (services/reporting/kpis/) over 1,000,000 case facts.

1. Starts a scratch embedded PostgreSQL (gridcase.infra.EmbeddedPostgres, in a temporary folder,
   or uses ``--database-url``) and runs the reporting migrations (so the indexes measured are
   exactly the ones migrations create).
2. Loads N synthetic ``reporting.case_facts`` rows with binary COPY (bench/kpi_data.py): one city tenant, three years of
   reports up to now (~900 a day), 1000 grids in 10 streets × 10 communities, 20 categories,
   deadlines of 5 days on 90 % of cases, acknowledgement/resolution/closure times, transfers,
   returns, rework, 督办 levels for late cases, some shelved/rejected/cancelled cases and an open
   backlog. Then ``VACUUM ANALYZE`` (the steady state autovacuum keeps).
3. Times each dashboard query ``--repeat`` times (default 50) through the module's own functions
   on one async connection (SQL plus Python post-processing, no HTTP): the KPI table of the last
   calendar month per ``group_by`` (and without grouping), the overdue and supervised lists (first
   page of 100), the work summary of the month and the place breakdown of the month at each level
   (``stats.query_stats``, as the dashboard asks ``/v1/stats``); prints p50 / p95 in ms and whether p95 is under
   the 50 ms goal.
4. In the same run, builds bench/kpi_floor.py's floor table on the same data and times its
   statements: the best a per-request scan can do for the same figures.

The per-event figures come from the step cells (issue 14): the synthetic cases get steps as dispatch
would record them, and the cells are built from those with the fold's own code
(services/reporting/step_rollup.py ``recompute``).

Usage: ``python bench/kpis.py --cases 1000000 10000000 [--repeat 50] [--period month|quarter|year]``
(a quick check: ``--cases 20000 200000 --repeat 5 --floor-repeat 5``). Prints, per size,
``cases=``, ``p95_max_ms=`` (the worst p95 of the dashboard queries), ``ratio_to_scan_floor=`` (the
worst dashboard p95 ÷ floor p95 over the queries with a floor counterpart, :data:`FLOOR_OF`: the
floor of the case figures plus the floor of the per-event figures, ``steps``) and
``step_rollup_storage_pct_of_facts=``; then ``growth_10x=`` (the worst ratio of a query's p95
between consecutive sizes ten times apart; ``growth_<f>x=`` for other factors). Asserts nothing.
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

from bench import kpi_floor  # noqa: E402
from bench.kpi_data import (  # noqa: E402
    GOAL_MS,
    TENANT,
    TZ,
    add_data_arguments,
    bench_database,
    month_before,
)
from services.reporting import stats  # noqa: E402
from services.reporting.filters import CaseFilter  # noqa: E402
from services.reporting.kpis.case_lists import query_overdue, query_supervised  # noqa: E402
from services.reporting.kpis.catalogue import GROUP_BYS, PLACE_LEVELS  # noqa: E402
from services.reporting.kpis.periods import period_bounds  # noqa: E402
from services.reporting.kpis.queries import query_kpis  # noqa: E402
from services.reporting.kpis.summary import percent, work_summary  # noqa: E402
from shared.domain.taxonomy import load_taxonomy  # noqa: E402
from shared.platform.db import libpq_url, make_engine  # noqa: E402


async def storage(url: str) -> dict[str, int]:
    """Bytes (tables with their indexes) of the facts, the steps and the step rollups."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        size = lambda t: conn.fetchval(f"SELECT pg_total_relation_size('reporting.{t}')")  # noqa: E731
        return {"facts": await size("case_facts"), "steps": await size("case_steps"),
                "kpi_rollups": await size("kpi_cells") + await size("kpi_spans"),
                "kpi_sketches": await size("kpi_sketches"),
                "kpi_month_cuboids": sum([await size(t) for t in ("kpi_month_cells", "kpi_month_spans",
                                                                  "kpi_month_sketches")]),
                "step_rollups": sum([await size(t) for t in ("step_cells", "step_day_cells", "step_case_days")]),
                "step_month_cuboids": await size("step_month_cells") + await size("step_month_case_days")}
    finally:
        await conn.close()


async def timed(label: str, fn, repeat: int, results: list) -> None:
    """Run ``fn`` once to warm up, then ``repeat`` times; print and append ``(label, p50, p95)`` in ms."""
    await fn()  # warm-up (plan cache, buffers)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, int(round(0.95 * len(samples))) - 1)]
    results.append((label, p50, p95))
    print(f"  {label:<34} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   {'ok' if p95 < GOAL_MS else 'OVER GOAL'}", flush=True)


async def measure(url: str, now: datetime, period: str, repeat: int) -> list:
    """Time every dashboard query on one connection; return ``[(label, p50 ms, p95 ms)]``."""
    start, end = month_before(now, period)
    print(f"dashboard period P = [{start.date()}, {end.date()}) {TZ.key}; now {now.isoformat(timespec='seconds')}")
    engine = make_engine(url)
    taxonomy = load_taxonomy()
    flt = CaseFilter(TENANT, start, end, tz=TZ)
    results: list = []
    try:
        async with engine.connect() as conn, conn.begin():
            await timed("kpis (no group_by)", lambda: query_kpis(conn, flt, None, taxonomy=taxonomy, now=now),
                        repeat, results)
            for group_by in GROUP_BYS:
                await timed(f"kpis group_by={group_by}",
                            lambda g=group_by: query_kpis(conn, flt, g, taxonomy=taxonomy, now=now), repeat, results)
            await timed("cases/overdue (page 100)", lambda: query_overdue(conn, TENANT, now=now, tz=TZ,
                                                                               taxonomy=taxonomy), repeat, results)
            await timed("cases/supervised (page 100)", lambda: query_supervised(conn, TENANT, now=now, tz=TZ,
                                                                                     taxonomy=taxonomy), repeat, results)
            await timed("summary", lambda: work_summary(conn, flt, taxonomy=taxonomy, now=now), repeat, results)
            # the dashboard's place breakdown (static/app.js: /v1/stats?group_by=place&place_depth=…)
            sflt = CaseFilter(TENANT, start, end)
            for level, depth in PLACE_LEVELS.items():
                await timed(f"stats group_by=place ({level})",
                            lambda d=depth: stats.query_stats(conn, sflt, "place", d), repeat, results)
            await raw_timings(conn, flt, start, end, now, repeat)
            total = (await query_kpis(conn, flt, None, now=now))["total"]
            print(f"  (month: 受理 {total['accepted']:,}, 办结 {total['closed']:,}, 在办 {total['in_progress']:,}, "
                  f"超期 {total['overdue']:,}, 办结率 {percent(total['completion_rate'])})")
    finally:
        await engine.dispose()
    return results


async def raw_timings(conn, flt: CaseFilter, start: datetime, end: datetime, now: datetime, repeat: int) -> None:
    """Print (not part of the dashboard's results) the raw figures of P from the month cuboids (the
    dashboard's own path), from the day cells and from the scan, and the medians / p90 alone: from
    the quantile sketches (issue 14) and by the scan's ``percentile_cont``
    (services/reporting/kpis/rollup_query.py)."""
    from services.reporting.kpis import rollup_query as rq  # noqa: PLC0415
    from services.reporting.kpis.queries import raw_figures  # noqa: PLC0415

    bounds = [start, end]
    days = rq.bound_days(bounds, TZ)
    params = {**flt.sql_params(), "days": days, "d0": days[0], "d1": days[1], "dn": days[-1]}
    aside: list = []
    await timed("raw figures (cuboids)", lambda: raw_figures(conn, flt, None, bounds, now), repeat, aside)
    await timed("raw figures (day cells)", lambda: raw_figures(conn, flt, None, bounds, now, use_rollups=True), repeat, aside)
    await timed("raw figures (scan)", lambda: raw_figures(conn, flt, None, bounds, now, use_cuboids=False), repeat, aside)
    for group_by in GROUP_BYS:  # each grouping both ways (which is cheaper: docs/kpis.md §10)
        sub = period_bounds(start, end, group_by.split(":")[1], TZ) if group_by.startswith("period:") else bounds
        g = None if group_by.startswith("period:") else group_by
        await timed(f"raw figures group_by={group_by} (cuboids)",
                    lambda g=g, b=sub: raw_figures(conn, flt, g, b, now), repeat, aside)
        await timed(f"raw figures group_by={group_by} (day cells)",
                    lambda g=g, b=sub: raw_figures(conn, flt, g, b, now, use_rollups=True), repeat, aside)
        await timed(f"raw figures group_by={group_by} (scan)",
                    lambda g=g, b=sub: raw_figures(conn, flt, g, b, now, use_cuboids=False), repeat, aside)
    # the rollups as before the sketches: their medians and p90 by percentile_cont
    sketches = rq._sketch_quantiles

    async def by_percentile_cont(conn_, group_by, params_, periods):
        return await rq._quantiles(conn_, flt, group_by, bounds, now, periods)
    rq._sketch_quantiles = by_percentile_cont
    try:
        await timed("raw figures (day cells, percentile_cont)", lambda: raw_figures(conn, flt, None, bounds, now, use_rollups=True),
                    repeat, aside)
    finally:
        rq._sketch_quantiles = sketches
    await timed("medians+p90 (sketches)", lambda: rq._sketch_quantiles(conn, None, params, False), repeat, aside)
    await timed("medians+p90 (percentile_cont)", lambda: rq._quantiles(conn, flt, None, bounds, now, False), repeat, aside)


#: Dashboard queries (labels of :func:`measure`) and their counterpart among bench/kpi_floor.py's
#: statements: the same figures of P computed at best by a scan over per-case rows.
FLOOR_OF = {"kpis (no group_by)": "full", "kpis group_by=grid": "full by grid",
            "kpis group_by=category": "full by category"}


async def floor_ratio(url: str, now: datetime, repeat: int, results: list) -> float:
    """Build bench/kpi_floor.py's floor table on the same data, time its statements, and return the
    worst ratio (dashboard p95 ÷ floor p95) over the queries that have a floor counterpart
    (:data:`FLOOR_OF`)."""
    print("scan floor (bench/kpi_floor.py) on the same data:")
    await kpi_floor.build(url)
    floor = {label: p95 for label, _, p95 in await kpi_floor.measure(url, now, repeat)}
    mine = {label: p95 for label, _, p95 in results}
    # a KPI table is its case figures and its per-event figures: the floor is both statements'
    ratios = {q: mine[q] / (floor[f] + floor["steps"]) for q, f in FLOOR_OF.items() if q in mine and floor.get(f)}
    for q, r in ratios.items():
        print(f"  {q:<34} p95 {mine[q]:8.1f} ms   floor ({FLOOR_OF[q]} + steps) "
              f"{floor[FLOOR_OF[q]] + floor['steps']:8.1f} ms   ratio {r:.2f}")
    return max(ratios.values())


def main() -> None:
    """Parse the arguments; per size: provide the database and data (with the rollups), measure the
    dashboard queries and the scan floor of bench/kpi_floor.py in the same run, print; then the
    growth between sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--cases", type=int, nargs="+", action="extend",
                        help="case counts to measure, each in turn (e.g. --cases 1000000 10000000); default --rows")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--floor-repeat", type=int, default=30)
    parser.add_argument("--period", choices=("month", "quarter", "year"), default="month")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    by_size: dict[int, dict[str, float]] = {}
    for size in args.cases or [args.rows]:
        args.rows = size
        with bench_database(args, now) as url:
            results = asyncio.run(measure(url, now, args.period, args.repeat))
            ratio = asyncio.run(floor_ratio(url, now, args.floor_repeat, results)) if args.period == "month" else None
            sizes = asyncio.run(storage(url))
        by_size[size] = {label: p95 for label, _, p95 in results}
        worst = max(by_size[size].values())
        print(f"cases={size}")
        print(f"p95_max_ms={worst:.1f}")
        print(f"goal_p95_under_{GOAL_MS:.0f}ms={'met' if worst < GOAL_MS else 'not_met'}")
        if ratio is not None:
            print(f"ratio_to_scan_floor={ratio:.3f}")
        print(f"step_rollup_storage_pct_of_facts={100 * sizes['step_rollups'] / max(sizes['facts'], 1):.2f}")
        print(f"kpi_rollup_storage_pct_of_facts={100 * sizes['kpi_rollups'] / max(sizes['facts'], 1):.2f}")
        print(f"kpi_sketch_storage_pct_of_facts={100 * sizes['kpi_sketches'] / max(sizes['facts'], 1):.2f}")
        print(f"kpi_month_cuboid_storage_pct_of_facts={100 * sizes['kpi_month_cuboids'] / max(sizes['facts'], 1):.2f}")
        print(f"step_month_cuboid_storage_pct_of_facts={100 * sizes['step_month_cuboids'] / max(sizes['facts'], 1):.2f}")
    sizes = sorted(by_size)
    for small, big in zip(sizes, sizes[1:], strict=False):
        factor = big / small
        growth = max(by_size[big][q] / by_size[small][q] for q in by_size[small] if by_size[small][q] > 0)
        name = "growth_10x" if factor == 10 else f"growth_{factor:g}x"
        print(f"{name}={growth:.3f}")


if __name__ == "__main__":
    main()
