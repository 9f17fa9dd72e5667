"""``GET /v1/progress``: how far dispatch got (cases and the lifecycle events derived for them),
for waiting on a run."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from services.dispatch import store
from shared.platform.auth import ADMIN, CITY_OPS, Principal
from shared.platform.authhttp import caller, forbidden, not_found
from shared.platform.kit import engine_of

router = APIRouter()


@router.get("/v1/progress")
async def progress(tenant: str | None = Query(None, max_length=100, pattern=r"^[^\x00]+$"),
                   who: Principal = Depends(caller),
                   engine: AsyncEngine = Depends(engine_of)) -> dict:
    """Cases dispatched so far and lifecycle events they produced (for waiting on a run).
    Operational: city ops and admins of the tenant (403 for other roles, 404 for a tenant
    outside the credential; without ``tenant``, the credential's tenant)."""
    if who.role not in (CITY_OPS, ADMIN):
        raise forbidden("dispatch progress is for the operations centre (city_ops, admin)", role=who.role)
    if tenant is None and who.tenant != "*":
        tenant = who.tenant
    if tenant is not None and not who.sees_tenant(tenant):
        raise not_found(f"tenant {tenant!r} is not configured", field="tenant")
    cases, events = await store.progress(engine, tenant)
    return {"tenant": tenant, "cases": cases, "events_emitted": events}
