"""Intake's SQL for free text (issue 15; docs/classifier.md §3–§4): the possible duplicates of a
report among the tenant's stored cases, and how a stored case's category came about."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import db
from shared.domain.duplicates import Report, possible_duplicates
from shared.platform.db import read_connection

#: Candidates read per report at most (the newest first): the rules rank them in Python, in the
#: request (about 10 µs each).
CANDIDATES_MAX = 100


def _float(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _candidates_query() -> sa.Select:
    """The candidates of a report (:func:`find_duplicates`), built once with bound parameters
    (``tenant``, ``category_code``, ``since``, ``until``, ``case_id``, ``place_code``): built per
    request, the query cost ``POST /v1/reports`` more CPU than running it (issue 13)."""
    r, v = db.reports, db.case_view
    category = sa.func.coalesce(sa.case((v.c.category_seq.is_not(None), v.c.category_code)), r.c.category_code)
    return (
        sa.select(r.c.case_id, category.label("category_code"), r.c.place_code, r.c.reported_at,
                  r.c.report["description"].astext.label("text"), r.c.report["latitude"].astext.label("lat"),
                  r.c.report["longitude"].astext.label("lon"), v.c.state)
        .select_from(r.outerjoin(v, v.c.case_id == r.c.case_id))
        .where(r.c.tenant == sa.bindparam("tenant"),
               r.c.category_code == sa.bindparam("category_code"),
               r.c.reported_at >= sa.bindparam("since"),
               r.c.reported_at <= sa.bindparam("until"),
               r.c.case_id != sa.bindparam("case_id"),
               sa.or_(r.c.place_code == sa.bindparam("place_code"), r.c.report["latitude"].astext.is_not(None)))
        .order_by(r.c.reported_at.desc())
        .limit(CANDIDATES_MAX)
    )


_CANDIDATES = _candidates_query()


async def find_duplicates(engine: AsyncEngine, tenant: str, new: Report, window: timedelta) -> list[dict]:
    """The possible duplicates of ``new`` (shared/domain/duplicates.py): stored cases of ``tenant``
    with the same category (as reported, or as corrected since), reported within ``window`` before
    it, at the same place or carrying coordinates; ranked by the pure rules."""
    async with read_connection(engine) as conn:
        rows = (await conn.execute(_CANDIDATES, {
            "tenant": tenant, "category_code": new.category_code, "since": new.reported_at - window,
            "until": new.reported_at, "case_id": uuid.UUID(new.case_id), "place_code": new.place_code})).all()
    states = {str(row.case_id): row.state for row in rows}
    stored = [Report(str(row.case_id), row.category_code, row.place_code, row.reported_at, row.text or "",
                     _float(row.lat), _float(row.lon)) for row in rows]
    return [{"case_id": case.case_id, "similarity": score, "reported_at": case.reported_at.isoformat(),
             "place_code": case.place_code, "state": states[case.case_id] or "reported"}
            for case, score in possible_duplicates(new, stored, window)]


async def duplicates_of_case(engine: AsyncEngine, case_id: uuid.UUID, category_code: str,
                             window: timedelta) -> list[dict]:
    """The possible duplicates of a stored case (its category now, its place, coordinates and
    masked text as stored), for the case view."""
    r = db.reports
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(r.c.tenant, r.c.place_code, r.c.reported_at, r.c.report)
                                  .where(r.c.case_id == case_id))).one_or_none()
    if row is None:
        return []
    report = row.report
    new = Report(str(case_id), category_code, row.place_code, row.reported_at, report.get("description") or "",
                 _float(report.get("latitude")), _float(report.get("longitude")))
    return await find_duplicates(engine, row.tenant, new, window)
