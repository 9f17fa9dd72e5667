"""Benchmark: the KPI dashboard queries (services/reporting/kpis/) over 1,000,000 case facts.

1. Starts a scratch embedded PostgreSQL (gridcase.infra.EmbeddedPostgres, in a temporary folder,
   or uses ``--database-url``) and runs the reporting migrations (so the indexes measured are
   exactly the ones migrations create).
2. Loads N synthetic ``reporting.case_facts`` rows with binary COPY: one city tenant, three years of
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
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from gridcase.infra import EmbeddedPostgres  # noqa: E402
from services.reporting import stats  # noqa: E402
from services.reporting.db import MIGRATIONS  # noqa: E402
from services.reporting.filters import CaseFilter  # noqa: E402
from services.reporting.kpis.case_lists import query_overdue, query_supervised  # noqa: E402
from services.reporting.kpis.catalogue import GROUP_BYS, PLACE_LEVELS  # noqa: E402
from services.reporting.kpis.queries import query_kpis  # noqa: E402
from services.reporting.kpis.rollup_fold import rollups_from_facts  # noqa: E402
from services.reporting.kpis.summary import percent, work_summary  # noqa: E402
from shared.domain.taxonomy import load_taxonomy  # noqa: E402
from shared.platform.db import libpq_url, make_engine, run_migrations  # noqa: E402

TENANT = "bench-city"
TZ = ZoneInfo("Asia/Shanghai")
GOAL_MS = 50.0
COLUMNS = (
    "case_id", "tenant", "place_code", "reported_at", "category_code", "category_name", "channel", "request_type",
    "source", "history", "target_kind", "department", "department_at", "department_seq", "dispatched_at", "deadline",
    "transfer_count", "closed", "closed_at", "state", "state_seq", "acknowledged_at", "resolved_at", "return_count",
    "rework_count", "supervision_count", "supervision_level", "event_count", "accepted_at", "final_closed_at",
)
CHANNELS = ("grid_worker", "grid_worker", "grid_worker", "12345", "phone", "wechat", "app")


def synthetic_rows(n: int, now: datetime, seed: int = 4):
    """Yield ``n`` case_facts tuples in :data:`COLUMNS` order, reported over the 3 years before
    ``now`` in time order (as a live system inserts them)."""
    rng = random.Random(seed)
    taxonomy = load_taxonomy()
    categories = [c for c in taxonomy.categories if c.kind != "licence"][:20]
    grids = [f"990102{s:03d}{c:03d}{g:03d}" for s in range(1, 11) for c in range(1, 11) for g in range(1, 11)]
    start = now - timedelta(days=3 * 365)
    span = (now - start).total_seconds()
    h = timedelta(hours=1)
    for i in range(n):
        reported = start + timedelta(seconds=span * (i + rng.random()) / n)
        cat = rng.choice(categories)
        # still in the triage queue: some of the last two days' unroutable reports
        triage = (now - reported) < timedelta(days=2) and rng.random() < 0.2
        dispatched = reported + timedelta(minutes=rng.uniform(1, 30))
        deadline = dispatched + timedelta(days=5) if rng.random() < 0.9 else None
        ack = dispatched + h * rng.expovariate(1 / 3) if not triage and rng.random() < 0.95 else None
        resolved = (ack or dispatched) + h * rng.expovariate(1 / 48) if not triage else None
        closed_at = resolved + h * rng.uniform(1, 24) if resolved else None
        stuck = rng.random() < 0.004  # a small old backlog that never closes
        closed = closed_at is not None and closed_at < now and not stuck
        if not closed:
            closed_at = None
            if resolved and resolved > now:
                resolved = None
            if ack and ack > now:
                ack = None
        r = rng.random()
        if closed:
            state = "closed"
        elif r < 0.03:
            state = "shelved"
        elif r < 0.06:
            state = "rejected"
        elif r < 0.08:
            state = "cancelled"
        elif triage:
            state = "filed"
        else:
            state = rng.choice(("dispatched", "acknowledged", "in_progress", "resolved"))
        end = closed_at or now
        late_h = (end - deadline).total_seconds() / 3600 if deadline else 0
        level = 0 if late_h <= 0 else (2 if late_h > 5 * 24 else 1)
        transfers = 0 if rng.random() > 0.12 else (1 if rng.random() < 0.85 else 2)
        yield (
            uuid.UUID(int=rng.getrandbits(128), version=4), TENANT, grids[rng.randrange(len(grids))], reported,
            cat.code, cat.name_zh, rng.choice(CHANNELS), "投诉", "bench", False,
            "triage" if triage else "department", "triage" if triage else cat.department, dispatched, 0, dispatched,
            deadline, transfers, closed, closed_at, state, 5, ack, resolved, 1 if rng.random() < 0.03 else 0,
            1 if rng.random() < 0.04 else 0, level, level, 5, reported, closed_at,
        )


STEP_COLUMNS = ("case_id", "sequence", "tenant", "at", "action", "from_state", "to_state", "target_kind", "department",
                "from_department", "mediation_level", "from_mediation_level", "outcome", "satisfaction",
                "resident_resolved", "history")
DEPARTMENTS = ("urban_management", "housing", "market_regulation", "ecology_environment", "water", "civil_affairs")


def synthetic_steps(fact: tuple, now: datetime, rng: random.Random) -> list[tuple]:
    """The ``reporting.case_steps`` rows of one synthetic case (:data:`STEP_COLUMNS` order), as
    dispatch would have recorded its life: the first dispatch (3 % to mediation at the grid rung,
    escalated or agreed there), its transfers, a return and re-dispatch for the returned ones, the
    acknowledgement, the resolution and closure, a callback on 60 % of the closed cases (some
    unreachable, some reopened), an escalation by the grid worker on 3 % of theirs."""
    f = dict(zip(COLUMNS, fact, strict=True))
    if f["target_kind"] == "triage":
        return []
    steps: list[tuple] = []
    h = timedelta(hours=1)

    def add(at, action, from_state, to_state, dept, from_dept=None, kind=None, rung=None, from_rung=None,
            outcome=None, satisfaction=None, resolved=None):
        if at is None or at > now:
            return
        steps.append((f["case_id"], len(steps) + 1, f["tenant"], at, action, from_state, to_state, kind, dept, from_dept,
                      rung, from_rung, outcome, satisfaction, resolved, False))

    dept, t = f["department"], f["dispatched_at"]
    if f["channel"] == "grid_worker" and rng.random() < 0.03:
        add(t - timedelta(minutes=1), "escalate", "accepted", "accepted", None)
    if rng.random() < 0.03:
        add(t, "dispatch", "filed", "mediating", "mediation", kind="mediation", rung="grid")
        if rng.random() < 0.5:
            add(t + 5 * h, "mediation_agreement", "mediating", "closed", "mediation", rung="grid", outcome="resolved")
            return steps
        add(t + 3 * h, "mediation_failed", "mediating", "mediating", "mediation", rung="community", from_rung="grid")
        t += 3 * h
    add(t, "dispatch", "filed", "dispatched", dept, kind="department")
    if f["return_count"]:
        add(t + h, "return", "dispatched", "filed", None, from_dept=dept)
        add(t + 2 * h, "dispatch", "filed", "dispatched", dept, kind="department")
    for i in range(f["transfer_count"]):
        to = rng.choice(DEPARTMENTS)
        add(t + (i + 1) * 0.5 * h, "transfer", None, None, to, from_dept=dept)
        dept = to
    add(f["acknowledged_at"], "acknowledge", "dispatched", "acknowledged", dept)
    add(f["resolved_at"], "act", "in_progress", "resolved", dept)
    if f["closed"]:
        add(f["closed_at"], "verify_pass", "checking", "closed", dept, outcome="resolved")
        if rng.random() < 0.6:
            reached = rng.random() < 0.9
            add(f["closed_at"] + 24 * h, "callback", "closed", "closed", dept,
                satisfaction=rng.choice(("satisfied", "satisfied", "basically_satisfied", "dissatisfied"))
                if reached else "unreachable", resolved=rng.random() < 0.85 if reached else None)
            if reached and rng.random() < 0.03:
                add(f["closed_at"] + 25 * h, "reopen", "closed", "dispatched", dept)
    return steps


async def load(url: str, n: int, now: datetime) -> float:
    """COPY ``n`` synthetic rows into ``reporting.case_facts`` and their steps into
    ``reporting.case_steps`` (both emptied first), then build the rollups from them
    (:func:`build_rollups`); return seconds."""
    t0 = time.perf_counter()
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("TRUNCATE reporting.case_facts, reporting.case_steps")
        batch, rows, rng = 100_000, synthetic_rows(n, now), random.Random(5)
        done = 0
        while done < n:
            chunk = [next(rows) for _ in range(min(batch, n - done))]
            await conn.copy_records_to_table("case_facts", schema_name="reporting", records=chunk, columns=COLUMNS)
            steps = [s for fact in chunk for s in synthetic_steps(fact, now, rng)]
            await conn.copy_records_to_table("case_steps", schema_name="reporting", records=steps,
                                             columns=STEP_COLUMNS)
            done += len(chunk)
            print(f"  loaded {done:,} rows ({len(steps):,} steps in the last batch)", flush=True)
        await conn.execute("VACUUM ANALYZE reporting.case_facts, reporting.case_steps")
    finally:
        await conn.close()
    t1 = time.perf_counter()
    await build_rollups(url)
    print(f"  rollups built in {time.perf_counter() - t1:.1f} s", flush=True)
    return time.perf_counter() - t0


async def build_rollups(url: str) -> None:
    """Build reporting's rollups of the synthetic cases the way the fold computes them: the KPI
    cells and spans from the facts (services/reporting/kpis/rollup_fold.py ``rollups_from_facts``;
    tests/integration/test_kpi_rollups.py checks it equals the folded cells) and the step cells with
    the fold's own reading and contributions over the stored facts and steps
    (services/reporting/step_rollup.py ``recompute``; tests/integration/test_step_cells_properties.py
    checks it equals the folded cells). Then ``VACUUM ANALYZE``."""
    from services.reporting import step_rollup  # noqa: PLC0415

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await rollups_from_facts(conn, TENANT, lambda tenant: TZ)
        async with engine.begin() as conn:
            await step_rollup.recompute(conn, TENANT, page=20_000)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("VACUUM ANALYZE reporting.kpi_cells, reporting.kpi_spans, reporting.kpi_sketches, "
                           "reporting.step_cells, reporting.step_case_days")
    finally:
        await conn.close()


async def storage(url: str) -> dict[str, int]:
    """Bytes (tables with their indexes) of the facts, the steps and the step rollups."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        size = lambda t: conn.fetchval(f"SELECT pg_total_relation_size('reporting.{t}')")  # noqa: E731
        return {"facts": await size("case_facts"), "steps": await size("case_steps"),
                "kpi_rollups": await size("kpi_cells") + await size("kpi_spans"),
                "kpi_sketches": await size("kpi_sketches"),
                "step_rollups": await size("step_cells") + await size("step_case_days")}
    finally:
        await conn.close()


