"""Reporting: consumes every case event, keeps per-case facts, serves statistics.

- Consumer group ``gridcase-reporting`` on ``case.reported``, ``case.lifecycle`` and
  ``patrol.recorded``; each batch is folded into ``reporting.case_facts`` in one transaction
  (services/reporting/handlers.py).
- HTTP: one router per resource in services/reporting/api/ (``/v1/stats``, ``/v1/patrols``,
  ``/v1/kpis`` and its ``.csv`` / ``.xlsx``, ``/v1/cases/overdue``, ``/v1/cases/supervised``,
  ``/v1/summary``, ``/v1/progress``), the dashboard (services/reporting/dashboard.py);
  ``GET /health``, ``GET /metrics`` (no credential needed; no case data).
- Metrics: services/reporting/metrics.py and the consumer lag, sampled every 15 s.

The wiring (engine, broker, dead letters, lifespan) is the service kit's (shared/platform/kit.py).
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.reporting import db, erasure
from services.reporting.api import (
    cases,
    hotspots,
    kpis,
    patrols,
    progress,
    stats,
    summary,
)
from services.reporting.dashboard import install as install_dashboard
from services.reporting.handlers import apply_events, zones_of
from services.reporting.metrics import CaseGauges
from services.reporting.settings import ReportingSettings
from shared.contract.topics import TOPIC_LIFECYCLE, TOPIC_PATROLS, TOPIC_REPORTED
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import load_all_tenants
from shared.platform.kit import ServiceKit
from shared.platform.tally import UPKEEP_SECONDS, upkeep

ROUTERS = (stats.router, patrols.router, kpis.router, cases.router, summary.router, progress.router, hotspots.router)


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    """Build reporting's app: the lifespan migrates and starts the consumer and the sampler."""
    settings = settings or ReportingSettings()
    kit = ServiceKit("reporting", settings, migrations=db.MIGRATIONS, schema=db.SCHEMA)
    taxonomy = load_taxonomy()
    tenants = load_all_tenants(settings.tenants_dir or None)
    gauges = CaseGauges.register(kit.registry)
    kit.consume((TOPIC_REPORTED, TOPIC_LIFECYCLE, TOPIC_PATROLS), partial(apply_events, tz_of=zones_of(tenants)),
                db.processed_events,
                group_id=settings.group_id)
    kit.every(15, partial(gauges.sample, kit.engine),
              kit.lag_sampler(settings.group_id, (TOPIC_REPORTED, TOPIC_LIFECYCLE)))
    kit.every(UPKEEP_SECONDS, partial(upkeep, kit.engine, db.case_tally), name="reporting tally upkeep")
    kit.background(partial(erasure.sweep, kit.engine, settings.anonymise_after_days,
                           settings.anonymise_interval_seconds), "reporter-reference sweep")
    app = kit.app(install=(partial(install_dashboard, tenants=tenants, opening=settings.dashboard_opening),), routers=ROUTERS)
    app.state.tenants = tenants
    app.state.taxonomy = taxonomy
    return app
