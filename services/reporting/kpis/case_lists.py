"""The case lists of ``GET /v1/cases/overdue`` and ``GET /v1/cases/supervised``: open cases past
their deadline, and cases under 督办, one page at a time, with their labels and the hours (natural
and working) since the deadline."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import case_facts as cf
from services.reporting.filters import counted
from services.reporting.kpis.clock import working_clock, working_seconds
from services.reporting.kpis.periods import iso
from services.reporting.labels import group_label
from shared.domain.tenants import TenantConfig
from shared.domain.workcalendar import DEFAULT_TZ

#: Largest page of a case list (``limit``), and the default.
MAX_PAGE = 500
DEFAULT_PAGE = 100


async def query_overdue(conn: AsyncConnection, tenant: str, *, now: datetime | None = None, limit: int = DEFAULT_PAGE,
                        offset: int = 0, place_prefix: str | None = None, tz: tzinfo = DEFAULT_TZ,
                        tenant_config: TenantConfig | None = None, taxonomy=None, department: str | None = None) -> dict:
    """Open cases past their deadline now (超期未办结; shelved cases excluded: their clock is
    paused), most overdue first; only those of ``department`` when given (department staff's scope).

    Returns ``{"tenant", "now", "total", "limit", "offset", "cases": [case, …]}``; a case is
    ``{"case_id", "category", "category_label", "department", "department_label", "place",
    "place_label", "deadline", "hours_overdue", "working_hours_overdue", "supervision_level",
    "state", "reported_at"}`` (hours since the deadline; working hours per
    services/reporting/kpis/clock.py, ``None`` outside the calendar's years).

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_PAGE` or negative ``offset``.
    """
    now = now or datetime.now(UTC)
    conds = [cf.c.tenant == tenant, counted(), sa.not_(cf.c.closed), cf.c.deadline < now,
             cf.c.state.is_distinct_from("shelved")]
    if department is not None:
        conds.append(cf.c.department == department)
    return await _case_list(conn, tenant, conds, [cf.c.deadline, cf.c.case_id], now=now, limit=limit, offset=offset,
                            place_prefix=place_prefix, tz=tz, tenant_config=tenant_config, taxonomy=taxonomy)


async def query_supervised(conn: AsyncConnection, tenant: str, *, now: datetime | None = None,
                           limit: int = DEFAULT_PAGE, offset: int = 0, include_closed: bool = False,
                           place_prefix: str | None = None, tz: tzinfo = DEFAULT_TZ,
                           tenant_config: TenantConfig | None = None, taxonomy=None,
                           department: str | None = None) -> dict:
    """Cases under 督办 (supervision level ≥ 1: 1 督办, 2 提级督办; docs/domain.md §3(d)4), open ones
    only unless ``include_closed``; highest level first, then earliest deadline. Same answer
    shape as :func:`query_overdue` (``hours_overdue`` is ``None`` for a case not past its
    deadline, or closed).

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_PAGE` or negative ``offset``.
    """
    now = now or datetime.now(UTC)
    conds = [cf.c.tenant == tenant, counted(), cf.c.supervision_level > 0]
    if not include_closed:
        conds.append(sa.not_(cf.c.closed))
    if department is not None:
        conds.append(cf.c.department == department)
    order = [cf.c.supervision_level.desc(), cf.c.deadline.asc().nulls_last(), cf.c.case_id]
    return await _case_list(conn, tenant, conds, order, now=now, limit=limit, offset=offset,
                            place_prefix=place_prefix, tz=tz, tenant_config=tenant_config, taxonomy=taxonomy)


async def _case_list(conn, tenant, conds, order, *, now, limit, offset, place_prefix, tz, tenant_config, taxonomy) -> dict:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    if offset < 0:
        raise ValueError("offset must be >= 0")
    if place_prefix:
        conds = [*conds, cf.c.place_code.startswith(place_prefix, autoescape=True)]
    total = (await conn.execute(sa.select(sa.func.count()).select_from(cf).where(*conds))).scalar_one()
    cols = [cf.c.case_id, cf.c.category_code, cf.c.department, cf.c.place_code, cf.c.deadline, cf.c.supervision_level,
            cf.c.state, cf.c.closed, cf.c.reported_at]
    rows = (await conn.execute(sa.select(*cols).where(*conds).order_by(*order).limit(limit).offset(offset))).all()
    clock = working_clock()
    cases = []
    for r in rows:
        late = r.deadline is not None and not r.closed and r.deadline < now
        work = working_seconds(r.deadline, now, tz, clock) if late else None
        cases.append({
            "case_id": str(r.case_id),
            "category": r.category_code,
            "category_label": group_label("category", r.category_code, tenant_config, taxonomy),
            "department": r.department,
            "department_label": group_label("department", r.department, tenant_config, taxonomy),
            "place": r.place_code,
            "place_label": tenant_config.place_label(r.place_code) if tenant_config else r.place_code,
            "deadline": iso(r.deadline),
            "hours_overdue": round((now - r.deadline).total_seconds() / 3600, 2) if late else None,
            "working_hours_overdue": round(work / 3600, 2) if work is not None else None,
            "supervision_level": r.supervision_level,
            "state": r.state,
            "reported_at": iso(r.reported_at),
        })
    return {"tenant": tenant, "now": now.isoformat(), "total": total, "limit": limit, "offset": offset, "cases": cases}
