"""Reporting's own metrics: open and overdue cases per tenant (``reporting_cases_open``,
``reporting_cases_overdue``), sampled from ``reporting.case_facts``."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.db import case_facts as cf
from services.reporting.filters import counted


@dataclass(frozen=True)
class CaseGauges:
    """The case gauges, registered on a service's registry (:meth:`register`)."""

    open_cases: Gauge
    overdue: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> CaseGauges:
        """The gauges on ``registry``."""
        return cls(
            Gauge("reporting_cases_open", "Counted cases (accepted, not rejected or cancelled) not closed", ["tenant"],
                  registry=registry),
            Gauge("reporting_cases_overdue", "Open cases past their deadline", ["tenant"], registry=registry),
        )

    async def sample(self, engine: AsyncEngine) -> None:
        """Set both gauges of every tenant with reported cases from one query."""
        q = sa.select(
            cf.c.tenant,
            sa.func.count().filter(sa.not_(cf.c.closed)).label("open"),
            sa.func.count().filter(sa.and_(sa.not_(cf.c.closed), cf.c.deadline < sa.func.now())).label("overdue"),
        ).where(counted()).group_by(cf.c.tenant)
        async with engine.connect() as conn:
            for row in (await conn.execute(q)).all():
                self.open_cases.labels(row.tenant).set(row.open)
                self.overdue.labels(row.tenant).set(row.overdue)
