"""The service kit: the wiring every gridcase service shares, built once from its settings.

A service's ``main.py`` (its composition root, like cosmicpython's ``bootstrap.py``) makes one
:class:`ServiceKit`, asks it for the parts it uses, adds its own handlers and routers, and lets the
kit build the FastAPI app whose lifespan starts and stops everything::

    kit = ServiceKit("dispatch", settings, migrations=MIGRATIONS, schema=db.SCHEMA)
    relay = kit.outbox_relay(db.outbox, batch=settings.relay_batch)
    kit.consume((TOPIC_REPORTED, TOPIC_ACTIONS), apply, db.processed_events,
                group_id=settings.group_id, after_batch=lambda outcome: relay.wake())
    kit.every(10, kit.sample_outbox, kit.lag_sampler(settings.group_id, (TOPIC_REPORTED,)))
    kit.background(lambda: run_timers(...), "deadline-timers")
    app = kit.app(routers=(progress.router,))

What the parts are (``<name>`` is the service's name, the prefix of its metrics):

- :attr:`ServiceKit.registry` (its own Prometheus registry) and :attr:`ServiceKit.engine`
  (:func:`shared.platform.db.make_engine`; opens no connection until first used).
- :meth:`~ServiceKit.outbox_relay`: an :class:`~shared.platform.outbox.OutboxRelay` on the
  service's outbox table, producer ``gridcase-<name>-relay``, topics (re)created before each
  connection; ``<name>_outbox_published_total``, ``<name>_outbox_publish_errors_total`` and
  ``<name>_outbox_pending_messages`` (set by :meth:`~ServiceKit.sample_outbox`).
- :meth:`~ServiceKit.consume`: one consumer group: a FastStream broker
  (:func:`shared.platform.stream.build_broker`, the broker factory of FastStream's examples), the
  dead-letter producer ``gridcase-<consumer>-dlq``, a :class:`~shared.platform.consumer.BatchProcessor`
  running the service's ``apply(conn, events)`` and the batch subscriber
  (:func:`shared.platform.stream.subscribe_batches`; ``<consumer>_events_applied_total`` …). The
  broker starts with the app (after ``ensure_topics``), or, with ``background=True``, in a task that
  retries until the broker answers, so the app serves while Kafka is away.
- :meth:`~ServiceKit.lag_sampler`: ``<name>_consumer_lag_messages{group,topic}``;
  :meth:`~ServiceKit.every`: a sampler task running actions in turn every few seconds;
  :meth:`~ServiceKit.background`: any other loop the service runs.
- :meth:`~ServiceKit.app`: the FastAPI app: credentials (``Authenticator.for_service``), the
  JSON error handlers, the caller's ``install`` steps, HTTP metrics and ``GET /metrics``,
  ``GET /health`` (database and broker: shared/platform/health.py, 503 while one is down), then
  the service's routers; the OpenAPI lists the platform's answers on every operation
  (shared/platform/openapi.py). Routes reach the engine through
  :func:`engine_of` (``app.state.engine``).

Start (the lifespan, in this order): logging and the SIGUSR1 task dump; the service's migrations,
then the auth schema's; if a consumer starts with the app, ``ensure_topics`` (up to 60 s); the
relay task; the tasks added by :meth:`~ServiceKit.every`, :meth:`~ServiceKit.consume`
(``background=True``) and :meth:`~ServiceKit.background`, in the order they were added; the
brokers of the consumers that start with the app; the line ``<name> ready``.

Stop: the tasks are cancelled; the started brokers stop (handlers in flight finish, 15 s); the
relay stops after its current batch; every task is awaited (20 s at most); the dead-letter
producers stop; the engine is disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from faststream.kafka import KafkaBroker
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.platform.authhttp import Authenticator
from shared.platform.authstore import MIGRATIONS as AUTH_MIGRATIONS
from shared.platform.authstore import SCHEMA as AUTH_SCHEMA
from shared.platform.consumer import ApplyFn, BatchOutcome, BatchProcessor
from shared.platform.db import make_engine, run_migrations_async
from shared.platform.health import health_router
from shared.platform.http import install_error_handlers
from shared.platform.httpserver import BoundedHttpToolsProtocol
from shared.platform.kafka import ensure_topics, make_producer
from shared.platform.lag import every, lag_gauge, measure_lag
from shared.platform.notify import CommitListener, outbox_channel
from shared.platform.openapi import document_platform_answers
from shared.platform.outbox import OutboxRelay
from shared.platform.settings import ServiceSettings
from shared.platform.stream import DlqProducer, build_broker, subscribe_batches
from shared.platform.telemetry import (
    configure_logging,
    install_task_dump,
    instrument_http,
    new_registry,
)

#: What a task or sampler runs: a function returning a coroutine.
Action = Callable[[], Coroutine[Any, Any, object]]


def engine_of(request: Request) -> AsyncEngine:
    """FastAPI dependency: the service's engine (set on the app by :meth:`ServiceKit.app`)."""
    return request.app.state.engine


