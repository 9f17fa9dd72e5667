"""The ground both KPI benchmarks (bench/kpis.py, bench/kpi_floor.py) measure on: a PostgreSQL
with the reporting migrations and N synthetic case facts of one city tenant (``bench-city``,
Asia/Shanghai) with their steps and rollups, the period P (the last calendar month) and the 50 ms
goal of issue 4. The synthetic data is described in bench/kpis.py's docstring (step 2)."""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from gridcase.infra import EmbeddedPostgres
from services.reporting.db import MIGRATIONS
from services.reporting.kpis.rollup_fold import rollups_from_facts
from shared.domain.taxonomy import load_taxonomy
from shared.platform.db import libpq_url, make_engine, run_migrations

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
            await step_rollup.recompute(conn, TENANT, page=5_000)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("VACUUM ANALYZE reporting.kpi_cells, reporting.kpi_spans, reporting.kpi_sketches, "
                           "reporting.kpi_month_cells, reporting.kpi_month_spans, reporting.kpi_month_sketches, "
                           "reporting.step_cells, reporting.step_day_cells, reporting.step_case_days, "
                           "reporting.step_month_cells, reporting.step_month_case_days")
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


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rows``, ``--database-url`` and ``--keep-data``: the arguments of :func:`bench_database`."""
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a scratch embedded one (its "
                        "reporting.case_facts is EMPTIED unless --keep-data finds --rows rows)")
    parser.add_argument("--keep-data", action="store_true", help="skip loading if the table already has --rows rows")


async def _count(url: str) -> int:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return await conn.fetchval("SELECT count(*) FROM reporting.case_facts")
    finally:
        await conn.close()


@contextmanager
def reporting_database(database_url: str | None, prefix: str = "gridcase-bench-") -> Iterator[str]:
    """The URL of a PostgreSQL with the reporting migrations run: ``database_url``, or a scratch
    embedded server in a temporary folder (``prefix``), stopped and removed on exit."""
    tmp = pg = None
    if database_url:
        url = database_url
    else:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        pg = EmbeddedPostgres(Path(tmp.name) / "pgdata")
        url = pg.start()
    try:
        run_migrations(url, MIGRATIONS, "reporting")
        yield url
    finally:
        if pg is not None:
            pg.stop()
        if tmp is not None:
            tmp.cleanup()


@contextmanager
def bench_database(args: argparse.Namespace, now: datetime) -> Iterator[str]:
    """:func:`reporting_database` (``--database-url`` or a scratch one) with ``args.rows`` synthetic
    case facts reported up to ``now`` (:func:`load`; kept if ``--keep-data`` finds that many)."""
    with reporting_database(args.database_url) as url:
        if args.keep_data and asyncio.run(_count(url)) == args.rows:
            print(f"reusing {args.rows:,} rows")
        else:
            print(f"loading {args.rows:,} synthetic case facts …")
            print(f"loaded in {asyncio.run(load(url, args.rows, now)):.1f} s")
        yield url
