"""``GET /v1/patrols?tenant=…&start=…&end=…&place_prefix=…``: inspection rounds (巡查) and
points by kind (services/reporting/stats.py ``query_patrols``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.reporting.dependencies import (
    Ctx,
    End,
    PlacePrefix,
    Start,
    Tenant,
    scope_of,
    time_refusal,
)
from services.reporting.stats import query_patrols
from shared.platform.auth import Principal
from shared.platform.authhttp import caller

router = APIRouter()


@router.get("/v1/patrols")
async def patrol_stats(
    tenant: Tenant,
    ctx: Ctx,
    start: Start = None,
    end: End = None,
    place_prefix: PlacePrefix = None,
    who: Principal = Depends(caller),
):
    """Inspection rounds (巡查) and points by kind in ``[start, end)`` (docs/seeds.md block B),
    within the caller's place scope; 404 ``unknown_tenant`` for a tenant not configured, 422 for a
    time without zone."""
    place_prefix, _ = scope_of(ctx.tenants, who, tenant, place_prefix)
    error = time_refusal(start, end)
    if error is not None:
        return error
    async with ctx.engine.connect() as conn:
        return await query_patrols(conn, tenant, start, end, place_prefix)
