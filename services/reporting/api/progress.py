"""``GET /v1/progress?tenant=…``: cases and events accounted so far (for waiting on a run;
services/reporting/stats.py ``query_progress``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.reporting.dependencies import Ctx, scoped
from services.reporting.stats import query_progress
from shared.contract.events import TENANT_PATTERN
from shared.platform.auth import Principal
from shared.platform.authhttp import caller

router = APIRouter()


@router.get("/v1/progress")
async def progress(ctx: Ctx, tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
                   who: Principal = Depends(caller)) -> dict:
    """Cases and events accounted so far (for waiting on a run): the caller's tenant and
    scope; without ``tenant`` every tenant, for admins bound to every tenant only."""
    if tenant is None and who.tenant != "*":
        tenant = who.tenant
    place_prefix, department = scoped(who, tenant, None) if tenant else (None, None)
    return await query_progress(ctx.engine, tenant, place_prefix, department)
