"""Which cases a reporting query is about: :class:`CaseFilter`, the one filter over
``reporting.case_facts`` that the statistics (services/reporting/stats.py) and the KPIs
(services/reporting/kpis/) both take, and :func:`counted`, the cases any figure counts at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.reporting.db import case_facts as cf
from shared.domain.workcalendar import DEFAULT_TZ

#: Terminal states that were never a completion: 不予受理 rejected and 作废 cancelled.
EXCLUDED_STATES: tuple[str, ...] = ("rejected", "cancelled")


def counted(t: sa.Table | sa.Alias = cf) -> sa.ColumnElement[bool]:
    """The cases every figure counts (the KPI universe, docs/kpis.md §2): reported (the report has
    been folded), accepted (受理: ``accepted_at``, shared/domain/casefacts.py) and not rejected or
    cancelled. A report still awaiting acceptance is outside every figure but its own status
    (stats.py); rejected and cancelled cases are outside too."""
    return sa.and_(t.c.reported_at.is_not(None), t.c.accepted_at.is_not(None),
                   sa.or_(t.c.state.is_(None), t.c.state.not_in(EXCLUDED_STATES)))


#: :func:`counted` in the KPI statement's SQL, over the case_facts row ``cf``.
COUNTED_SQL = str(counted(cf.alias("cf")).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

#: The filter's tenant, place and category conditions in the KPI statement's SQL
#: (services/reporting/kpis/sql.py), over the case_facts row ``cf``, with the parameters of
#: :meth:`CaseFilter.sql_params`; P and the cases counted are the KPI rules'
#: (services/reporting/kpis/rules.py).
SCOPE_SQL = (
    "cf.tenant = :tenant"
    " AND (:place_prefix::text IS NULL OR starts_with(cf.place_code, :place_prefix::text))"
    " AND (:category::text IS NULL OR cf.category_code = :category::text)"
)


def department_sql(column: str) -> str:
    """The filter's department condition on ``column`` (the case's department, or the department a
    step is attributed to)."""
    return f"(:department::text IS NULL OR {column} = :department::text)"


#: Every condition of :meth:`CaseFilter.where` but P, in the KPI statement's SQL.
FILTER_SQL = f"{SCOPE_SQL} AND {department_sql('cf.department')}"


@dataclass(frozen=True)
class CaseFilter:
    """Which cases and which period: ``tenant`` (required); P = ``[start, end)`` (aware; ``None``
    = open); optional place-code prefix, category and department; ``tz`` the tenant's timezone
    (KPI sub-periods, working hours, labels).

    The statistics count the cases reported in P (:meth:`where`); the KPIs take every case alive
    in P and place each of its events in P or not (services/reporting/kpis/rules.py).

    Raises:
        ValueError: a naive ``start`` or ``end``, or ``end <= start``.
    """

    tenant: str
    start: datetime | None = None
    end: datetime | None = None
    place_prefix: str | None = None
    category: str | None = None
    department: str | None = None
    tz: tzinfo = DEFAULT_TZ

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"{name} must be timezone-aware")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")

    def where(self) -> list[sa.ColumnElement[bool]]:
        """SQL conditions (SQLAlchemy) for the reported cases of this filter, P on ``reported_at``."""
        conds = [cf.c.tenant == self.tenant, cf.c.reported_at.is_not(None)]
        if self.start:
            conds.append(cf.c.reported_at >= self.start)
        if self.end:
            conds.append(cf.c.reported_at < self.end)
        if self.place_prefix:
            conds.append(cf.c.place_code.startswith(self.place_prefix, autoescape=True))
        if self.category:
            conds.append(cf.c.category_code == self.category)
        if self.department:
            conds.append(cf.c.department == self.department)
        return conds

    def sql_params(self) -> dict[str, Any]:
        """The parameters of :data:`FILTER_SQL` (and :data:`SCOPE_SQL`, :func:`department_sql`)."""
        return {"tenant": self.tenant, "place_prefix": self.place_prefix, "category": self.category,
                "department": self.department}
