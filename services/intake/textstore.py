"""Intake's SQL for free text (issue 15; docs/classifier.md §3–§4): the possible duplicates of a
report among the tenant's stored cases, and how a stored case's category came about."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake import db
from shared.contract.events import CaseDispatched, CaseTransitioned
from shared.domain.duplicates import Report, bounding_box, possible_duplicates
from shared.platform.db import read_connection

#: Candidates read per report at most (the newest first): the rules rank them in Python, in the
#: request (about 20 µs each).
CANDIDATES_MAX = 100


def _float(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _coordinate(name: str) -> sa.ColumnElement:
    """A stored report's ``latitude`` or ``longitude`` as a float (NULL where it has none)."""
    field = db.reports.c.report[name]
    return sa.case((sa.func.jsonb_typeof(field) == "number", field.astext.cast(sa.Float)))


def _candidates_query(located: bool, lon_bounded: bool = True) -> sa.Select:
    """The candidates of a report (:func:`find_duplicates`), built once with bound parameters
    (``tenant``, ``category_code``, ``since``, ``until``, ``case_id``, ``place_code`` and, for a
    ``located`` report, its bounding box ``lat_min`` … ``lon_max``): built per request, the query
    cost ``POST /v1/reports`` more CPU than running it (issue 13).

    The category is the stored case's category now (``db.category_now``: the corrected one once
    recategorized, else the one reported), read through the index on it,
    ``ix_intake_reports_tenant_category_now_reported``: a case corrected into the category is read
    like one reported in it, a case corrected out of it is not read.

    Only stored reports that can be near are read: at the same place or, when the new report has
    coordinates, inside the box that holds every point within the radius
    (:func:`shared.domain.duplicates.bounding_box`). Reading every located report of the category
    instead let the newest :data:`CANDIDATES_MAX` of them, anywhere in the city, crowd out the
    ones at the place."""
    r, v, category = db.reports, db.case_view, db.category_now
    lat, lon = _coordinate("latitude"), _coordinate("longitude")
    where = r.c.place_code == sa.bindparam("place_code")
    if located:
        box = [lat.between(sa.bindparam("lat_min"), sa.bindparam("lat_max"))]
        if lon_bounded:
            box.append(lon.between(sa.bindparam("lon_min"), sa.bindparam("lon_max")))
        where = sa.or_(where, sa.and_(*box, lon.is_not(None)))
    return (
        sa.select(r.c.case_id, category.label("category_code"), r.c.place_code, r.c.reported_at,
                  r.c.report["description"].astext.label("text"), lat.label("latitude"),
                  lon.label("longitude"), v.c.state)
        .select_from(r.outerjoin(v, v.c.case_id == r.c.case_id))
        .where(r.c.tenant == sa.bindparam("tenant"),
               category == sa.bindparam("category_code"),
               r.c.reported_at >= sa.bindparam("since"),
               r.c.reported_at <= sa.bindparam("until"),
               r.c.case_id != sa.bindparam("case_id"),
               where)
        .order_by(r.c.reported_at.desc())
        .limit(CANDIDATES_MAX)
    )


_AT_PLACE = _candidates_query(located=False)
_NEAR = _candidates_query(located=True)
_NEAR_ANY_LONGITUDE = _candidates_query(located=True, lon_bounded=False)


async def find_duplicates(engine: AsyncEngine, tenant: str, new: Report, window: timedelta) -> list[dict]:
    """The possible duplicates of ``new`` (shared/domain/duplicates.py): stored cases of ``tenant``
    in the same category now (reported in it, or corrected into it since: docs/classifier.md §4),
    reported within ``window`` before it, at the same place or (both located) within the radius;
    ranked by the pure rules."""
    params = {"tenant": tenant, "category_code": new.category_code, "since": new.reported_at - window,
              "until": new.reported_at, "case_id": uuid.UUID(new.case_id), "place_code": new.place_code}
    query = _AT_PLACE
    if new.latitude is not None and new.longitude is not None:
        box = bounding_box(new.latitude, new.longitude)
        params.update(lat_min=box.lat_min, lat_max=box.lat_max)
        query = _NEAR_ANY_LONGITUDE
        if box.lon_min is not None:
            params.update(lon_min=box.lon_min, lon_max=box.lon_max)
            query = _NEAR
    async with read_connection(engine) as conn:
        rows = (await conn.execute(query, params)).all()
    states = {str(row.case_id): row.state for row in rows}
    stored = [Report(str(row.case_id), row.category_code, row.place_code, row.reported_at, row.text or "",
                     row.latitude, row.longitude) for row in rows]
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


def _keep_corrected() -> sa.Update:
    """Copy the case view's corrected category onto the stored reports of the cases ``case_ids``
    (an array parameter: one statement text whatever their number), where it differs."""
    r, v = db.reports, db.case_view
    case_ids = sa.bindparam("case_ids", type_=pg.ARRAY(pg.UUID(as_uuid=True)))
    return (r.update()
            .where(r.c.case_id == sa.any_(case_ids), v.c.case_id == r.c.case_id, v.c.category_seq.is_not(None),
                   r.c.category_corrected.is_distinct_from(v.c.category_code))
            .values(category_corrected=v.c.category_code))


_KEEP_CORRECTED = _keep_corrected()


async def keep_corrected_categories(conn: AsyncConnection, events) -> None:
    """After the case view has folded ``events`` (same transaction): the stored reports of the
    cases a recategorization among them names take the view's category now, so the probe above
    selects by it. The view's, not the event's: it keeps the newest recategorization whatever the
    order events arrive in. Recategorizations are rare; other batches run nothing."""
    ids = sorted({e.case_id for e in events
                  if isinstance(e, (CaseDispatched, CaseTransitioned)) and e.category_code is not None})
    if ids:
        await conn.execute(_KEEP_CORRECTED, {"case_ids": ids})
