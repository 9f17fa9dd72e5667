"""``GET /v1/stats?tenant=…&group_by=…&start=…&end=…&place_prefix=…&place_depth=…``: counts,
shares and time to close of the cases reported in a period, grouped (services/reporting/stats.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.reporting.dependencies import (
    Ctx,
    End,
    FilterText,
    PlacePrefix,
    Start,
    Tenant,
    empty_period,
    scope_of,
    time_refusal,
)
from services.reporting.filters import CaseFilter
from services.reporting.labels import label_for
from services.reporting.stats import GROUPS, empty_stats, query_stats
from shared.platform.auth import Principal
from shared.platform.authhttp import caller
from shared.platform.db import snapshot_connection
from shared.platform.http import error_response

router = APIRouter()


@router.get("/v1/stats")
async def stats(
    tenant: Tenant,
    ctx: Ctx,
    group_by: Annotated[str | None, Query(description=f"one of {', '.join(GROUPS)}")] = None,
    start: Start = None,
    end: End = None,
    place_prefix: PlacePrefix = None,
    place_depth: Annotated[int | None, Query(ge=1, le=24)] = None,
    category: FilterText = None,
    department: FilterText = None,
    who: Principal = Depends(caller),
):
    """The statistics of the caller's scope; 422 for an unknown ``group_by`` or a naive time."""
    place_prefix, department = scope_of(ctx.tenants, who, tenant, place_prefix, department)
    if group_by is not None and group_by not in GROUPS:
        return error_response(422, "invalid_group_by", f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
    error = time_refusal(start, end)
    if error is not None:
        return error
    if empty_period(start, end):  # nothing was reported in no time
        result = empty_stats()
    else:
        flt = CaseFilter(tenant, start, end, place_prefix, category, department)
        async with snapshot_connection(ctx.engine) as conn:
            result = await query_stats(conn, flt, group_by, place_depth)
    for group in result["groups"]:
        group["label"] = label_for(group_by, group["key"], ctx.tenants.get(tenant), ctx.taxonomy)
    return {"tenant": tenant, "group_by": group_by, "start": start, "end": end, **result}
