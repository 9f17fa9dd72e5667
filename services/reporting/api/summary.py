"""``GET /v1/summary``: the statistics paragraph of a work summary (工作总结)
(services/reporting/kpis/summary.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.reporting.dependencies import (
    Ctx,
    End,
    PlacePrefix,
    Start,
    Tenant,
    case_filter,
    scope_of,
)
from services.reporting.filters import CaseFilter
from services.reporting.kpis import summary
from shared.platform.auth import Principal
from shared.platform.authhttp import caller

router = APIRouter()


@router.get("/v1/summary")
async def work_summary(
    tenant: Tenant,
    ctx: Ctx,
    start: Start = None,
    end: End = None,
    place_prefix: PlacePrefix = None,
    department: str | None = None,
    who: Principal = Depends(caller),
):
    """The statistics paragraph of a work summary (工作总结) for P: ``{"paragraph", "figures",
    "wording", "transfer_departments"}`` (kpis.summary.work_summary), for a place and optionally
    one department, within the caller's scope."""
    place_prefix, department = scope_of(ctx.tenants, who, tenant, place_prefix, department)
    flt = case_filter(ctx.tenants[tenant], tenant, start, end, place_prefix, department=department)
    if not isinstance(flt, CaseFilter):
        return flt
    async with ctx.engine.connect() as conn:
        return await summary.work_summary(conn, flt, tenant=ctx.tenants[tenant], taxonomy=ctx.taxonomy)
