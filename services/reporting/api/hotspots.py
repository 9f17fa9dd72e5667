"""``GET /v1/hotspots?tenant=…&start=…&end=…&limit=…&place_prefix=…``: hot issues (热点问题),
recent cases grouped by place and text similarity with a heat index (services/reporting/hotspots.py,
shared/domain/hotspots.py, docs/classifier.md §5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.reporting.dependencies import (
    Ctx,
    PlacePrefix,
    Tenant,
    scope_of,
    time_refusal,
)
from services.reporting.hotspots import query_hotspots
from shared.platform.auth import Principal
from shared.platform.authhttp import caller
from shared.platform.http import error_response

router = APIRouter()


@router.get("/v1/hotspots")
async def get_hotspots(
    tenant: Tenant,
    ctx: Ctx,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    place_prefix: PlacePrefix = None,
    who: Principal = Depends(caller),
):
    """The hottest ``limit`` issues among the cases reported in ``[start, end)`` (default: the
    tenant's ``text.hotspot_days`` up to now), within the caller's scope: place, heat, count,
    distinct reporters, first and last report, span, growth, main category, a masked sample text
    and the case ids."""
    place_prefix, department = scope_of(ctx.tenants, who, tenant, place_prefix)
    if refusal := time_refusal(start, end):
        return refusal
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=ctx.tenants[tenant].text.hotspot_days)
    if end <= start:
        return error_response(422, "empty_period", "end must be after start", field="end")
    async with ctx.engine.connect() as conn:
        answer = await query_hotspots(conn, tenant, start, end, limit=limit, place_prefix=place_prefix,
                                      department=department)
    config = ctx.tenants[tenant]
    for hot in answer["hotspots"]:
        hot["place_label"] = config.place_label(hot["place_code"])
        code = hot["category_code"]
        hot["category_label"] = ctx.taxonomy.category_label(code) if code else None
    return answer
