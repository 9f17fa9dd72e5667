"""Benchmark: reporting's fold alone, no broker and no HTTP.

The fold is services/reporting/handlers.py ``apply_events``: case facts, steps, KPI rollups (day
cells and month cuboids) and step cells.

Starts a scratch embedded PostgreSQL (gridcase.infra.EmbeddedPostgres, in a temporary folder, or
uses ``--database-url``), runs the reporting migrations, then folds the events of ``--cases``
synthetic cases (a report, a dispatch with a deadline, four to eight transitions — acknowledge,
act, transfer, reopen, close, callback — and sometimes a supervision alert; seeded, so every run
folds the same events) in batches of ``--batch`` events, each batch in its own transaction as the
consumer folds them. The events are interleaved across cases (the i-th event of every case of a
window of cases, then the (i+1)-th …), so most batches touch cases that already have rows, as on a
running consumer. Every ``--rounds`` round uses new case ids in a new tenant.

Prints ``name=value`` lines: ``events``, ``events_per_s`` (events ÷ wall seconds spent in the
transactions), ``wall_ms_per_event``, ``cpu_ms_per_event`` (this process's CPU, the fold's Python,
plus the PostgreSQL backend's CPU from /proc, per event), ``client_cpu_ms_per_event`` and
``db_cpu_ms_per_event`` apart. Each figure is the median over the rounds (the first round, a
warm-up, not counted when there are more than one). Asserts nothing.

Usage: ``python bench/fold.py [--cases 2000] [--batch 500] [--rounds 4]`` (or ``python -m bench.fold``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, print_figure  # noqa: E402
from bench.kpi_data import reporting_database  # noqa: E402
from services.reporting.handlers import apply_events, zones_of  # noqa: E402
from shared.contract.actions import OUTCOMES, SATISFACTIONS  # noqa: E402
from shared.contract.events import (  # noqa: E402
    CaseDispatched,
    CaseReported,
    CaseSupervised,
    CaseTransitioned,
)
from shared.domain.workcalendar import DEFAULT_TZ  # noqa: E402
from shared.platform.db import make_engine  # noqa: E402

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PLACES = [f"990102{s:03d}{c:03d}{g:03d}" for s in range(1, 4) for c in range(1, 4) for g in range(1, 4)]
CATEGORIES = ("100401", "100402", "100501", "100110")
DEPARTMENTS = ("housing", "urban_management", "health")
#: (action, from_state, to_state) of the transitions after the dispatch, in the order a case takes them
PATHS = (
    [("act", "dispatched", "acknowledged"), ("act", "acknowledged", "in_progress"),
     ("act", "in_progress", "resolved"), ("verify_pass", "checking", "closed"), ("callback", "closed", "closed")],
    [("act", "dispatched", "acknowledged"), ("transfer", "acknowledged", "dispatched"),
     ("act", "dispatched", "acknowledged"), ("act", "acknowledged", "resolved"), ("verify_pass", "checking", "closed"),
     ("reopen", "closed", "dispatched"), ("act", "dispatched", "resolved"), ("verify_pass", "checking", "closed")],
    [("act", "dispatched", "acknowledged"), ("act", "acknowledged", "in_progress"),
     ("shelve", "in_progress", "shelved"), ("act", "shelved", "in_progress")],
)


def case_events(rng: random.Random, tenant: str, i: int) -> list:
    """One synthetic case's events, in the order dispatch emits them."""
    base = {"case_id": uuid.UUID(int=rng.getrandbits(128), version=4), "tenant": tenant,
            "place_code": rng.choice(PLACES)}
    t = T0 + timedelta(minutes=7 * i + rng.randint(0, 600))
    dept = rng.choice(DEPARTMENTS)
    events = [CaseReported(event_id=uuid.uuid4(), occurred_at=t, reported_at=t, category_code=rng.choice(CATEGORIES),
                           channel=rng.choice(["grid_worker", "phone", "12345"]), urgency="一般", **base),
              CaseDispatched(event_id=uuid.uuid4(), occurred_at=t + timedelta(minutes=5), target_kind="department",
                             department=dept, rule="r", deadline=t + timedelta(days=3), sequence=1, **base)]
    counts = {"transfer_count": 0, "return_count": 0, "rework_count": 0, "supervision_level": 0, "reopen_count": 0,
              "recategorize_count": 0}
    for seq, (action, from_state, to_state) in enumerate(rng.choice(PATHS), start=2):
        t += timedelta(minutes=rng.randint(10, 900))
        if action == "transfer":
            counts["transfer_count"] += 1
            dept = rng.choice(DEPARTMENTS)
        if action == "reopen":
            counts["reopen_count"] += 1
            counts["rework_count"] += 1
        closing = to_state == "closed"
        events.append(CaseTransitioned(
            event_id=uuid.uuid4(), occurred_at=t, action=action, from_state=from_state, to_state=to_state,
            actor_role="department_staff", sequence=seq, department=dept, target_kind="department",
            outcome=rng.choice(OUTCOMES) if closing else None,
            satisfaction=rng.choice(SATISFACTIONS) if action == "callback" else None,
            resident_resolved=True if action == "callback" else None, **counts, **base))
    if rng.random() < 0.2:
        events.append(CaseSupervised(event_id=uuid.uuid4(), occurred_at=t, alert="red", level=1, **base))
    return events


