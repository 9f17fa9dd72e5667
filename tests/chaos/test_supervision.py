"""Chaos under supervision (issue 16): ``kill -9`` of the embedded broker and of PostgreSQL while
reports flow, with the supervisor of ``gridcase up`` (gridcase/supervise.py) running as it does
there and no manual step: 0 lost, 0 counted twice.

The stack, the feeder and the final check are those of tests/chaos/test_chaos.py (a grid worker's
live report yields exactly four events; every fact row must have ``event_count == 4``). The
supervisor runs in a thread; a test may hold it for a moment (:attr:`Supervised.hold`) to look at
what the services answer while a dependency is down before it is restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from gridcase.supervise import Supervisor
from shared.contract.events import derive_id
from shared.platform.db import libpq_url
from tests import api
from tests.chaos.test_chaos import (  # noqa: F401 - chaos_stack: the fixture
    CHUNK,
    EVENTS_PER_REPORT,
    TENANT,
    Feeder,
    chaos_stack,
    settle_and_check,
)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("DATABASE_URL")),
        reason="the scenarios kill the embedded broker and database",
    ),
]

SERVICES = ("intake", "dispatch", "reporting")


@dataclass
class Supervised:
    """The chaos stack with its supervisor checking every 0.5 s in a thread (unless held)."""

    stack: object
    supervisor: Supervisor
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self) -> None:
        while not self.stop.is_set():
            if not self.hold.is_set():
                try:
                    self.supervisor.check()
                except Exception as exc:  # noqa: BLE001 - as Supervisor.run: report, try again
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.5)

    def wait_for(self, what, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not what():
            assert time.monotonic() < deadline, f"supervisor did not recover: {self.lines} {self.errors}"
            time.sleep(0.5)

    def wait_all_healthy(self, timeout_s: float = 180) -> None:
        def healthy() -> bool:
            for name in SERVICES:
                try:
                    if httpx.get(self.stack.url(name) + "/health", timeout=5).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
            return True

        self.wait_for(healthy, timeout_s)


@pytest.fixture
def supervised(chaos_stack):  # noqa: F811 - the fixture imported above
    chaos_stack.infra.broker, chaos_stack.infra.postgres = chaos_stack.broker, chaos_stack.pg
    sup = Supervised(chaos_stack, None)
    sup.supervisor = Supervisor(chaos_stack, progress=sup.lines.append)
    thread = threading.Thread(target=sup.loop, daemon=True)
    thread.start()
    try:
        yield sup
    finally:
        sup.stop.set()
        thread.join(120)
        print("\nsupervisor console:\n  " + "\n  ".join(sup.lines))


def health(stack, name: str) -> tuple[int, dict]:
    resp = httpx.get(stack.url(name) + "/health", timeout=10)
    return resp.status_code, resp.json()


def test_f_broker_killed_9_under_load(supervised):
    stack = supervised.stack
    feeder = Feeder(stack, "chaos-f", 5_000, pause_s=2.0).start()
    time.sleep(12)  # dispatch and reporting have joined their groups and consume: both relays publish
    supervised.hold.set()
    # Make sure the lost log holds events nobody consumed yet (the case that needs the replay):
    # freeze the consumers until the next chunk is accepted and intake's relay has published it.
    frozen = [stack.services[name].proc.pid for name in ("dispatch", "reporting")]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        mark = feeder.accepted
        supervised.wait_for(lambda: feeder.accepted >= mark + CHUNK and unsent(stack) == 0, 120)
        os.kill(stack.broker.proc.pid, signal.SIGKILL)
        stack.broker.proc.wait(10)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    # Before the supervisor acts: every service says the broker is down; intake still takes reports
    # (its outbox keeps them) but tells that the pipeline behind it does not move.
    time.sleep(3)  # the broker probe's answer is reused for 2 s
    for name in SERVICES:
        status, body = health(stack, name)
        assert status == 503, (name, body)
        assert body["dependencies"]["broker"]["status"] == "down", (name, body)
        assert body["dependencies"]["database"] == {"status": "up"}, (name, body)
    accepted_before = feeder.accepted
    supervised.hold.clear()
    supervised.wait_for(lambda: supervised.supervisor.broker_restarts == 1 and supervised.supervisor.replay_since is None)
    supervised.wait_all_healthy()
    console = "\n".join(supervised.lines)
    assert "Kafka broker (embedded Tansu" in console and "exited with -9" in console
    assert "replaying the events the lost log held" in console
    # The lost log held intake's and dispatch's events published before the kill: queued again.
    assert supervised.supervisor.replayed["intake"] > 0
    assert supervised.supervisor.replayed["dispatch"] > 0
    print(f"\nchaos f: accepted {accepted_before} before the kill; replayed {supervised.supervisor.replayed}")
    # No gridcase replay-events, no restart by hand: the supervisor alone brought it back.
    settle_and_check(stack, feeder, "f (broker kill -9 under load, supervised)")
    # intake's case view consumes the lifecycle too (group gridcase-intake-view): each case's three
    # lifecycle events (accept, file, dispatched) reach its history, none lost.
    expected = EVENTS_PER_REPORT - 1
    supervised.wait_for(lambda: intake_history_events(stack, "chaos-f", feeder.n) >= expected * feeder.n, 120)
    assert intake_history_events(stack, "chaos-f", feeder.n) == expected * feeder.n
    assert supervised.errors == []


def unsent(stack) -> int:
    """Rows of intake's outbox not yet acknowledged by the broker."""

    async def query() -> int:
        conn = await asyncpg.connect(libpq_url(stack.infra.database_url))
        try:
            return await conn.fetchval("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL")
        finally:
            await conn.close()

    return asyncio.run(query())


