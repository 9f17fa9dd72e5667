"""Dispatch: owns each case's lifecycle. Consumes ``case.reported`` and ``case.action_requested``,
routes, publishes transitions; this module builds the app (its composition root).

For every new report, in one transaction: the case row in ``dispatch.cases``, the processed-event
record, and the lifecycle events in ``dispatch.outbox`` (services/dispatch/handlers.py); the outbox
relay publishes them to ``TOPIC_LIFECYCLE``. Kafka offsets are committed after that transaction
(shared/platform/consumer.py). Deadline timers fire in a background loop (handlers.run_timers).

HTTP: ``GET /health``, ``GET /metrics`` (shared/platform/kit.py), ``GET /v1/progress``
(api/progress.py), ``POST /v1/test/clock/advance`` with ``DISPATCH_TEST_CLOCK=true`` (api/testing.py).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.dispatch import db
from services.dispatch.api import progress, testing
from services.dispatch.clock import Clock
from services.dispatch.handlers import apply_batch, run_timers
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.settings import DispatchSettings
from services.dispatch.store import CaseBook
from shared.contract.topics import TOPIC_ACTIONS, TOPIC_REPORTED
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import load_all_tenants
from shared.platform.kit import ServiceKit
from shared.platform.tally import UPKEEP_SECONDS, upkeep

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """Build dispatch's app: the lifespan migrates, starts the consumer, the outbox relay and the timers."""
    settings = settings or DispatchSettings()
    kit = ServiceKit("dispatch", settings, migrations=MIGRATIONS, schema=db.SCHEMA)
    metrics = DispatchMetrics.register(kit.registry)
    taxonomy = load_taxonomy()
    book = CaseBook(load_all_tenants(settings.tenants_dir or None), taxonomy, Clock())
    relay = kit.outbox_relay(db.outbox, batch=settings.relay_batch, idle_seconds=settings.relay_idle_seconds,
                             poll_seconds=settings.relay_poll_seconds)
    kit.consume((TOPIC_REPORTED, TOPIC_ACTIONS), partial(apply_batch, book=book, metrics=metrics), db.processed_events,
                group_id=settings.group_id, after_batch=lambda outcome: relay.wake())
    kit.every(10, kit.sample_outbox, kit.lag_sampler(settings.group_id, (TOPIC_REPORTED,)))
    kit.every(UPKEEP_SECONDS, partial(upkeep, kit.engine, db.case_tally), name="dispatch tally upkeep")
    kit.background(partial(run_timers, kit.engine, book=book, metrics=metrics, wake=relay.wake,
                           interval_s=settings.timer_interval_seconds), "deadline-timers")
    app = kit.app(routers=[progress.router, *([testing.router] if settings.test_clock else [])])
    app.state.clock = book.clock
    return app
