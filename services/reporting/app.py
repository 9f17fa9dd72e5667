"""Reporting: consumes every case event, keeps per-case facts, serves statistics.

- Consumer group ``gridcase-reporting`` on ``case.reported`` and ``case.lifecycle``; each batch is
  folded into ``reporting.case_facts`` in one transaction (services/reporting/facts.py).
- ``GET /v1/stats?tenant=…&group_by=…&start=…&end=…&place_prefix=…&place_depth=…``.
- ``GET /v1/progress?tenant=…``: cases and events accounted so far (for waiting on a run).
- ``GET /v1/kpis?tenant&start&end&group_by``, ``/v1/kpis.csv``, ``/v1/kpis.xlsx``: the KPIs of
  domain.md §3(e) (services/reporting/kpis/); ``GET /v1/cases/overdue``,
  ``GET /v1/cases/supervised``: case lists; ``GET /v1/summary``: the statistics paragraph of a
  work summary (工作总结).
- ``GET /health``, ``GET /metrics`` (no credential needed; no case data).

Every ``/v1`` endpoint and the dashboard's ``tenants.json`` need a credential
(shared/platform/authhttp.py) and answer within the caller's scope (shared/platform/auth.py): the tenant must be the
credential's, ``place_prefix`` is narrowed to the caller's place scope and department staff see
their department only. A tenant, place or department outside the scope answers 404, as an
unknown one does.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Annotated

import sqlalchemy as sa
from prometheus_client import Gauge
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response

from services.reporting import db
from services.reporting.dashboard import install as install_dashboard
from services.reporting.facts import apply_events
from services.reporting.filters import CaseFilter
from services.reporting.kpis.case_lists import DEFAULT_PAGE, MAX_PAGE, query_overdue, query_supervised
from services.reporting.kpis.catalogue import GROUP_BYS
from services.reporting.kpis.export import to_csv, to_xlsx
from services.reporting.kpis.queries import query_kpis
from services.reporting.kpis.summary import work_summary as summarise
from services.reporting.labels import label_for
from services.reporting.stats import GROUPS, empty_stats, query_stats
from shared.platform.auth import Principal
from shared.platform.authhttp import Authenticator, caller, not_found
from shared.platform.authstore import MIGRATIONS as AUTH_MIGRATIONS, SCHEMA as AUTH_SCHEMA
from shared.platform.consumer import BatchProcessor
from shared.platform.db import make_engine, run_migrations_async
from shared.contract.events import TENANT_PATTERN
from shared.platform.http import error_response, install_error_handlers
from shared.platform.kafka import ensure_topics
from shared.platform.lag import every, lag_gauge, measure_lag
from services.reporting.settings import ReportingSettings
from shared.platform.stream import DlqProducer, build_broker, subscribe_batches
from shared.domain.taxonomy import load_taxonomy
from shared.platform.telemetry import configure_logging, install_task_dump, instrument_http, new_registry
from shared.domain.tenants import load_all_tenants
from shared.contract.topics import TOPIC_LIFECYCLE, TOPIC_PATROLS, TOPIC_REPORTED

log = logging.getLogger("gridcase.reporting")

# Query parameters of the KPI endpoints (module level: FastAPI resolves the annotations by name).
PlacePrefix = Annotated[str | None, Query(max_length=24, pattern=r"^[0-9A-Za-z]+$")]
Start = Annotated[datetime | None, Query(description="period start (inclusive), ISO 8601 with zone")]
End = Annotated[datetime | None, Query(description="period end (exclusive), ISO 8601 with zone")]
GroupBy = Annotated[str | None, Query(description=f"one of {', '.join(GROUP_BYS)}")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def unknown_tenant(tenant: str) -> HTTPException:
    """404 ``unknown_tenant``: the answer for a tenant that is not configured and, alike, for one
    outside the caller's credential (nothing tells that it exists)."""
    return HTTPException(404, detail={"error": "unknown_tenant", "message": f"tenant {tenant!r} is not configured",
                                      "field": "tenant"})


