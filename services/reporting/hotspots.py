"""Reporting's SQL for hot issues (issue 15; docs/classifier.md §5): the masked texts of the
cases reported in a period (``reporting.case_texts``), grouped and ranked by
shared/domain/hotspots.py."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import case_facts, case_texts
from shared.domain.hotspots import CaseText, hotspots

#: Cases read per query at most (the newest first): a month of a large city's texts.
CASES_MAX = 20_000


async def query_hotspots(conn: AsyncConnection, tenant: str, start: datetime, end: datetime, *, limit: int = 10,
                         place_prefix: str | None = None, department: str | None = None) -> dict:
    """``{"tenant", "start", "end", "cases", "hotspots": [...]}`` (shared/domain/hotspots.py
    ``Hotspot.as_dict``) for the cases of ``tenant`` reported in ``[start, end)`` under
    ``place_prefix`` (and, for department staff, dispatched to ``department``)."""
    t = case_texts
    query = (sa.select(t.c.case_id, t.c.place_code, t.c.category_code, t.c.reported_at, t.c.description,
                       t.c.reporter_key)
             .where(t.c.tenant == tenant, t.c.reported_at >= start, t.c.reported_at < end)
             .order_by(t.c.reported_at.desc()).limit(CASES_MAX))
    if place_prefix:
        query = query.where(t.c.place_code.startswith(place_prefix, autoescape=True))
    if department:
        query = query.join(case_facts, case_facts.c.case_id == t.c.case_id).where(case_facts.c.department == department)
    rows = (await conn.execute(query)).all()
    cases = [CaseText(str(r.case_id), r.place_code, r.category_code, r.reported_at, r.description, r.reporter_key)
             for r in rows]
    found = hotspots(cases, start, end, limit=limit)
    return {"tenant": tenant, "start": start.isoformat(), "end": end.isoformat(), "cases": len(cases),
            "hotspots": [h.as_dict() for h in found]}
