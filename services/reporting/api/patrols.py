"""``GET /v1/patrols?tenant=…&start=…&end=…&place_prefix=…``: inspection rounds (巡查) and
points by kind (services/reporting/stats.py ``query_patrols``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends

from services.reporting.dependencies import Ctx, PlacePrefix, Tenant, scoped
from services.reporting.stats import query_patrols
from shared.platform.auth import Principal
from shared.platform.authhttp import caller

router = APIRouter()


@router.get("/v1/patrols")
async def patrol_stats(
    tenant: Tenant,
    ctx: Ctx,
    start: datetime | None = None,
    end: datetime | None = None,
    place_prefix: PlacePrefix = None,
    who: Principal = Depends(caller),
):
    """Inspection rounds (巡查) and points by kind in ``[start, end)`` (docs/seeds.md block B),
    within the caller's place scope."""
    place_prefix, _ = scoped(who, tenant, place_prefix)
    async with ctx.engine.connect() as conn:
        return await query_patrols(conn, tenant, start, end, place_prefix)
