"""Which cases a reporting query is about: :class:`CaseFilter`, the one filter over
``reporting.case_facts`` that the statistics (services/reporting/stats.py) and the KPIs
(services/reporting/kpis/) both take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa

from services.reporting.db import case_facts as cf
from shared.domain.workcalendar import DEFAULT_TZ

#: The filter's tenant, place, category and department conditions (those of
#: :meth:`CaseFilter.where`) in the KPI statement's SQL (services/reporting/kpis/sql.py), over the
#: case_facts row ``cf``, with the parameters of :meth:`CaseFilter.sql_params`; P and the cases
#: counted at all are the KPI rules' (services/reporting/kpis/rules.py).
FILTER_SQL = (
    "cf.tenant = :tenant"
    " AND (:place_prefix::text IS NULL OR starts_with(cf.place_code, :place_prefix::text))"
    " AND (:category::text IS NULL OR cf.category_code = :category::text)"
    " AND (:department::text IS NULL OR cf.department = :department::text)"
)


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
        """The parameters of :data:`FILTER_SQL`."""
        return {"tenant": self.tenant, "place_prefix": self.place_prefix, "category": self.category,
                "department": self.department}
