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

Usage: ``python bench/kpis.py [--rows 1000000] [--repeat 50] [--period month|quarter|year]``.
Prints figures; asserts nothing.
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


async def load(url: str, n: int, now: datetime) -> float:
    """COPY ``n`` synthetic rows into ``reporting.case_facts`` (emptied first); return seconds."""
    t0 = time.perf_counter()
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("TRUNCATE reporting.case_facts")
        batch, rows = 100_000, synthetic_rows(n, now)
        done = 0
        while done < n:
            chunk = [next(rows) for _ in range(min(batch, n - done))]
            await conn.copy_records_to_table("case_facts", schema_name="reporting", records=chunk, columns=COLUMNS)
            done += len(chunk)
            print(f"  loaded {done:,} rows", flush=True)
        await conn.execute("VACUUM ANALYZE reporting.case_facts")  # steady state: hint bits, visibility map
    finally:
        await conn.close()
    # the KPI rollups the fold keeps (issue 14), computed once from the loaded facts
    t1 = time.perf_counter()
    engine = make_engine(url)
    try:
        async with engine.begin() as aconn:
            await rollups_from_facts(aconn, TENANT, lambda tenant: TZ)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("VACUUM ANALYZE reporting.kpi_cells")
        await conn.execute("VACUUM ANALYZE reporting.kpi_spans")
        sizes = await conn.fetchrow(
            "SELECT pg_total_relation_size('reporting.case_facts') AS facts, "
            "pg_total_relation_size('reporting.kpi_cells') + pg_total_relation_size('reporting.kpi_spans') AS rollups")
    finally:
        await conn.close()
    print(f"  rollups built in {time.perf_counter() - t1:.1f} s: {sizes['rollups'] / 2**20:.0f} MiB "
          f"({100 * sizes['rollups'] / sizes['facts']:.0f} % of the facts' {sizes['facts'] / 2**20:.0f} MiB)", flush=True)
    return time.perf_counter() - t0


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
            total = (await query_kpis(conn, flt, None, now=now))["total"]
            print(f"  (month: 受理 {total['accepted']:,}, 办结 {total['closed']:,}, 在办 {total['in_progress']:,}, "
                  f"超期 {total['overdue']:,}, 办结率 {percent(total['completion_rate'])})")
    finally:
        await engine.dispose()
    return results


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
    """Parse the arguments, provide the database and data, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--period", choices=("month", "quarter", "year"), default="month")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with bench_database(args, now) as url:
        results = asyncio.run(measure(url, now, args.period, args.repeat))
    worst = max(p95 for _, _, p95 in results)
    print(f"worst p95 {worst:.1f} ms: {'goal met' if worst < GOAL_MS else 'goal NOT met'} (p95 < {GOAL_MS:.0f} ms)")


async def _count(url: str) -> int:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return await conn.fetchval("SELECT count(*) FROM reporting.case_facts")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
