"""Gathering the figures of the whole work summary (:mod:`services.reporting.kpis.document`) from
the KPI and patrol queries, for a place or a department and a period (``GET /v1/summary/document``,
``gridcase summary``). Every figure is one the API gives for the same scope and period: no SQL
here, only calls of :func:`~services.reporting.kpis.queries.kpi_table` and
:func:`~services.reporting.stats.query_patrols`."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.filters import CaseFilter
from services.reporting.hotspots import query_hotspots
from services.reporting.kpis.catalogue import PLACE_LEVELS
from services.reporting.kpis.document import (
    HOTSPOTS_SHOWN,
    Part,
    SummaryFigures,
    previous_period,
)
from services.reporting.kpis.queries import kpi_table
from services.reporting.kpis.summary import (
    department_table,
    period_text,
    place_name,
    stated_summary,
)
from services.reporting.labels import department_short_name
from services.reporting.stats import query_patrols
from shared.domain.tenants import TenantConfig

#: Place levels in Chinese (the document's words for a place's level).
LEVEL_NAMES = {"city": "市", "district": "区县", "street": "街道", "community": "社区", "grid": "网格"}


async def document_figures(conn: AsyncConnection, flt: CaseFilter, *, tenant: TenantConfig, taxonomy,
                           now: datetime | None = None) -> SummaryFigures:
    """What the whole work summary of P is written from
    (:class:`services.reporting.kpis.document.SummaryFigures`), every figure from the queries the
    API answers with for the same scope and P: the KPI table by department (``GET /v1/summary``'s
    query: its total is the document's total row and its rows 三（三）), by category (三（二）), by
    the level under the place (一), by category over the previous period (三, 增减), and
    ``GET /v1/patrols`` over P (二; none for a department's summary: patrols are not per department),
    ``GET /v1/hotspots`` over P (三（四）, the top five hot issues, when there are any).

    ``flt`` must have both ends of P."""
    def run(f: CaseFilter, group_by: str | None, **kw):
        return kpi_table(conn, f, group_by, tenant=tenant, taxonomy=taxonomy, now=now, **kw)

    by_dept, raw = await department_table(conn, flt, tenant=tenant, taxonomy=taxonomy, now=now)
    stated = stated_summary(by_dept, raw, flt, tenant, taxonomy)
    by_cat, _ = await run(flt, "category")
    prev_start, prev_end = previous_period(flt.start, flt.end, flt.tz)
    prev_flt = dataclasses.replace(flt, start=prev_start, end=prev_end)
    prev_cat, _ = await run(prev_flt, "category")

    def category(code: str | None) -> str:
        c = taxonomy.category(code) if code and taxonomy is not None else None
        return c.name_zh if c is not None else (code or "（未分类）")

    children = tenant.children(flt.place_prefix) if flt.place_prefix else tenant.places_at("street")
    level = children[0].level if children else None
    if level in PLACE_LEVELS and all(len(c.code) == PLACE_LEVELS[level] for c in children):
        by_place, _ = await run(flt, level)
        rows = {r["key"]: r for r in by_place["rows"]}
        parts = [Part(c.name_zh, rows.get(c.code, {})) for c in children]
        parts_level = LEVEL_NAMES.get(level, level)
    elif flt.place_prefix:  # a grid, or places the KPI table cannot group: the place itself
        parts, parts_level = [Part(place_name(flt, tenant), by_dept["total"])], ""
    else:
        parts, parts_level = [], ""
    name = place_name(flt, tenant) or tenant.name_zh
    if flt.department:
        dept = department_short_name(flt.department, tenant, taxonomy)
        name = f"{place_name(flt, tenant)}{dept}"
    patrols = None if flt.department else await query_patrols(conn, flt.tenant, flt.start, flt.end, flt.place_prefix)
    hot = await query_hotspots(conn, flt.tenant, flt.start, flt.end, limit=HOTSPOTS_SHOWN,
                               place_prefix=flt.place_prefix, department=flt.department)
    hotspots = [h | {"place_label": tenant.place_label(h["place_code"])} for h in hot["hotspots"]]
    return SummaryFigures(
        tenant_name=tenant.name_zh or flt.tenant, place_name=name,
        period=period_text(flt.start, flt.end, flt.tz), previous_period=period_text(prev_start, prev_end, flt.tz),
        unit=stated["wording"]["unit"], paragraph=stated["paragraph"], total=by_dept["total"],
        previous=prev_cat["total"] if prev_cat["total"].get("accepted") or prev_cat["rows"] else {},
        parts_level=parts_level, parts=parts,
        by_category=[Part(category(r["key"]), r) for r in by_cat["rows"]],
        by_department=[Part(department_short_name(r["key"], tenant, taxonomy) if r["key"] else "（未派遣）", r)
                       for r in by_dept["rows"]],
        previous_by_category={category(r["key"]): r for r in prev_cat["rows"]},
        patrols=patrols, hotspots=hotspots)