def intake_history_events(stack, source: str, n: int) -> int:
    """Lifecycle events in intake's case histories (``intake.case_events``) of the scenario's cases."""
    ids = [derive_id(TENANT, source, f"{source}-{i:06d}") for i in range(n)]

    async def query() -> int:
        conn = await asyncpg.connect(libpq_url(stack.infra.database_url))
        try:
            return await conn.fetchval("SELECT count(*) FROM intake.case_events WHERE case_id = ANY($1::uuid[])", ids)
        finally:
            await conn.close()

    return asyncio.run(query())


def test_g_postgres_killed_9_under_load(supervised):
    stack = supervised.stack
    feeder = Feeder(stack, "chaos-g", 5_000, pause_s=0.5).start()
    time.sleep(5)
    supervised.hold.set()
    os.kill(stack.pg.postmaster_pid(), signal.SIGKILL)
    # While PostgreSQL is away: /health 503 naming the database, and a report answers 503 with
    # Retry-After (not 500); nothing was applied, so the client retries it.
    report = {"tenant": "demo-grid", "category_code": "100102", "place_code": "990102001002001", "channel": "phone",
              "description": "数据库中断时的上报 report while the database is away",
              "reported_at": "2026-11-02T09:00:00+08:00"}
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (seen.get("report") == 503 and len(seen) == 4):
        for name in SERVICES:
            status, body = health(stack, name)
            if status == 503 and body["dependencies"]["database"]["status"] == "down":
                seen[name] = status
        resp = api.post(stack.url("intake") + "/v1/reports", json=report, timeout=10)
        assert resp.status_code != 500, resp.text
        if resp.status_code == 503:
            assert resp.headers["Retry-After"].isdigit()
            assert resp.json()["error"] == "database_unavailable"
            seen["report"] = 503
        time.sleep(0.5)
    assert seen == {"intake": 503, "dispatch": 503, "reporting": 503, "report": 503}
    supervised.hold.clear()
    supervised.wait_for(lambda: supervised.supervisor.postgres_restarts == 1)
    supervised.wait_all_healthy()
    assert "PostgreSQL running again" in "\n".join(supervised.lines)
    settle_and_check(stack, feeder, "g (PostgreSQL kill -9 under load, supervised)")
    assert supervised.errors == []