def interleaved(cases: list[list], window: int) -> list:
    """The events of ``cases``, a window of cases at a time: the first event of each, then the second …"""
    out = []
    for w in range(0, len(cases), window):
        group = cases[w:w + window]
        for i in range(max(len(c) for c in group)):
            out.extend(c[i] for c in group if i < len(c))
    return out


async def one_round(url: str, events: list, batch: int) -> dict[str, float]:
    engine = make_engine(url)
    tz_of = zones_of({})
    try:
        async with engine.connect() as conn:
            pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
            await conn.commit()
            wall = 0.0
            cpu0, db0 = time.process_time(), cpu_seconds(pid)
            for b in range(0, len(events), batch):
                t = time.perf_counter()
                async with conn.begin():
                    await apply_events(conn, events[b:b + batch], tz_of)
                wall += time.perf_counter() - t
            cpu, db = time.process_time() - cpu0, cpu_seconds(pid) - db0
    finally:
        await engine.dispose()
    n = len(events)
    return {"events_per_s": n / wall, "wall_ms_per_event": 1000 * wall / n, "cpu_ms_per_event": 1000 * (cpu + db) / n,
            "client_cpu_ms_per_event": 1000 * cpu / n, "db_cpu_ms_per_event": 1000 * db / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases folded per round")
    parser.add_argument("--batch", type=int, default=500, help="events per transaction (the consumer's batch)")
    parser.add_argument("--window", type=int, default=200, help="cases whose events are interleaved")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, the first a warm-up when more than one")
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a scratch embedded one")
    args = parser.parse_args()
    with reporting_database(args.database_url, "gridcase-bench-fold-") as url:
        rounds = []
        for r in range(args.rounds):
            rng = random.Random(1000 + r)
            tenant = f"bench-fold-{uuid.uuid4().hex[:8]}"
            events = interleaved([case_events(rng, tenant, i) for i in range(args.cases)], args.window)
            rounds.append(asyncio.run(one_round(url, events, args.batch)))
            print(f"  round {r}: {len(events)} events, {rounds[-1]['events_per_s']:.0f} events/s", flush=True)
        counted = rounds[1:] if len(rounds) > 1 else rounds
        print_figure("events", len(events))
        print_figure("tz", DEFAULT_TZ.key)
        for name in rounds[0]:
            print_figure(name, float(statistics.median(r[name] for r in counted)))

if __name__ == "__main__":
    main()
