"""``GET /v1/kpis?tenant&start&end&group_by``, ``/v1/kpis.csv``, ``/v1/kpis.xlsx``: the KPI
table of docs/domain.md §3(e) (services/reporting/kpis/) as JSON, CSV and Excel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.reporting.dependencies import (
    Ctx,
    End,
    FilterText,
    GroupBy,
    PlacePrefix,
    Start,
    Tenant,
    case_filter,
    scope_of,
)
from services.reporting.filters import CaseFilter
from services.reporting.kpis.catalogue import GROUP_BYS
from services.reporting.kpis.export import to_csv, to_xlsx
from services.reporting.kpis.queries import query_kpis
from shared.platform.auth import Principal
from shared.platform.authhttp import caller
from shared.platform.db import snapshot_connection
from shared.platform.http import error_response

router = APIRouter()


async def kpi_query(
    tenant: Tenant,
    ctx: Ctx,
    start: Start = None,
    end: End = None,
    group_by: GroupBy = None,
    place_prefix: PlacePrefix = None,
    category: FilterText = None,
    department: FilterText = None,
    who: Principal = Depends(caller),
):
    """The KPI table for the query parameters shared by /v1/kpis, .csv and .xlsx (or an error
    answer: 422 for naive or reversed times, an unknown ``group_by`` or too many sub-periods),
    within the caller's scope."""
    place_prefix, department = scope_of(ctx.tenants, who, tenant, place_prefix, department)
    flt = case_filter(ctx.tenants[tenant], tenant, start, end, place_prefix, category, department)
    if not isinstance(flt, CaseFilter):
        return flt
    if group_by is not None and group_by not in GROUP_BYS:
        return error_response(422, "invalid_group_by", f"group_by must be one of {', '.join(GROUP_BYS)}",
                              field="group_by")
    try:
        async with snapshot_connection(ctx.engine) as conn:
            return await query_kpis(conn, flt, group_by, tenant=ctx.tenants[tenant], taxonomy=ctx.taxonomy)
    except ValueError as exc:  # too many sub-periods
        return error_response(422, "invalid_period", str(exc), field="group_by")


@router.get("/v1/kpis")
async def kpi_rows(result: Any = Depends(kpi_query)):
    """KPIs of P = [start, end) (docs/domain.md §3(e)): ``{"columns", "total", "rows", …}``, labels
    zh-CN first with English beside (see services/reporting/kpis/queries.py query_kpis)."""
    return result


@router.get("/v1/kpis.csv")
async def kpi_csv(tenant: Tenant, result: Any = Depends(kpi_query)):
    """The KPI table as CSV (UTF-8 with BOM, Chinese and English headers, text cells that
    could start a formula prefixed with an apostrophe)."""
    if isinstance(result, Response):
        return result
    return Response(to_csv(result), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="kpis-{tenant}.csv"'})


@router.get("/v1/kpis.xlsx")
async def kpi_xlsx(tenant: Tenant, result: Any = Depends(kpi_query)):
    """The KPI table as an Excel workbook (openpyxl; same columns and sanitising as CSV)."""
    if isinstance(result, Response):
        return result
    return Response(to_xlsx(result),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="kpis-{tenant}.xlsx"'})
