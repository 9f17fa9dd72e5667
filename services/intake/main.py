"""Intake: the HTTP front door. Takes reports and import files, stores them, publishes them.

Every accepted report is written to ``intake.reports`` together with its ``CaseReported`` event in
``intake.outbox``, in one transaction; the outbox relay publishes the event to Kafka afterwards, so
a 202 answer means the report is durable, whether Kafka is up or not. Routes: services/intake/api/
(one router per resource) and services/intake/open311/; ``GET /health`` and ``GET /metrics`` come
with the service kit (shared/platform/kit.py). Every ``/v1`` endpoint needs a credential and is
place-scoped (shared/platform/auth.py); reporter contact data is sealed at rest and erased
``anonymise_after_days`` after the case closed (services/intake/domain/privacy.py).
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.intake import db, handlers
from services.intake.api import actions, cases, imports, patrols, reports, security
from services.intake.classify import Classifiers
from services.intake.domain.privacy import keyring_of
from services.intake.metrics import IntakeMetrics
from services.intake.open311.router import install as install_open311
from services.intake.service import Intake
from services.intake.settings import IntakeSettings
from services.intake.workers import sweep_closed
from shared.domain.tenants import load_all_tenants
from shared.platform.http import BodyLimit, InFlightLimit
from shared.platform.kit import ServiceKit

MAX_REPORT_BYTES = 64 * 1024


def limit_report_bodies(app: FastAPI) -> None:
    """One report is a few KB; absurd bodies are refused before they are parsed (imports stream instead)."""
    app.add_middleware(BodyLimit, paths=("/v1/reports",), limit=MAX_REPORT_BYTES)


def shed_overload(settings: IntakeSettings):
    """Bound the requests in flight (503 + Retry-After beyond it, shared/platform/http.py InFlightLimit)."""
    def install(app: FastAPI) -> None:
        app.add_middleware(InFlightLimit, limit=settings.max_in_flight, retry_after_s=settings.retry_after_seconds)
    return install


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    """Build intake's FastAPI app; the lifespan migrates the schema and runs the relay and workers."""
    settings = settings or IntakeSettings()
    keyring = keyring_of(settings)  # a malformed key setting stops the start-up here
    kit = ServiceKit("intake", settings, migrations=db.MIGRATIONS, schema=db.SCHEMA)
    metrics = IntakeMetrics.on(kit.registry)
    # Intake does not wait for the broker: reports are accepted (202) and kept in the outbox while
    # Kafka is unreachable (the relay creates the topics before it connects), and the case view
    # starts in the background, retrying.
    relay = kit.outbox_relay(db.outbox, batch=settings.relay_batch, idle_seconds=settings.relay_idle_seconds,
                             poll_seconds=settings.relay_poll_seconds)
    kit.every(5, kit.sample_outbox)
    kit.consume(handlers.TOPICS, handlers.apply_lifecycle, db.processed_events, group_id=handlers.GROUP_ID,
                consumer=handlers.CONSUMER, background=True)
    kit.background(partial(sweep_closed, kit.engine, settings, metrics.anonymised, keyring), "anonymiser")
    app = kit.app(install=(limit_report_bodies, install_open311, shed_overload(settings)),
                  routers=[api.router for api in (reports, patrols, cases, actions, imports, security)])
    app.state.intake = Intake(settings, kit.engine, relay, load_all_tenants(settings.tenants_dir or None),
                              settings.pseudonym_key.encode(), metrics.accepted, metrics.rejected, keyring,
                              Classifiers.from_setting(settings.classifier_models))
    return app
