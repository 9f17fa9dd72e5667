"""GET Service Requests: its filters (spec: GET Service Requests, plus the ``page``/``page_size``
extension) and the SQL that reads requests — ``intake.reports`` joined with the case view,
restricted to what the caller may see."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from services.intake import db
from services.intake.caseview import closed_now_clause
from services.intake.open311.wire import bad_request, param, parse_w3c
from shared.domain.casefacts import ENDING_STATES
from shared.platform.auth import Principal

DEFAULT_SPAN = timedelta(days=90)
MAX_ROWS = 1000


@dataclass
class RequestQuery:
    """Parsed GET Service Requests filters (spec: GET Service Requests, plus the ``page`` /
    ``page_size`` extension, Extensions.md / open311.github.io#16)."""

    ids: list[uuid.UUID] | None = None
    service_codes: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: set[str] | None = None
    page: int = 1
    page_size: int = MAX_ROWS


def parse_request_query(params, tz, now: datetime) -> RequestQuery:
    """Parse the GET Service Requests arguments.

    - ``service_request_id``: comma list (at most 1000), overrides every other filter; ids that
      are not case ids match nothing.
    - ``service_code``: comma list.
    - ``start_date`` / ``end_date``: W3C datetimes with a timezone (:func:`parse_w3c`); the span
      may not exceed 90 days; without them the last 90 days (only one given: 90 days from / up
      to it).
    - ``status``: comma list of ``open``, ``closed``.
    - ``page`` (from 1) / ``page_size`` (1..1000, default 1000).

    Raises:
        Open311Error: 400 naming the bad argument.
    """
    query = RequestQuery()
    for name in ("page", "page_size"):
        raw = param(params, name)
        if raw is not None:
            if not raw.isdigit() or int(raw) < 1 or (name == "page_size" and int(raw) > MAX_ROWS) or len(raw) > 9:
                raise bad_request(f"{name} must be a whole number >= 1" + (f" and <= {MAX_ROWS}" if name == "page_size" else ""))
            setattr(query, name, int(raw))
    raw_ids = param(params, "service_request_id")
    if raw_ids is not None:
        parts = [p.strip() for p in raw_ids.split(",") if p.strip()]
        if len(parts) > MAX_ROWS:
            raise bad_request(f"service_request_id may list at most {MAX_ROWS} ids")
        ids = []
        for part in parts:
            try:
                ids.append(uuid.UUID(part))
            except ValueError:
                continue
        query.ids = ids
        return query
    codes = param(params, "service_code")
    if codes is not None:
        query.service_codes = [c.strip() for c in codes.split(",") if c.strip()][:MAX_ROWS]
    status = param(params, "status")
    if status is not None:
        statuses = {s.strip().lower() for s in status.split(",") if s.strip()}
        if not statuses or not statuses <= {"open", "closed"}:
            raise bad_request("status must be open, closed or both (comma separated)")
        query.statuses = statuses
    start_raw, end_raw = param(params, "start_date"), param(params, "end_date")
    start = parse_w3c("start_date", start_raw, tz) if start_raw else None
    end = parse_w3c("end_date", end_raw, tz) if end_raw else None
    if start is None and end is None:
        end, start = now, now - DEFAULT_SPAN
    elif start is None:
        start = end - DEFAULT_SPAN
    elif end is None:
        end = start + DEFAULT_SPAN
    if start > end:
        raise bad_request("start_date must not be after end_date")
    if end - start > DEFAULT_SPAN:
        raise bad_request("start_date and end_date may not span more than 90 days")
    query.start, query.end = start, end
    return query


def _row_query(tenant: str) -> sa.Select:
    r, v = db.reports, db.case_view
    return (
        sa.select(
            r.c.case_id, r.c.category_code, r.c.place_code, r.c.reported_at, r.c.report, r.c.source,
            v.c.state, v.c.closed, v.c.closed_at, v.c.department, v.c.deadline, v.c.dispatched_at,
            v.c.department_at, v.c.acknowledged_at, v.c.resolved_at, v.c.outcome, v.c.reopen_count,
        )
        .select_from(r.outerjoin(v, v.c.case_id == r.c.case_id))
        .where(r.c.tenant == tenant)
    )


def _closed_clause():
    v = db.case_view
    return sa.or_(closed_now_clause(), sa.func.coalesce(v.c.state, "").in_(sorted(ENDING_STATES)))


async def fetch_rows(engine, tenant: str, query: RequestQuery, caller: Principal | None = None) -> list[dict]:
    """Rows (reports joined with the case view) of ``tenant`` matching ``query``, newest first,
    one page of at most ``page_size``; only the cases ``caller`` may see (place scope, and the
    department for department staff; shared/platform/auth.py) when given."""
    r = db.reports
    stmt = _row_query(tenant)
    if caller is not None:
        if caller.scope:
            stmt = stmt.where(r.c.place_code.startswith(caller.scope, autoescape=True))
        allowed, department = caller.department_filter(None)
        if department is not None:
            stmt = stmt.where(db.case_view.c.department == department)
    if query.ids is not None:
        if not query.ids:
            return []
        stmt = stmt.where(r.c.case_id.in_(query.ids))
    else:
        if query.service_codes:
            stmt = stmt.where(r.c.category_code.in_(query.service_codes))
        if query.start is not None:
            stmt = stmt.where(r.c.reported_at >= query.start)
        if query.end is not None:
            stmt = stmt.where(r.c.reported_at <= query.end)
        if query.statuses and len(query.statuses) == 1:
            stmt = stmt.where(_closed_clause() if "closed" in query.statuses else sa.not_(_closed_clause()))
    stmt = stmt.order_by(r.c.reported_at.desc(), r.c.case_id).limit(query.page_size).offset(
        (query.page - 1) * query.page_size
    )
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(stmt)).mappings()]