def scoped(who: Principal, tenant: str, place_prefix: str | None, department: str | None = None) -> tuple[str | None, str | None]:
    """The ``(place_prefix, department)`` a query of ``who`` runs with: the asked prefix narrowed
    to the caller's place scope (:meth:`shared.platform.auth.Principal.narrow`), the department forced to
    a department staff member's own.

    Raises:
        HTTPException: 404 when the tenant, the asked places or the asked department are outside
            the caller's scope (issue 6 item 2: reads outside one's scope answer 404).
    """
    if not who.sees_tenant(tenant):
        raise unknown_tenant(tenant)
    prefix = who.narrow(place_prefix)
    if prefix is None:
        raise not_found("no such places in your scope", field="place_prefix")
    allowed, dept = who.department_filter(department)
    if not allowed:
        raise not_found("no such department in your scope", field="department")
    return prefix or None, dept


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    """Build reporting's app: the lifespan migrates and starts the consumer."""
    settings = settings or ReportingSettings()
    registry = new_registry()
    taxonomy = load_taxonomy()
    tenants = load_all_tenants(settings.tenants_dir or None)
    engine = make_engine(settings.database_url)
    lag = lag_gauge(registry, "reporting")
    open_cases = Gauge("reporting_cases_open", "Reported cases not closed", ["tenant"], registry=registry)
    overdue = Gauge("reporting_cases_overdue", "Open cases past their deadline", ["tenant"], registry=registry)

    async def sample() -> None:
        cf = db.case_facts
        q = sa.select(
            cf.c.tenant,
            sa.func.count().filter(sa.not_(cf.c.closed)).label("open"),
            sa.func.count().filter(sa.and_(sa.not_(cf.c.closed), cf.c.deadline < sa.func.now())).label("overdue"),
        ).where(cf.c.reported_at.is_not(None)).group_by(cf.c.tenant)
        async with engine.connect() as conn:
            for row in (await conn.execute(q)).all():
                open_cases.labels(row.tenant).set(row.open)
                overdue.labels(row.tenant).set(row.overdue)
        topics = (TOPIC_REPORTED, TOPIC_LIFECYCLE)
        for topic, value in (await measure_lag(settings.kafka_bootstrap_servers, settings.group_id, topics)).items():
            lag.labels(settings.group_id, topic).set(value)
    dlq = DlqProducer(settings.kafka_bootstrap_servers, "gridcase-reporting-dlq")
    processor = BatchProcessor(
        "reporting", engine, db.processed_events, apply_events, dlq.get, max_attempts=settings.max_attempts
    )
    broker = build_broker(settings, registry, "reporting")
    subscribe_batches(
        broker,
        settings,
        topics=(TOPIC_REPORTED, TOPIC_LIFECYCLE, TOPIC_PATROLS),
        group_id=settings.group_id,
        processor=processor,
        registry=registry,
        metric_prefix="reporting",
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_logging(settings.log_level, "reporting")
        install_task_dump(log)
        await run_migrations_async(settings.database_url, db.MIGRATIONS, db.SCHEMA)
        await run_migrations_async(settings.database_url, AUTH_MIGRATIONS, AUTH_SCHEMA)
        await ensure_topics(settings.kafka_bootstrap_servers)
        sampler = asyncio.create_task(every(15, sample, "reporting metrics sampler"))
        await broker.start()
        log.info("reporting ready (group %s)", settings.group_id)
        try:
            yield
        finally:
            sampler.cancel()
            await broker.stop()
            await dlq.stop()
            await engine.dispose()

    app = FastAPI(title="gridcase reporting", version="0.1.0", lifespan=lifespan)
    app.state.auth = Authenticator.for_service(engine, settings)
    install_error_handlers(app)
    install_dashboard(app, tenants)
    instrument_http(app, registry, "reporting")

    def scope_of(who: Principal, tenant: str, place_prefix: str | None,
                 department: str | None = None) -> tuple[str | None, str | None]:
        """:func:`scoped` for a configured tenant.

        Raises:
            HTTPException: 404 ``unknown_tenant`` for a tenant not configured; :func:`scoped`'s."""
        if tenant not in tenants:
            raise unknown_tenant(tenant)
        return scoped(who, tenant, place_prefix, department)

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
        who: Principal = Depends(caller),
    ):
        place_prefix, department = scope_of(who, tenant, place_prefix, department)
        if group_by is not None and group_by not in GROUPS:
            return error_response(422, "invalid_group_by", f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                return error_response(422, "naive_datetime", f"{name} needs a timezone, e.g. +08:00", field=name)
        if start is not None and end is not None and end <= start:  # nothing was reported in no time
            result = empty_stats()
        else:
            flt = CaseFilter(tenant, start, end, place_prefix, category, department)
            async with engine.connect() as conn:
                result = await query_stats(conn, flt, group_by, place_depth)
        for group in result["groups"]:
            group["label"] = label_for(group_by, group["key"], tenants.get(tenant), taxonomy)
        return {"tenant": tenant, "group_by": group_by, "start": start, "end": end, **result}

    @app.get("/v1/patrols")
    async def patrol_stats(
        tenant: Annotated[str, Query(pattern=TENANT_PATTERN)],
        start: datetime | None = None,
        end: datetime | None = None,
        place_prefix: Annotated[str | None, Query(max_length=24, pattern=r"^[0-9A-Za-z]+$")] = None,
        who: Principal = Depends(caller),
    ):
        """Inspection rounds (巡查) and points by kind in ``[start, end)`` (seed-figures.md B),
        within the caller's place scope."""
        place_prefix, _ = scoped(who, tenant, place_prefix)
        p = db.patrols
        conds = [p.c.tenant == tenant]
        if start:
            conds.append(p.c.started_at >= start)
        if end:
            conds.append(p.c.started_at < end)
        if place_prefix:
            conds.append(p.c.place_code.startswith(place_prefix, autoescape=True))
        q = sa.select(p.c.kind, sa.func.count().label("rounds"), sa.func.sum(p.c.points).label("points"),
                      sa.func.sum(p.c.findings).label("findings")).where(*conds).group_by(p.c.kind)
        async with engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        kinds = {r.kind: {"rounds": r.rounds, "points": int(r.points or 0), "findings": int(r.findings or 0)} for r in rows}
        return {
            "tenant": tenant,
            "rounds": sum(k["rounds"] for k in kinds.values()),
            "points": sum(k["points"] for k in kinds.values()),
            "by_kind": kinds,
        }

    # ---------------------------------------------------------------- KPIs (issue 4)

    def kpi_filter(tenant: str, start, end, place_prefix=None, category=None, department=None):
        """A CaseFilter for a configured ``tenant`` (:func:`scope_of` checked it), or the error
        answer (naive or reversed times 422)."""
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                return error_response(422, "naive_datetime", f"{name} needs a timezone, e.g. +08:00", field=name)
        if start is not None and end is not None and end <= start:
            return error_response(422, "empty_period", "end must be after start", field="end")
        return CaseFilter(tenant, start, end, place_prefix, category, department, tz=tenants[tenant].tzinfo)

    async def kpi_table(tenant, start, end, group_by, place_prefix, category, department):
        """query_kpis for the request, or the error answer (422 group_by/period)."""
        flt = kpi_filter(tenant, start, end, place_prefix, category, department)
        if not isinstance(flt, CaseFilter):
            return flt
        if group_by is not None and group_by not in GROUP_BYS:
            return error_response(422, "invalid_group_by", f"group_by must be one of {', '.join(GROUP_BYS)}",
                                  field="group_by")
        try:
            async with engine.connect() as conn:
                return await query_kpis(conn, flt, group_by, tenant=tenants[tenant], taxonomy=taxonomy)
        except ValueError as exc:  # too many sub-periods
            return error_response(422, "invalid_period", str(exc), field="group_by")

    async def kpi_query(
        tenant: Annotated[str, Query(pattern=TENANT_PATTERN)],
        start: Start = None,
        end: End = None,
        group_by: GroupBy = None,
        place_prefix: PlacePrefix = None,
        category: str | None = None,
        department: str | None = None,
        who: Principal = Depends(caller),
    ):
        """The KPI table for the query parameters shared by /v1/kpis, .csv and .xlsx (or an error
        answer), within the caller's scope."""
        place_prefix, department = scope_of(who, tenant, place_prefix, department)
        return await kpi_table(tenant, start, end, group_by, place_prefix, category, department)

    @app.get("/v1/kpis")
    async def kpi_rows(result: Any = Depends(kpi_query)):
        """KPIs of P = [start, end) (domain.md §3(e)): ``{"columns", "total", "rows", …}``, labels
        zh-CN first with English beside (see services/reporting/kpis/queries.py query_kpis)."""
        return result

    @app.get("/v1/kpis.csv")
    async def kpi_csv(tenant: Annotated[str, Query(pattern=TENANT_PATTERN)], result: Any = Depends(kpi_query)):
        """The KPI table as CSV (UTF-8 with BOM, Chinese and English headers, text cells that
        could start a formula prefixed with an apostrophe)."""
        if isinstance(result, Response):
            return result
        return Response(to_csv(result), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="kpis-{tenant}.csv"'})

    @app.get("/v1/kpis.xlsx")
    async def kpi_xlsx(tenant: Annotated[str, Query(pattern=TENANT_PATTERN)], result: Any = Depends(kpi_query)):
        """The KPI table as an Excel workbook (openpyxl; same columns and sanitising as CSV)."""
        if isinstance(result, Response):
            return result
        return Response(to_xlsx(result),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="kpis-{tenant}.xlsx"'})

    @app.get("/v1/cases/overdue")
    async def overdue_cases(
        tenant: Annotated[str, Query(pattern=TENANT_PATTERN)],
        limit: Limit = DEFAULT_PAGE,
        offset: Offset = 0,
        place_prefix: PlacePrefix = None,
        who: Principal = Depends(caller),
    ):
        """Open cases past their deadline now, most overdue first (query_overdue), within the
        caller's scope."""
        place_prefix, department = scope_of(who, tenant, place_prefix)
        async with engine.connect() as conn:
            return await query_overdue(conn, tenant, limit=limit, offset=offset, place_prefix=place_prefix,
                                       department=department,
                                            tz=tenants[tenant].tzinfo, tenant_config=tenants[tenant], taxonomy=taxonomy)

    @app.get("/v1/cases/supervised")
    async def supervised_cases(
        tenant: Annotated[str, Query(pattern=TENANT_PATTERN)],
        limit: Limit = DEFAULT_PAGE,
        offset: Offset = 0,
        include_closed: bool = False,
        place_prefix: PlacePrefix = None,
        who: Principal = Depends(caller),
    ):
        """Cases under 督办 (supervision level ≥ 1), highest level first (query_supervised),
        within the caller's scope."""
        place_prefix, department = scope_of(who, tenant, place_prefix)
        async with engine.connect() as conn:
            return await query_supervised(conn, tenant, limit=limit, offset=offset, include_closed=include_closed,
                                               department=department,
                                               place_prefix=place_prefix, tz=tenants[tenant].tzinfo,
                                               tenant_config=tenants[tenant], taxonomy=taxonomy)

    @app.get("/v1/summary")
    async def work_summary(
        tenant: Annotated[str, Query(pattern=TENANT_PATTERN)],
        start: Start = None,
        end: End = None,
        place_prefix: PlacePrefix = None,
        department: str | None = None,
        who: Principal = Depends(caller),
    ):
        """The statistics paragraph of a work summary (工作总结) for P: ``{"paragraph", "figures",
        "wording", "transfer_departments"}`` (kpis.summary.work_summary), for a place and optionally one
        department, within the caller's scope."""
        place_prefix, department = scope_of(who, tenant, place_prefix, department)
        flt = kpi_filter(tenant, start, end, place_prefix, department=department)
        if not isinstance(flt, CaseFilter):
            return flt
        async with engine.connect() as conn:
            return await summarise(conn, flt, tenant=tenants[tenant], taxonomy=taxonomy)

    @app.get("/v1/progress")
    async def progress(tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
                       who: Principal = Depends(caller)) -> dict:
        """Cases and events accounted so far (for waiting on a run): the caller's tenant and
        scope; without ``tenant`` every tenant, for admins bound to every tenant only."""
        if tenant is None and who.tenant != "*":
            tenant = who.tenant
        place_prefix, department = scoped(who, tenant, None) if tenant else (None, None)
        cf = db.case_facts
        q = sa.select(
            sa.func.count().filter(cf.c.reported_at.is_not(None)).label("reported_cases"),
            sa.func.coalesce(sa.func.sum(cf.c.event_count), 0).label("events_applied"),
        )
        if tenant:
            q = q.where(cf.c.tenant == tenant)
        if place_prefix:
            q = q.where(cf.c.place_code.startswith(place_prefix, autoescape=True))
        if department:
            q = q.where(cf.c.department == department)
        async with engine.connect() as conn:
            row = (await conn.execute(q)).one()
        return {"tenant": tenant, "reported_cases": row.reported_cases, "events_applied": int(row.events_applied)}

    return app
