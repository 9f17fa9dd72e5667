"""Intake: the HTTP front door. Takes reports and import files, stores them, publishes them.

Every accepted report is written to ``intake.reports`` together with its ``CaseReported`` event in
``intake.outbox``, in one transaction; the outbox relay publishes the event to Kafka afterwards. So
a 202 answer means the report is durable, whether Kafka is up or not.

Endpoints (one router each in services/intake/api/): ``POST /v1/reports``, ``POST /v1/imports``,
``GET /v1/cases/{id}``, ``POST /v1/cases/{id}/actions``, ``GET /v1/cases/{id}/audit``,
``POST /v1/patrols``; Open311 GeoReport v2 under ``/open311/v2/`` (services/intake/open311/);
``GET /health``, ``GET /metrics`` (no credential needed; no case data).

Every ``/v1`` endpoint needs a credential (shared/platform/authhttp.py) and is place-scoped
(shared/platform/auth.py): a read outside the caller's scope is 404, a write 403; requests are rate
limited per credential (429 + ``Retry-After``). Reporter contact data is sealed with AES-256-GCM
(shared/platform/crypto.py) and erased ``anonymise_after_days`` after the case closed.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.intake import db
from services.intake.api import actions, cases, health, imports, patrols, reports
from services.intake.domain.privacy import keyring_of
from services.intake.metrics import IntakeMetrics
from services.intake.open311.router import install as install_open311
from services.intake.service import Intake
from services.intake.settings import IntakeSettings
from services.intake.workers import CaseViewConsumer, sample_backlog, sweep_closed
from shared.domain.tenants import load_all_tenants
from shared.platform.authhttp import Authenticator
from shared.platform.authstore import MIGRATIONS as AUTH_MIGRATIONS, SCHEMA as AUTH_SCHEMA
from shared.platform.db import make_engine, run_migrations_async
from shared.platform.http import BodyLimit, install_error_handlers
from shared.platform.kafka import ensure_topics, make_producer
from shared.platform.outbox import OutboxRelay
from shared.platform.telemetry import configure_logging, install_task_dump, instrument_http, new_registry

log = logging.getLogger("gridcase.intake")
MAX_REPORT_BYTES = 64 * 1024


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    """Build intake's FastAPI app; the lifespan migrates the schema and runs the outbox relay."""
    settings = settings or IntakeSettings()
    registry = new_registry()
    metrics = IntakeMetrics.on(registry)
    keyring = keyring_of(settings)  # a malformed key setting stops the start-up here

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_logging(settings.log_level, "intake")
        install_task_dump(log)
        await run_migrations_async(settings.database_url, db.MIGRATIONS, db.SCHEMA)
        await run_migrations_async(settings.database_url, AUTH_MIGRATIONS, AUTH_SCHEMA)
        engine = make_engine(settings.database_url)
        app.state.auth = Authenticator.for_service(engine, settings)
        relay = OutboxRelay(
            engine,
            db.outbox,
            lambda: make_producer(settings.kafka_bootstrap_servers, "gridcase-intake-relay"),
            batch=settings.relay_batch,
            idle_seconds=settings.relay_idle_seconds,
            on_published=metrics.published.inc,
            on_error=lambda exc: metrics.relay_errors.inc(),
            prepare=lambda: ensure_topics(settings.kafka_bootstrap_servers, timeout_s=15),
        )
        tenants = load_all_tenants(settings.tenants_dir or None)
        secret = settings.pseudonym_key.encode()
        app.state.intake = Intake(settings, engine, relay, tenants, secret, metrics.accepted, metrics.rejected, keyring)

        # The relay creates the topics before it connects (prepare), but intake does not wait for
        # the broker: reports are accepted (202) and kept in the outbox while Kafka is unreachable.
        view = CaseViewConsumer(settings, engine, registry)
        tasks = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(sample_backlog(relay, metrics.pending)),
            asyncio.create_task(view.run(), name="case-view"),
            asyncio.create_task(sweep_closed(engine, settings, metrics.anonymised), name="anonymiser"),
        ]
        log.info("intake ready on %s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            await relay.stop()
            await view.stop()
            for task in tasks[1:]:
                task.cancel()
            await asyncio.wait(tasks, timeout=20)
            await engine.dispose()

    app = FastAPI(title="gridcase intake", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    # One report is a few KB; absurd bodies are refused before they are parsed (imports stream instead).
    app.add_middleware(BodyLimit, paths=("/v1/reports",), limit=MAX_REPORT_BYTES)
    install_open311(app)
    instrument_http(app, registry, "intake")
    for api in (health, reports, patrols, cases, actions, imports):
        app.include_router(api.router)
    return app