@dataclass
class _Consumer:
    """One consumer group of a service: its broker, dead-letter producer and how it starts."""

    name: str
    group_id: str
    broker: KafkaBroker
    dlq: DlqProducer
    background: bool
    started: bool = False


@dataclass
class _Task:
    """A task the lifespan starts (``run()``) and cancels at stop."""

    run: Action
    name: str
    handle: asyncio.Task | None = field(default=None, repr=False)


class ServiceKit:
    """The shared wiring of one service (see the module docstring for what it builds and in which
    order it starts and stops).

    Args:
        name: the service's name (``dispatch``): metric prefix, logger ``gridcase.<name>``,
            Kafka client ids ``gridcase-<name>-…``.
        settings: the service's settings (:class:`shared.platform.settings.ServiceSettings`).
        migrations: the service's Alembic folder; ``schema`` the schema it migrates.
    """

    def __init__(self, name: str, settings: ServiceSettings, *, migrations: Path, schema: str) -> None:
        self.name = name
        self.settings = settings
        self.migrations = migrations
        self.schema = schema
        self.log = logging.getLogger(f"gridcase.{name}")
        self.registry = new_registry()
        self.engine = make_engine(settings.database_url)
        self.relay: OutboxRelay | None = None
        self._pending: Gauge | None = None
        self._lag: Gauge | None = None
        self._consumers: list[_Consumer] = []
        self._tasks: list[_Task] = []
        self._relay_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ parts

    def outbox_relay(self, table: sa.Table, *, batch: int = 500, idle_seconds: float = 0.2,
                     poll_seconds: float = 5.0) -> OutboxRelay:
        """The relay publishing ``table`` (the service's outbox; ``batch`` rows per transaction),
        woken by every commit of outbox rows (``LISTEN <schema>_outbox``, shared/platform/notify.py)
        and polled every ``poll_seconds`` as a fallback (every ``idle_seconds`` while it cannot
        listen), with its three metrics; started by the lifespan without waiting for the broker
        (it creates the topics before it connects)."""
        bootstrap = self.settings.kafka_bootstrap_servers
        published = Counter(f"{self.name}_outbox_published_total", "Outbox events published to Kafka",
                            registry=self.registry)
        errors = Counter(f"{self.name}_outbox_publish_errors_total", "Failed outbox publish attempts",
                         registry=self.registry)
        self._pending = Gauge(f"{self.name}_outbox_pending_messages", "Outbox events not yet acknowledged by Kafka",
                              registry=self.registry)
        self.relay = OutboxRelay(
            self.engine,
            table,
            lambda: make_producer(bootstrap, f"gridcase-{self.name}-relay"),
            batch=batch,
            idle_seconds=idle_seconds,
            poll_seconds=poll_seconds,
            listener_factory=lambda wake: CommitListener(self.settings.database_url, outbox_channel(table.schema), wake),
            on_published=published.inc,
            on_error=lambda exc: errors.inc(),
            prepare=lambda: ensure_topics(bootstrap, partitions=self.settings.kafka_topic_partitions, timeout_s=15),
        )
        return self.relay

    async def sample_outbox(self) -> None:
        """Set ``<name>_outbox_pending_messages`` to the relay's backlog (an :meth:`every` action)."""
        if self.relay is None or self._pending is None:
            raise RuntimeError("sample_outbox needs outbox_relay() first")
        self._pending.set(await self.relay.backlog())

    def consume(
        self,
        topics: tuple[str, ...],
        apply: ApplyFn,
        processed: sa.Table,
        *,
        group_id: str,
        consumer: str | None = None,
        after_batch: Callable[[BatchOutcome], Awaitable[None] | None] | None = None,
        background: bool = False,
    ) -> KafkaBroker:
        """Subscribe ``apply(conn, events)`` to ``topics`` in consumer group ``group_id``.

        ``consumer`` (default: the service's name) names the ``processed`` rows, the dead-letter
        producer ``gridcase-<consumer>-dlq`` and the metrics ``<consumer>_events_applied_total`` …
        (``-`` written ``_``). ``after_batch(outcome)`` runs after each committed batch.
        ``background=True``: the broker starts in a task that retries until Kafka answers, instead
        of holding the app's start until it does. Returns the broker.
        """
        consumer = consumer or self.name
        settings = self.settings
        dlq = DlqProducer(settings.kafka_bootstrap_servers, f"gridcase-{consumer}-dlq")
        processor = BatchProcessor(consumer, self.engine, processed, apply, dlq.get, max_attempts=settings.max_attempts)
        broker = build_broker(settings, self.registry, self.name)
        subscribe_batches(broker, settings, topics=topics, group_id=group_id, processor=processor,
                          registry=self.registry, metric_prefix=consumer.replace("-", "_"), after_batch=after_batch)
        entry = _Consumer(consumer, group_id, broker, dlq, background)
        self._consumers.append(entry)
        if background:
            self.background(lambda: self._start_retrying(entry), consumer)
        return broker

    def lag_sampler(self, group_id: str, topics: tuple[str, ...]) -> Action:
        """An :meth:`every` action setting ``<name>_consumer_lag_messages{group,topic}`` for ``topics``."""
        if self._lag is None:
            self._lag = lag_gauge(self.registry, self.name)
        gauge, bootstrap = self._lag, self.settings.kafka_bootstrap_servers

        async def sample() -> None:
            for topic, value in (await measure_lag(bootstrap, group_id, topics)).items():
                gauge.labels(group_id, topic).set(value)

        return sample

    def every(self, seconds: float, *actions: Action, name: str | None = None) -> None:
        """Run ``actions`` one after the other every ``seconds`` while the service runs; a failure
        is logged (debug) and skips the rest of that round (:func:`shared.platform.lag.every`)."""
        label = name or f"{self.name} metrics sampler"

        async def round_() -> None:
            for action in actions:
                await action()

        self.background(lambda: every(seconds, round_, label), label)

    def background(self, run: Action, name: str) -> None:
        """Start ``run()`` as task ``name`` when the service starts; cancel it when it stops."""
        self._tasks.append(_Task(run, name))

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Migrate and start the relay, the tasks and the brokers (order: module docstring)."""
        settings = self.settings
        configure_logging(settings.log_level, self.name, settings.log_format)
        install_task_dump(self.log)
        await run_migrations_async(settings.database_url, self.migrations, self.schema)
        await run_migrations_async(settings.database_url, AUTH_MIGRATIONS, AUTH_SCHEMA)
        waiting = [c for c in self._consumers if not c.background]
        if waiting:
            await ensure_topics(settings.kafka_bootstrap_servers, partitions=settings.kafka_topic_partitions)
        if self.relay is not None:
            self._relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
        for task in self._tasks:
            task.handle = asyncio.create_task(task.run(), name=task.name)
        for c in waiting:
            await c.broker.start()
            c.started = True
        if waiting:
            self.log.info("%s ready (group %s)", self.name, ", ".join(c.group_id for c in waiting))
        else:
            self.log.info("%s ready on %s:%d", self.name, settings.host, settings.port)

    async def stop(self) -> None:
        """Stop what :meth:`start` started (order: module docstring)."""
        handles = [t.handle for t in self._tasks if t.handle is not None]
        for handle in handles:
            handle.cancel()
        for c in self._consumers:
            if c.started:
                await c.broker.stop()
                c.started = False
        if self.relay is not None:
            await self.relay.stop()
        if self._relay_task is not None:
            handles.append(self._relay_task)
        if handles:
            await asyncio.wait(handles, timeout=20)
        for c in self._consumers:
            await c.dlq.stop()
        await self.engine.dispose()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        """The app's lifespan: :meth:`start`, serve, :meth:`stop`."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _start_retrying(self, c: _Consumer) -> None:
        """Start ``c``'s broker, retrying with a growing delay (at most 15 s) until Kafka answers."""
        delay = 1.0
        while not c.started:
            try:
                await ensure_topics(self.settings.kafka_bootstrap_servers,
                                    partitions=self.settings.kafka_topic_partitions, timeout_s=10)
                await c.broker.start()
                c.started = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker not there yet
                self.log.info("%s: broker not reachable (%s); retrying", c.name, type(exc).__name__)
                with contextlib.suppress(Exception):
                    await c.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    # ------------------------------------------------------------------ HTTP

    def app(self, *, title: str | None = None, install: Iterable[Callable[[FastAPI], object]] = (),
            routers: Iterable[APIRouter] = ()) -> FastAPI:
        """The service's FastAPI app (title ``gridcase <name>``) with :meth:`lifespan`.

        ``install`` steps (middleware, mounted sub-apps) run after the error handlers and before the
        HTTP metrics, so the metrics middleware wraps them; ``routers`` are included after
        ``/health``.
        """
        app = FastAPI(title=title or f"gridcase {self.name}", version="0.1.0", lifespan=self.lifespan)
        app.state.auth = Authenticator.for_service(self.engine, self.settings)
        app.state.engine = self.engine
        install_error_handlers(app)
        for step in install:
            step(app)
        instrument_http(app, self.registry, self.name)
        app.include_router(health_router(self.engine, self.settings.kafka_bootstrap_servers, self.name))
        for router in routers:
            app.include_router(router)
        document_platform_answers(app)
        return app


def serve(create_app: Callable[[Any], FastAPI], settings: Any) -> None:
    """Run a service's app with uvicorn on its configured host and port (``python -m
    services.<name>``); SIGTERM shuts it down gracefully (handlers in flight finish, 30 s). Logging
    is configured first (so warnings while the app is built, e.g. the development PII key, are
    formatted like the rest) and uvicorn keeps it (``log_config=None``: no colour codes).

    The event loop is uvloop and the HTTP parser httptools (both dependencies; uvicorn picks the
    loop when installed; uvloop is not installed on Windows, pyproject.toml, where the loop is
    asyncio's). The protocol is uvicorn's httptools one with the request head bounded to 16 KiB
    as its h11 one bounds it (shared/platform/httpserver.py). The loop runs the HTTP server, the
    Kafka consumers and producers and the database driver alike, and with them each service spent
    11–16 % less CPU per POSTed report (issue 13; docs/operations.md §3.2)."""
    prefix = str(getattr(settings, "model_config", {}).get("env_prefix", "")).rstrip("_").lower()
    configure_logging(settings.log_level, prefix or "gridcase", settings.log_format)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=30, use_colors=False,
                loop="auto", http=BoundedHttpToolsProtocol)
