"""Supervision of a running stack: what ``gridcase up`` does while it waits for Ctrl-C.

Every second :meth:`Supervisor.check` looks at

- **PostgreSQL** (the embedded server this run started, ``Infrastructure.postgres``): when its
  postmaster is gone (``kill -9``, a crash), it says so and starts the server again on the same data
  and socket (:meth:`gridcase.infra.EmbeddedPostgres.revive`: crash recovery replays the WAL, nothing
  committed is lost). The services reconnect by themselves (their pools ping on checkout, the
  consumers retry and rewind, the relays back off); meanwhile their ``/health`` answers 503 and intake
  answers 503 with ``Retry-After``.
- **the Kafka broker** (the embedded Tansu, ``Infrastructure.broker``): when it exited, it says so
  and restarts it on the same port. Its log was in memory, so the new broker is empty: every topic,
  record and consumer offset is gone. To get every event through anyway, with no manual step:

  1. the consumers (dispatch, reporting, and intake, which folds the lifecycle into its case view)
     are stopped first: they hold fetch positions in the lost log and could commit them into the
     new one, skipping its first records;
  2. the broker starts, the topics are created again;
  3. the consumers start again: their groups have no offsets in the new log, so they read it from
     its beginning;
  4. every outbox row the lost broker had received (``sent_at`` since it started, less
     :data:`REPLAY_MARGIN`, for a relay transaction that began before the send) is marked unsent
     (:func:`gridcase.ops.replay_events`), and the relays publish it again. dispatch and reporting
     skip every event they had applied already (their processed-event records), so each report is
     counted exactly once. The replay is retried each round until the database takes it.
- **the services**: one that exited is started again on its port; a change of a service's
  ``/health`` (e.g. ``503: database down``) is printed.

The broker and database named by the environment or run by testcontainers are not supervised here
(they have their own supervisor, and a real Kafka keeps its log on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from gridcase.ops import replay_events
from gridcase.runtime import Stack
from shared.platform.kafka import ensure_topics

#: The services that consume from Kafka (they hold positions in the broker's log): dispatch and
#: reporting, and intake for its case view (group ``gridcase-intake-view``).
CONSUMERS = ("intake", "dispatch", "reporting")

#: How far before the lost broker's start the replay begins: a relay stamps ``sent_at`` with its
#: transaction's start (PostgreSQL ``now()``), which can precede the send by the producer's
#: connection time (topic creation up to 15 s, then the request timeout of 15 s). Replaying more
#: than needed is safe.
REPLAY_MARGIN = timedelta(seconds=60)


class Supervisor:
    """Watches a started :class:`~gridcase.runtime.Stack` (see the module docstring).

    ``progress(line)`` receives what the console shows. :meth:`run` loops until ``stopping()``.
    """

    def __init__(self, stack: Stack, progress: Callable[[str], object] = print) -> None:
        self.stack = stack
        self.progress = progress
        self.replay_since: datetime | None = None  # a lost broker log not yet replayed
        self.health: dict[str, str] = {}
        self.broker_restarts = 0
        self.postgres_restarts = 0
        self.replayed: dict[str, int] = {}

    def run(self, stopping: Callable[[], bool], interval_s: float = 1.0) -> None:
        """Call :meth:`check` every ``interval_s`` seconds until ``stopping()`` is true; a failed
        round is reported and the next one tries again."""
        while not stopping():
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - keep supervising; say what failed
                self.progress(f"监控 supervisor: {type(exc).__name__}: {exc}; retrying")
            time.sleep(interval_s)

    def check(self) -> None:
        """One round: PostgreSQL, then the broker (and a pending replay), then the services."""
        self.check_postgres()
        self.check_broker()
        self.check_services()
        self.check_health()

    # ------------------------------------------------------------------ PostgreSQL

    def check_postgres(self) -> None:
        pg = self.stack.infra.postgres if self.stack.infra else None
        if pg is None or pg.server is None or pg.alive():
            return
        self.progress(f"数据库 PostgreSQL (embedded, {pg.data_dir}) is not running; restarting it")
        started = time.monotonic()
        pg.revive()
        self.postgres_restarts += 1
        self.progress(f"数据库 PostgreSQL running again after {time.monotonic() - started:.0f} s "
                      "(crash recovery done); the services reconnect by themselves")

    # ------------------------------------------------------------------ Kafka

    def check_broker(self) -> None:
        broker = self.stack.infra.broker if self.stack.infra else None
        if broker is None:
            return
        code = broker.exit_code()
        if code is None:
            if self.replay_since is not None:
                self.replay()
            return
        lost_since = (broker.started_at or datetime.now().astimezone()) - REPLAY_MARGIN
        self.replay_since = min(self.replay_since or lost_since, lost_since)
        self.progress(f"消息中间件 Kafka broker (embedded Tansu, {broker.bootstrap}) exited with {code}; "
                      "its log was in memory and is lost; restarting it")
        consumers = [name for name, svc in self.stack.services.items() if (svc.module or name) in CONSUMERS]
        for name in consumers:
            self.stack.stop_service(name, timeout_s=15)
        broker.start()
        asyncio.run(ensure_topics(broker.bootstrap, timeout_s=30))
        self.broker_restarts += 1
        for name in consumers:
            self.stack.start_service(name)
        self.progress(f"消息中间件 Kafka broker back on {broker.bootstrap} (empty), topics created; "
                      f"{', '.join(consumers)} restarted to read it from its beginning")
        self.replay()

    def replay(self) -> None:
        """Queue again every outbox row published since :attr:`replay_since` (see module docstring)."""
        assert self.replay_since is not None and self.stack.infra is not None
        since = self.replay_since
        queued = asyncio.run(replay_events(self.stack.infra.database_url, since, column="sent_at"))
        self.replay_since = None
        for key, n in queued.items():
            self.replayed[key] = self.replayed.get(key, 0) + n
        self.progress(f"  重放 replaying the events the lost log held (published since {since:%H:%M:%S}): "
                      + ", ".join(f"{k} {n}" for k, n in queued.items()) + "; consumers skip what they had applied")

    # ------------------------------------------------------------------ services

    def check_services(self) -> None:
        for name, svc in list(self.stack.services.items()):
            if svc.proc is not None and svc.proc.poll() is not None:
                self.progress(f"{name} exited with {svc.proc.returncode}; restarting")
                self.stack.start_service(name)

    def check_health(self) -> None:
        """Print each change of a running service's ``/health`` (the first look only if not ok)."""
        for name, svc in list(self.stack.services.items()):
            if svc.proc is None or svc.proc.poll() is not None:
                continue
            state = "not answering"
            with contextlib.suppress(httpx.HTTPError, ValueError):
                resp = httpx.get(svc.url + "/health", timeout=2)
                state = "ok" if resp.status_code == 200 else f"{resp.status_code}: {describe_down(resp.json())}"
            previous = self.health.get(name)
            self.health[name] = state
            if state != previous and (previous is not None or state != "ok"):
                self.progress(f"  {name} /health {state}")


def describe_down(body: dict) -> str:
    """``database down, broker down`` from a ``/health`` body (shared/platform/health.py)."""
    deps = body.get("dependencies") or {}
    down = [name for name, dep in deps.items() if isinstance(dep, dict) and dep.get("status") != "up"]
    return ", ".join(f"{name} down" for name in down) or str(body.get("status", "unhealthy"))