def month_before(now: datetime, period: str) -> tuple[datetime, datetime]:
    """The last full calendar month (or quarter / year: 3 / 12 months) before ``now``, local."""
    local = now.astimezone(TZ)
    end = datetime(local.year, local.month, 1, tzinfo=TZ)
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    y, m = end.year, end.month - months
    while m < 1:
        y, m = y - 1, m + 12
    return datetime(y, m, 1, tzinfo=TZ), end


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
    """Print (not part of the dashboard's results) the raw figures of P from the rollups and from the
    scan, and the medians / p90 alone: from the quantile sketches (issue 14) and by the scan's
    ``percentile_cont`` (services/reporting/kpis/rollup_query.py)."""
    from services.reporting.kpis import rollup_query as rq  # noqa: PLC0415
    from services.reporting.kpis.queries import raw_figures  # noqa: PLC0415

    bounds = [start, end]
    days = rq.bound_days(bounds, TZ)
    params = {**flt.sql_params(), "days": days, "d0": days[0], "d1": days[1], "dn": days[-1]}
    aside: list = []
    await timed("raw figures (rollups)", lambda: raw_figures(conn, flt, None, bounds, now), repeat, aside)
    await timed("raw figures (scan)", lambda: raw_figures(conn, flt, None, bounds, now, use_rollups=False), repeat, aside)
    # the rollups as before the sketches: their medians and p90 by percentile_cont
    sketches = rq._sketch_quantiles

    async def by_percentile_cont(conn_, group_by, params_, periods):
        return await rq._quantiles(conn_, flt, group_by, bounds, now, periods)
    rq._sketch_quantiles = by_percentile_cont
    try:
        await timed("raw figures (rollups, percentile_cont)", lambda: raw_figures(conn, flt, None, bounds, now), repeat, aside)
    finally:
        rq._sketch_quantiles = sketches
    await timed("medians+p90 (sketches)", lambda: rq._sketch_quantiles(conn, None, params, False), repeat, aside)
    await timed("medians+p90 (percentile_cont)", lambda: rq._quantiles(conn, flt, None, bounds, now, False), repeat, aside)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rows``, ``--database-url`` and ``--keep-data``: the arguments of :func:`bench_database`."""
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a scratch embedded one (its "
                        "reporting.case_facts is EMPTIED unless --keep-data finds --rows rows)")
    parser.add_argument("--keep-data", action="store_true", help="skip loading if the table already has --rows rows")


@contextmanager
def bench_database(args: argparse.Namespace, now: datetime) -> Iterator[str]:
    """The URL of a PostgreSQL with the reporting migrations run and ``args.rows`` synthetic case
    facts reported up to ``now`` (:func:`load`; kept if ``--keep-data`` finds that many): the
    ``--database-url`` one, or a scratch embedded server in a temporary folder, stopped and
    removed on exit."""
    tmp = pg = None
    if args.database_url:
        url = args.database_url
    else:
        tmp = tempfile.TemporaryDirectory(prefix="gridcase-bench-")
        pg = EmbeddedPostgres(Path(tmp.name) / "pgdata")
        url = pg.start()
    try:
        run_migrations(url, MIGRATIONS, "reporting")
        if args.keep_data and asyncio.run(_count(url)) == args.rows:
            print(f"reusing {args.rows:,} rows")
        else:
            print(f"loading {args.rows:,} synthetic case facts …")
            print(f"loaded in {asyncio.run(load(url, args.rows, now)):.1f} s")
        yield url
    finally:
        if pg is not None:
            pg.stop()
        if tmp is not None:
            tmp.cleanup()


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
    sizes = sorted(by_size)
    for small, big in zip(sizes, sizes[1:], strict=False):
        factor = big / small
        growth = max(by_size[big][q] / by_size[small][q] for q in by_size[small] if by_size[small][q] > 0)
        name = "growth_10x" if factor == 10 else f"growth_{factor:g}x"
        print(f"{name}={growth:.3f}")


#: Dashboard queries (labels of :func:`measure`) and their counterpart among bench/kpi_floor.py's
#: statements: the same figures of P computed at best by a scan over per-case rows.
FLOOR_OF = {"kpis (no group_by)": "full", "kpis group_by=grid": "full by grid",
            "kpis group_by=category": "full by category"}


async def floor_ratio(url: str, now: datetime, repeat: int, results: list) -> float:
    """Build bench/kpi_floor.py's floor table on the same data, time its statements, and return the
    worst ratio (dashboard p95 ÷ floor p95) over the queries that have a floor counterpart
    (:data:`FLOOR_OF`)."""
    from bench import kpi_floor  # noqa: PLC0415 - it imports this module

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


async def _count(url: str) -> int:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return await conn.fetchval("SELECT count(*) FROM reporting.case_facts")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
