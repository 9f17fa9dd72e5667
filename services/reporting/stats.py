"""Statistics over ``reporting.case_facts``: counts, shares and time to close, grouped.

Definitions (each in one place):

- reported (受理量): cases whose report has been counted (``reported_at`` set), in the period by
  ``reported_at``; a case whose lifecycle events arrived before its report is not yet counted.
- closed (办结量): reported cases with ``closed``; open = reported − closed.
- transferred (转办): reported cases transferred at least once (domain.md §3(e) 转办率 numerator).
- in progress (在办, own remit): open cases never transferred — seed-figures.md block A counts
  these apart from the transferred ones (627 vs 1139).
- closure rate / share closed (办结率) = closed ÷ reported (seed-figures.md A: 3644 / 5410; the
  share-closed rule of ../shared/data/README.md). Issue 4 adds the 应办结 denominator.
- time to close: ``closed_at − reported_at`` in hours over closed cases with both times and
  ``closed_at ≥ reported_at`` (README "How the ground-truth figures were computed"); median and
  p90 are PostgreSQL ``percentile_cont`` (linear interpolation, as pandas ``quantile``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import case_facts as cf

GROUPS = ("category", "department", "status", "source_status", "place", "channel", "request_type", "source")

STATUS_EXPR = sa.case(
    (cf.c.closed, "closed"),
    (cf.c.transfer_count > 0, "transferred"),
    (cf.c.target_kind == "triage", "triage"),
    (cf.c.target_kind == "mediation", "mediation"),
    (cf.c.dispatched_at.is_not(None), "in_progress"),
    else_="reported",
)


#: zh-CN first, English beside it (Chinese is the users' language; README).
STATUS_LABELS = {
    "closed": "已办结 closed",
    "transferred": "已转办 transferred",
    "in_progress": "在办 in progress",
    "mediation": "调解中 in mediation",
    "triage": "待分拨 triage",
    "reported": "待派遣 awaiting dispatch",
}


def label_for(group_by: str, key, tenant, taxonomy) -> str:
    """Human label of a group key: department and category names from the taxonomy (or the
    tenant's own departments), place names from the tenant file, status names from
    :data:`STATUS_LABELS`; the key itself when nothing better is known."""
    if key is None:
        return "(无 none)"
    if group_by == "department":
        if taxonomy.department(key) is not None:
            return taxonomy.department_label(key)
        local = tenant.department(key) if tenant else None
        return f"{key} · {local.label}" if local is not None else key
    if group_by == "category":
        return taxonomy.category_label(key)
    if group_by == "place":
        return tenant.place_label(key) if tenant else key
    if group_by == "status":
        return STATUS_LABELS.get(key, key)
    return str(key)


def group_expr(group_by: str, place_depth: int | None = None) -> sa.ColumnElement:
    """The SQL expression a ``group_by`` name groups on.

    Raises:
        ValueError: ``group_by`` is not one of :data:`GROUPS`.
    """
    if group_by == "category":
        return cf.c.category_code
    if group_by == "department":
        return cf.c.department
    if group_by == "status":
        return STATUS_EXPR
    if group_by == "source_status":
        return cf.c.source_status
    if group_by == "place":
        return sa.func.left(cf.c.place_code, place_depth) if place_depth else cf.c.place_code
    if group_by in ("channel", "request_type", "source"):
        return cf.c[group_by]
    raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")


@dataclass(frozen=True)
class StatsFilter:
    """Which cases to count: a tenant (required), a half-open period ``[start, end)`` on
    ``reported_at``, a place-code prefix, a category, a department."""

    tenant: str
    start: datetime | None = None
    end: datetime | None = None
    place_prefix: str | None = None
    category: str | None = None
    department: str | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """SQL conditions for this filter."""
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


def share(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``, or ``None`` when nothing is due (denominator 0)."""
    return numerator / denominator if denominator else None


async def query_stats(conn: AsyncConnection, flt: StatsFilter, group_by: str | None, place_depth: int | None = None) -> dict:
    """Run the statistics query; return ``{"total": row, "groups": [row, …]}`` where a row is
    ``{key, reported, closed, open, in_progress, transferred, closure_rate,
    time_to_close_hours: {n, mean, median, p90}}``, groups sorted by ``reported`` descending, then
    key (no key last).

    One statement: the groups and the total in one pass (``GROUPING SETS``), median and p90 from
    one sort (``percentile_cont`` of an array of fractions); hours as double precision.

    Raises:
        ValueError: ``group_by`` is not one of :data:`GROUPS`.
    """
    hours = sa.func.date_part("epoch", cf.c.closed_at - cf.c.reported_at) / 3600.0
    timed = sa.and_(cf.c.closed, cf.c.closed_at.is_not(None), cf.c.closed_at >= cf.c.reported_at)
    quantiles = sa.func.percentile_cont(sa.literal_column("ARRAY[0.5, 0.9]")).within_group(hours)
    measures = [
        sa.func.count().label("reported"),
        sa.func.count().filter(cf.c.closed).label("closed"),
        sa.func.count().filter(sa.and_(sa.not_(cf.c.closed), cf.c.transfer_count == 0)).label("in_progress"),
        sa.func.count().filter(cf.c.transfer_count > 0).label("transferred"),
        sa.func.count().filter(timed).label("n_timed"),
        sa.func.avg(hours).filter(timed).label("mean_h"),
        sa.type_coerce(quantiles.filter(timed), sa.ARRAY(sa.Float)).label("q_h"),
    ]
    where = flt.where()
    if not group_by:
        total = (await conn.execute(sa.select(*measures).where(*where))).one()
        return {"total": _row(None, total), "groups": []}
    key = group_expr(group_by, place_depth).label("key")
    stmt = (sa.select(key, sa.func.grouping(key).label("g"), *measures).where(*where)
            .group_by(sa.func.grouping_sets(sa.tuple_(key), sa.tuple_())))
    out: dict = {"total": None, "groups": []}  # the () set yields the total row even over no rows
    for r in (await conn.execute(stmt)).all():
        if r.g:
            out["total"] = _row(None, r)
        else:
            out["groups"].append(_row(r.key, r))
    out["groups"].sort(key=lambda g: (-g["reported"], g["key"] is None, g["key"] if g["key"] is not None else ""))
    return out


def _row(key, r) -> dict:
    return {
        "key": key,
        "reported": r.reported,
        "closed": r.closed,
        "open": r.reported - r.closed,
        "in_progress": r.in_progress,
        "transferred": r.transferred,
        "closure_rate": share(r.closed, r.reported),
        "time_to_close_hours": {
            "n": r.n_timed,
            "mean": float(r.mean_h) if r.mean_h is not None else None,
            "median": float(r.q_h[0]) if r.q_h else None,
            "p90": float(r.q_h[1]) if r.q_h else None,
        },
    }
