"""Reporting: consumes every case event, keeps per-case facts, serves statistics.

- Consumer group ``gridcase-reporting`` on ``case.reported`` and ``case.lifecycle``; each batch is
  folded into ``reporting.case_facts`` in one transaction (services/reporting/facts.py).
- ``GET /v1/stats?tenant=…&group_by=…&start=…&end=…&place_prefix=…&place_depth=…``.
- ``GET /v1/progress?tenant=…``: cases and events accounted so far (for waiting on a run).
- ``GET /health``, ``GET /metrics``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request

from services.reporting import db
from services.reporting.facts import apply_events
from services.reporting.stats import GROUPS, StatsFilter, label_for, query_stats
from shared.consumer import BatchProcessor
from shared.db import make_engine, run_migrations_async
from shared.events import TENANT_PATTERN
from shared.http import error_response, install_error_handlers
from shared.kafka import ensure_topics
from shared.settings import ReportingSettings
from shared.stream import DlqProducer, build_broker, subscribe_batches
from shared.taxonomy import load_taxonomy
from shared.telemetry import configure_logging, instrument_http, new_registry
from shared.tenants import load_all_tenants
from shared.topics import TOPIC_LIFECYCLE, TOPIC_REPORTED

log = logging.getLogger("gridcase.reporting")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    """Build reporting's app: the lifespan migrates and starts the consumer."""
    settings = settings or ReportingSettings()
    registry = new_registry()
    taxonomy = load_taxonomy()
    tenants = load_all_tenants(settings.tenants_dir or None)
    engine = make_engine(settings.database_url)
    dlq = DlqProducer(settings.kafka_bootstrap_servers, "gridcase-reporting-dlq")
    processor = BatchProcessor(
        "reporting", engine, db.processed_events, apply_events, dlq.get, max_attempts=settings.max_attempts
    )
    broker = build_broker(settings, registry, "reporting")
    subscribe_batches(
        broker,
        settings,
        topics=(TOPIC_REPORTED, TOPIC_LIFECYCLE),
        group_id=settings.group_id,
        processor=processor,
        registry=registry,
        metric_prefix="reporting",
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_logging(settings.log_level, "reporting")
        await run_migrations_async(settings.database_url, MIGRATIONS, db.SCHEMA)
        await ensure_topics(settings.kafka_bootstrap_servers)
        await broker.start()
        log.info("reporting ready (group %s)", settings.group_id)
        try:
            yield
        finally:
            await broker.stop()
            await dlq.stop()
            await engine.dispose()

    app = FastAPI(title="gridcase reporting", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    instrument_http(app, registry, "reporting")

    @app.get("/health")
    async def health() -> dict:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return {"status": "ok", "service": "reporting"}

    @app.get("/v1/stats")
    async def stats(
        tenant: Annotated[str, Query(pattern=TENANT_PATTERN)],
        group_by: Annotated[str | None, Query(description=f"one of {', '.join(GROUPS)}")] = None,
        start: Annotated[datetime | None, Query(description="period start (inclusive), ISO 8601 with zone")] = None,
        end: Annotated[datetime | None, Query(description="period end (exclusive), ISO 8601 with zone")] = None,
        place_prefix: Annotated[str | None, Query(max_length=24, pattern=r"^[0-9A-Za-z]+$")] = None,
        place_depth: Annotated[int | None, Query(ge=1, le=24)] = None,
        category: str | None = None,
        department: str | None = None,
    ):
        if tenant not in tenants:
            return error_response(404, "unknown_tenant", f"tenant {tenant!r} is not configured", field="tenant")
        if group_by is not None and group_by not in GROUPS:
            return error_response(422, "invalid_group_by", f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                return error_response(422, "naive_datetime", f"{name} needs a timezone, e.g. +08:00", field=name)
        flt = StatsFilter(tenant, start, end, place_prefix, category, department)
        async with engine.connect() as conn:
            result = await query_stats(conn, flt, group_by, place_depth)
        for group in result["groups"]:
            group["label"] = label_for(group_by, group["key"], tenants.get(tenant), taxonomy)
        return {"tenant": tenant, "group_by": group_by, "start": start, "end": end, **result}

    @app.get("/v1/progress")
    async def progress(tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None) -> dict:
        cf = db.case_facts
        q = sa.select(
            sa.func.count().filter(cf.c.reported_at.is_not(None)).label("reported_cases"),
            sa.func.coalesce(sa.func.sum(cf.c.event_count), 0).label("events_applied"),
        )
        if tenant:
            q = q.where(cf.c.tenant == tenant)
        async with engine.connect() as conn:
            row = (await conn.execute(q)).one()
        return {"tenant": tenant, "reported_cases": row.reported_cases, "events_applied": int(row.events_applied)}

    return app
