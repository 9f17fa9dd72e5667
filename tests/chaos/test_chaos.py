"""Chaos: nothing lost, nothing counted twice, whatever crashes in between.

Each scenario starts its own broker, PostgreSQL and services (embedded ones: the scenarios stop and
restart them), feeds live reports through intake's import API in chunks (a chunk is retried until
intake answers 200; case ids derive from the source ids, so a retry never creates a second case),
breaks something while they flow, and then checks in reporting's tables that

- every accepted report is counted (lost = accepted − counted = 0), nothing else is, and
- no event was applied twice: a grid worker's live report yields exactly four events
  (``case.reported``; ``case.transitioned`` accept and file, done by the system for grid-worker
  reports; ``case.dispatched``), so every fact row must have ``event_count == 4``.

Each prints ``sent / accepted / counted / lost / duplicated``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from gridcase.client import wait_until_counted
from gridcase.infra import EmbeddedPostgres, Infrastructure, TansuBroker
from gridcase.ops import list_dead_letters, replay_events
from gridcase.runtime import Stack
from shared.contract.events import CaseReported, derive_id, encode_event
from shared.contract.topics import TOPIC_REPORTED
from shared.platform.db import libpq_url
from shared.platform.kafka import ensure_topics
from tests import api
from tests.conftest import state_dir

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("DATABASE_URL")),
        reason="chaos scenarios stop and restart the broker and database, so they run on the embedded ones",
    ),
]

TENANT = "demo-grid"
GRIDS = ("990102001001001", "990102001001002", "990102001002001", "990102001002003")
CATEGORIES = ("100401", "100102", "100110", "200101", "300102", "400101", "999999")
CHUNK = 500
EVENTS_PER_REPORT = 4  # reported, accept, file, dispatched (services/dispatch/domain/reports.py)


@pytest.fixture
def chaos_stack(tmp_path):
    """A private stack on an embedded broker and PostgreSQL that the test may break."""
    folder = state_dir("gridcase-chaos-")  # outside pytest's tree, see tests/conftest.py
    broker = TansuBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    pg = EmbeddedPostgres(folder / "pgdata")
    url = pg.start()
    infra = Infrastructure(broker.bootstrap, url, "embedded-tansu", "embedded-postgres", [pg.stop, broker.stop])
    stack = Stack(tmp_path / "stack", fresh=False, infra=infra, env={"DISPATCH_MAX_ATTEMPTS": "3", "REPORTING_MAX_ATTEMPTS": "3"})
    stack.start(progress=lambda line: None)
    stack.broker, stack.pg = broker, pg
    try:
        yield stack
    finally:
        stack.stop()
        infra.stop()
        shutil.rmtree(folder, ignore_errors=True)


def report_line(source: str, i: int) -> str:
    return json.dumps(
        {
            "tenant": TENANT,
            "category_code": CATEGORIES[i % len(CATEGORIES)],
            "place_code": GRIDS[i % len(GRIDS)],
            "description": f"混沌测试上报 chaos report {i}",
            "channel": "grid_worker",
            "reported_at": (datetime(2026, 11, 2, 8, 0, tzinfo=UTC) + timedelta(seconds=i)).isoformat(),
            "source": source,
            "source_id": f"{source}-{i:06d}",
        },
        ensure_ascii=False,
    )


@dataclass
class Feeder:
    """Imports ``n`` reports in chunks from a background thread, retrying a chunk until accepted."""

    stack: Stack
    source: str
    n: int
    pause_s: float = 0.0
    sent: int = 0
    accepted: int = 0
    retries: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def start(self) -> Feeder:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            for start in range(0, self.n, CHUNK):
                body = "\n".join(report_line(self.source, i) for i in range(start, min(start + CHUNK, self.n)))
                self.sent += body.count("\n") + 1
                while True:
                    try:
                        resp = api.post(
                            f"{self.stack.url('intake')}/v1/imports",
                            params={"format": "jsonl", "tenant": TENANT},
                            content=body.encode("utf-8"),
                            timeout=30,
                        )
                        if resp.status_code == 200:
                            result = resp.json()
                            assert result["rejected"] == 0, result["rejects"][:2]
                            self.accepted += result["accepted"] - result["duplicates"]
                            break
                    except httpx.HTTPError:
                        pass
                    self.retries += 1
                    time.sleep(0.5)
                time.sleep(self.pause_s)
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout_s: float = 300) -> None:
        assert self.done.wait(timeout_s), "feeder did not finish"
        if self.error:
            raise self.error


def figures(stack: Stack, source: str, n: int) -> dict:
    """Compare the accepted case ids with reporting's fact rows for this scenario's source."""
    expected = {derive_id(TENANT, source, f"{source}-{i:06d}") for i in range(n)}

    async def query() -> list:
        conn = await asyncpg.connect(libpq_url(stack.infra.database_url))
        try:
            return await conn.fetch(
                "SELECT case_id, event_count FROM reporting.case_facts WHERE source = $1 AND reported_at IS NOT NULL",
                source,
            )
        finally:
            await conn.close()

    rows = asyncio.run(query())
    counted = {r["case_id"] for r in rows}
    return {
        "counted": len(rows),
        "lost": len(expected - counted),
        "unexpected": len(counted - expected),
        "duplicated": sum(1 for r in rows if r["event_count"] != EVENTS_PER_REPORT),
    }


def settle_and_check(stack: Stack, feeder: Feeder, scenario: str, timeout_s: float = 300) -> dict:
    feeder.wait()
    live_dispatch = next(
        name for name, svc in stack.services.items()
        if svc.module == "dispatch" and svc.proc is not None and svc.proc.poll() is None
    )
    wait_until_counted(stack.url(live_dispatch), stack.url("reporting"), TENANT, feeder.n, timeout_s=timeout_s)
    f = figures(stack, feeder.source, feeder.n)
    print(
        f"\nchaos {scenario}: sent {feeder.sent} / accepted {feeder.accepted} / counted {f['counted']} / "
        f"lost {f['lost']} / duplicated {f['duplicated']} (chunk retries {feeder.retries})"
    )
    assert feeder.accepted == feeder.n
    assert f == {"counted": feeder.n, "lost": 0, "unexpected": 0, "duplicated": 0}
    return f


def kill_and_restart(stack: Stack, name: str, down_s: float = 1.0) -> None:
    stack.stop_service(name, signal.SIGKILL, timeout_s=10)
    time.sleep(down_s)
    stack.start_service(name)
    stack.wait_healthy(name)


def test_a_consumers_killed_three_times_each(chaos_stack):
    feeder = Feeder(chaos_stack, "chaos-a", 20_000, pause_s=0.2).start()
    for _ in range(3):
        time.sleep(2.5)
        kill_and_restart(chaos_stack, "dispatch")
        time.sleep(2.5)
        kill_and_restart(chaos_stack, "reporting")
    settle_and_check(chaos_stack, feeder, "a (dispatch and reporting SIGKILLed 3x each)")


def test_b_broker_down_30s_and_back_empty(chaos_stack):
    since = datetime.now(UTC) - timedelta(seconds=1)
    feeder = Feeder(chaos_stack, "chaos-b", 5_000, pause_s=2.0).start()
    time.sleep(4)
    accepted_before = feeder.accepted
    chaos_stack.broker.stop()
    time.sleep(30)  # intake keeps answering meanwhile: its outbox holds the events
    accepted_while_down = feeder.accepted - accepted_before
    chaos_stack.broker.start()  # same port, memory storage: an empty log
    asyncio.run(ensure_topics(chaos_stack.infra.kafka_bootstrap))
    # Operator procedure (README, "Recovering from a lost broker log"): publish the log again.
    queued = asyncio.run(replay_events(chaos_stack.infra.database_url, since, chaos_stack.infra.kafka_bootstrap))
    print(f"\nchaos b: accepted {accepted_before} before the broker stopped, {accepted_while_down} while it was down; "
          f"replay queued {queued}")
    assert accepted_while_down > 0
    settle_and_check(chaos_stack, feeder, "b (broker stopped 30 s, back empty, log replayed)")


def test_c_postgres_restarted_mid_stream(chaos_stack):
    feeder = Feeder(chaos_stack, "chaos-c", 5_000, pause_s=0.5).start()
    time.sleep(4)
    chaos_stack.pg.restart(down_seconds=5)
    settle_and_check(chaos_stack, feeder, "c (PostgreSQL restarted mid-stream)")


def test_d_two_dispatch_instances_one_killed(chaos_stack):
    chaos_stack.start_service("dispatch-2", "dispatch")
    chaos_stack.wait_healthy("dispatch-2")
    time.sleep(6)  # let the group settle with two members (partitions split between them)
    feeder = Feeder(chaos_stack, "chaos-d", 5_000, pause_s=0.5).start()
    time.sleep(4)
    chaos_stack.stop_service("dispatch", signal.SIGKILL, timeout_s=10)
    before = applied_by(chaos_stack, "dispatch-2")
    settle_and_check(chaos_stack, feeder, "d (two dispatch instances, one SIGKILLed)")
    after = applied_by(chaos_stack, "dispatch-2")
    print(f"chaos d: dispatch-2 applied {before:.0f} events before the kill, {after:.0f} at the end")
    assert after > before  # the survivor took over the dead member's partitions


def applied_by(stack: Stack, name: str) -> float:
    text = api.get(stack.url(name) + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("dispatch_events_applied_total{"))


def test_e_one_percent_poison(chaos_stack):
    n = 5_000
    poison = n // 100
    feeder = Feeder(chaos_stack, "chaos-e", n, pause_s=0.1).start()

    async def inject() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=chaos_stack.infra.kafka_bootstrap)
        await producer.start()
        try:
            for k in range(poison):
                kind = k % 3
                if kind == 0:
                    value = b'{"event_type": "case.reported", "broken json'
                elif kind == 1:
                    good = CaseReported(
                        event_id=derive_id("poison", k), occurred_at=datetime.now(UTC), case_id=derive_id("poison-case", k),
                        tenant=TENANT, place_code=GRIDS[0], category_code="100401", reported_at=datetime.now(UTC),
                    )
                    value = encode_event(good).replace(b'"schema_version":1', b'"schema_version":99')
                else:
                    value = json.dumps({"event_type": "case.teleported", "event_id": str(derive_id("p", k))}).encode()
                await producer.send_and_wait(TOPIC_REPORTED, value, key=f"poison-{k}".encode())
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()

    asyncio.run(inject())
    settle_and_check(chaos_stack, feeder, "e (1 % poison messages)")
    deadline = time.monotonic() + 60
    while True:
        letters = [r for r in asyncio.run(list_dead_letters(chaos_stack.infra.kafka_bootstrap)) if (r.key or "").startswith("poison-")]
        if len(letters) >= 2 * poison or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"chaos e: poison injected {poison}, in {TOPIC_REPORTED}.dlq: {len(letters)} (dispatch and reporting each dead-letter their copy)")
    # Both consumer groups read the topic, and each dead-letters what it cannot read.
    pairs = [(r.headers["dlq.consumer"], r.key) for r in letters]
    assert sorted(pairs) == sorted((c, f"poison-{k}") for c in ("dispatch", "reporting") for k in range(poison))
