"""``GET /v1/summary``: the statistics paragraph of a work summary (工作总结)
(services/reporting/kpis/summary.py); ``GET /v1/summary/document``: the whole work summary of a
place or department for a period, as Markdown or .docx (services/reporting/kpis/document.py,
docs/summary.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BeforeValidator

from services.reporting.dependencies import (
    Ctx,
    End,
    FilterText,
    PlacePrefix,
    Start,
    Tenant,
    case_filter,
    iso_8601_only,
    scope_of,
)
from services.reporting.filters import CaseFilter
from services.reporting.kpis import summary
from services.reporting.kpis.document import (
    build_document,
    previous_period,
    to_markdown,
)
from services.reporting.kpis.document_query import document_figures
from services.reporting.kpis.docx import DOCX_MEDIA_TYPE, to_docx
from shared.platform.auth import Principal
from shared.platform.authhttp import caller, not_found
from shared.platform.db import snapshot_connection
from shared.platform.http import error_response

router = APIRouter()


@router.get("/v1/summary")
async def work_summary(
    tenant: Tenant,
    ctx: Ctx,
    start: Start = None,
    end: End = None,
    place_prefix: PlacePrefix = None,
    department: FilterText = None,
    who: Principal = Depends(caller),
):
    """The statistics paragraph of a work summary (工作总结) for P: ``{"paragraph", "figures",
    "wording", "transfer_departments"}`` (kpis.summary.work_summary), for a place and optionally
    one department, within the caller's scope."""
    place_prefix, department = scope_of(ctx.tenants, who, tenant, place_prefix, department)
    flt = case_filter(ctx.tenants[tenant], tenant, start, end, place_prefix, department=department)
    if not isinstance(flt, CaseFilter):
        return flt
    async with snapshot_connection(ctx.engine) as conn:
        return await summary.work_summary(conn, flt, tenant=ctx.tenants[tenant], taxonomy=ctx.taxonomy)


#: Both ends of P, required for a document (the period is in its title and compared with the one before).
PeriodStart = Annotated[datetime, BeforeValidator(iso_8601_only),
                        Query(description="period start (inclusive), ISO 8601 with zone")]
PeriodEnd = Annotated[datetime, BeforeValidator(iso_8601_only),
                      Query(description="period end (exclusive), ISO 8601 with zone")]


@router.get("/v1/summary/document", response_model=None)
async def work_summary_document(
    tenant: Tenant,
    ctx: Ctx,
    start: PeriodStart,
    end: PeriodEnd,
    place: PlacePrefix = None,
    department: FilterText = None,
    format: Literal["md", "docx"] = "md",  # noqa: A002 (the query parameter's name)
    who: Principal = Depends(caller),
) -> Response:
    """The whole work summary (工作总结) of ``place`` (a street, community or grid of the tenant
    file; the whole tenant when omitted) and optionally one ``department`` for P = [start, end),
    in Chinese: Markdown (``text/markdown``) or a Word file (``format=docx``), within the caller's
    scope (a community's credential gets its own community's document only; 404 outside it).
    Every figure is the KPI API's for the same scope and P (docs/summary.md)."""
    place, department = scope_of(ctx.tenants, who, tenant, place, department)
    config = ctx.tenants[tenant]
    if place and config.place(place) is None:
        raise not_found(f"place {place!r} is not in the tenant file", field="place")
    flt = case_filter(config, tenant, start, end, place, department=department)
    if not isinstance(flt, CaseFilter):
        return flt
    try:  # the document compares P with the period before it, which must be a representable time
        previous_period(start, end, config.tzinfo)
    except (OverflowError, ValueError):
        return error_response(422, "period_out_of_range", "the period before start..end is outside the calendar",
                              field="start")
    async with snapshot_connection(ctx.engine) as conn:
        figures = await document_figures(conn, flt, tenant=config, taxonomy=ctx.taxonomy)
    doc = build_document(figures)
    name = f"gridcase-summary-{tenant}-{place or 'all'}-{start.date()}-{end.date()}"
    if format == "docx":
        return Response(to_docx(doc), media_type=DOCX_MEDIA_TYPE,
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}.docx"})
    return Response(to_markdown(doc), media_type="text/markdown; charset=utf-8",
                    headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}.md"})
