"""``GET /v1/cases/overdue`` and ``GET /v1/cases/supervised``: case lists, a page at a time
(services/reporting/kpis/case_lists.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.reporting.dependencies import (
    Ctx,
    Limit,
    Offset,
    PlacePrefix,
    Tenant,
    scope_of,
)
from services.reporting.kpis.case_lists import (
    DEFAULT_PAGE,
    query_overdue,
    query_supervised,
)
from shared.platform.auth import Principal
from shared.platform.authhttp import caller

router = APIRouter()


@router.get("/v1/cases/overdue")
async def overdue_cases(
    tenant: Tenant,
    ctx: Ctx,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
    place_prefix: PlacePrefix = None,
    who: Principal = Depends(caller),
):
    """Open cases past their deadline now, most overdue first (query_overdue), within the
    caller's scope."""
    place_prefix, department = scope_of(ctx.tenants, who, tenant, place_prefix)
    async with ctx.engine.connect() as conn:
        return await query_overdue(conn, tenant, limit=limit, offset=offset, place_prefix=place_prefix,
                                   department=department, tz=ctx.tenants[tenant].tzinfo,
                                   tenant_config=ctx.tenants[tenant], taxonomy=ctx.taxonomy)


@router.get("/v1/cases/supervised")
async def supervised_cases(
    tenant: Tenant,
    ctx: Ctx,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
    include_closed: bool = False,
    place_prefix: PlacePrefix = None,
    who: Principal = Depends(caller),
):
    """Cases under 督办 (supervision level ≥ 1), highest level first (query_supervised), within
    the caller's scope."""
    place_prefix, department = scope_of(ctx.tenants, who, tenant, place_prefix)
    async with ctx.engine.connect() as conn:
        return await query_supervised(conn, tenant, limit=limit, offset=offset, include_closed=include_closed,
                                      department=department,
                                      place_prefix=place_prefix, tz=ctx.tenants[tenant].tzinfo,
                                      tenant_config=ctx.tenants[tenant], taxonomy=ctx.taxonomy)
