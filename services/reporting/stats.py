"""Statistics over reporting's tables: cases counted, shares and time to close, grouped
(``GET /v1/stats``); inspection rounds (``GET /v1/patrols``); progress of the fold
(``GET /v1/progress``).

Definitions (each in one place):

- reported (受理量): counted cases (services/reporting/filters.py ``counted``: the report has been
  folded, the case was accepted, it is not rejected or cancelled), in the period by
  ``reported_at``; a case whose lifecycle events arrived before its report is not yet counted.
  Reports awaiting acceptance (待受理), rejected (不予受理) and cancelled (已作废) cases are counted
  apart (``awaiting_acceptance``, ``rejected``, ``cancelled``) and in no other figure.
- closed (办结量): reported cases with ``closed``; open = reported − closed.
- transferred (转办): reported cases transferred at least once (docs/domain.md §3(e) 转办率 numerator).
- in progress (在办, own remit): open cases never transferred — docs/seeds.md block A counts
  these apart from the transferred ones (627 vs 1139).
- closure rate / share closed (办结率) = closed ÷ reported (docs/seeds.md block A: 3644 / 5410; the
  share-closed rule of ../shared/data/README.md). Issue 4 adds the 应办结 denominator.
- time to close: ``closed_at − reported_at`` in hours over closed cases with both times and
  ``closed_at ≥ reported_at`` (README "How the ground-truth figures were computed"); median and
  p90 are PostgreSQL ``percentile_cont`` (linear interpolation, as pandas ``quantile``). ``n``
  counts them; the closed cases left out are counted beside it, so that ``n + no_close_time +
  closed_before_report = closed``: ``no_close_time`` (closed without a recorded close time, e.g.
  an imported record with Status "Closed" and no Closed Date) and ``closed_before_report``
  (a close time before the report's).
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting.db import case_facts as cf
from services.reporting.db import case_tally, patrols
from services.reporting.filters import CaseFilter, counted
from services.reporting.kpis.formulas import ratio
from shared.platform.tally import tally

#: ``group_by`` values of ``GET /v1/stats``.
GROUPS = ("category", "department", "status", "source_status", "place", "channel", "request_type", "source")

#: A case's status for ``group_by=status`` (labels: services/reporting/labels.py ``STATUS_LABELS``):
#: rejected and cancelled are terminal whatever else the row says; a report not accepted yet waits
#: for acceptance (待受理); ``reported`` is an accepted case not dispatched yet (待派遣).
STATUS_EXPR = sa.case(
    (cf.c.state == "rejected", "rejected"),
    (cf.c.state == "cancelled", "cancelled"),
    (cf.c.accepted_at.is_(None), "awaiting_acceptance"),
    (cf.c.closed, "closed"),
    (cf.c.transfer_count > 0, "transferred"),
    (cf.c.target_kind == "triage", "triage"),
    (cf.c.target_kind == "mediation", "mediation"),
    (cf.c.dispatched_at.is_not(None), "in_progress"),
    else_="reported",
)


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
        return sa.func.left(cf.c.place_code, place_depth, type_=cf.c.place_code.type) if place_depth else cf.c.place_code
    if group_by in ("channel", "request_type", "source"):
        return cf.c[group_by]
    raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")


async def query_stats(conn: AsyncConnection, flt: CaseFilter, group_by: str | None, place_depth: int | None = None) -> dict:
    """Run the statistics query; return ``{"total": row, "groups": [row, …]}`` where a row is
    ``{key, reported, closed, open, in_progress, transferred, closure_rate,
    time_to_close_hours: {n, mean, median, p90, no_close_time, closed_before_report},
    awaiting_acceptance, rejected, cancelled}`` (module docstring), groups sorted by ``reported`` descending, then key (no key last).

    One statement: the groups and the total in one pass (``GROUPING SETS``), median and p90 from
    one sort (``percentile_cont`` of an array of fractions); hours as double precision.

    Raises:
        ValueError: ``group_by`` is not one of :data:`GROUPS`.
    """
    hours = sa.func.date_part("epoch", cf.c.closed_at - cf.c.reported_at) / 3600.0
    # each row's conditions once, in a subquery, then counted (a FILTER per figure repeating the
    # conditions cost a third of the statement at 1,000,000 cases: bench/kpis.py)
    timed = sa.and_(cf.c.closed, cf.c.closed_at >= cf.c.reported_at)
    cols = [counted().label("ok"), cf.c.closed, cf.c.transfer_count,
            cf.c.closed_at.is_(None).label("no_time"), (cf.c.closed_at < cf.c.reported_at).label("before"),
            sa.case((timed, hours)).label("h"), (STATUS_EXPR == "awaiting_acceptance").label("awaiting"), cf.c.state]
    if group_by:
        # a text key grouped byte by byte (COLLATE "C"): the same groups under any deterministic
        # collation, without the locale's comparison in the sort; the groups are sorted below
        key = group_expr(group_by, place_depth)
        cols.append((key.collate("C") if isinstance(key.type, sa.String) else key).label("key"))
    s = sa.select(*cols).where(*flt.where()).subquery("s")
    ok, closed = s.c.ok, s.c.closed
    timed_ok = sa.and_(ok, s.c.h.is_not(None))
    quantiles = sa.func.percentile_cont(sa.literal_column("ARRAY[0.5, 0.9]")).within_group(s.c.h)
    measures = [
        sa.func.count().filter(ok).label("reported"),
        sa.func.count().filter(sa.and_(ok, closed)).label("closed"),
        sa.func.count().filter(sa.and_(ok, sa.not_(closed), s.c.transfer_count == 0)).label("in_progress"),
        sa.func.count().filter(sa.and_(ok, s.c.transfer_count > 0)).label("transferred"),
        sa.func.count().filter(timed_ok).label("n_timed"),
        sa.func.count().filter(sa.and_(ok, closed, s.c.no_time)).label("no_close_time"),
        sa.func.count().filter(sa.and_(ok, closed, s.c.before)).label("closed_before_report"),
        sa.func.avg(s.c.h).filter(timed_ok).label("mean_h"),
        sa.type_coerce(quantiles.filter(timed_ok), sa.ARRAY(sa.Float)).label("q_h"),
        sa.func.count().filter(s.c.awaiting).label("awaiting_acceptance"),
        sa.func.count().filter(s.c.state == "rejected").label("rejected"),
        sa.func.count().filter(s.c.state == "cancelled").label("cancelled"),
    ]
    if not group_by:
        total = (await conn.execute(sa.select(*measures))).one()
        return {"total": _row(None, total), "groups": []}
    key = s.c.key
    stmt = sa.select(key, sa.func.grouping(key).label("g"), *measures).group_by(
        sa.func.grouping_sets(sa.tuple_(key), sa.tuple_()))
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
        "closure_rate": ratio(r.closed, r.reported),
        "time_to_close_hours": {
            "n": r.n_timed,
            "mean": float(r.mean_h) if r.mean_h is not None else None,
            "median": float(r.q_h[0]) if r.q_h else None,
            "p90": float(r.q_h[1]) if r.q_h else None,
            # why n may be less than closed: n + no_close_time + closed_before_report = closed
            "no_close_time": r.no_close_time,
            "closed_before_report": r.closed_before_report,
        },
        "awaiting_acceptance": r.awaiting_acceptance,
        "rejected": r.rejected,
        "cancelled": r.cancelled,
    }


def empty_stats() -> dict:
    """:func:`query_stats`' answer for a period without time in it (``end <= start``, which a
    :class:`~services.reporting.filters.CaseFilter` refuses): nothing counted, as the query would
    find over no rows."""
    nothing = SimpleNamespace(reported=0, closed=0, in_progress=0, transferred=0, n_timed=0, mean_h=None, q_h=None,
                              no_close_time=0, closed_before_report=0,
                              awaiting_acceptance=0, rejected=0, cancelled=0)
    return {"total": _row(None, nothing), "groups": []}


async def query_patrols(conn: AsyncConnection, tenant: str, start: datetime | None, end: datetime | None,
                        place_prefix: str | None) -> dict:
    """Inspection rounds (巡查) and points by kind started in ``[start, end)`` (either end open),
    under ``place_prefix``: ``{"tenant", "rounds", "points", "by_kind": {kind: {rounds, points,
    findings}}}``."""
    p = patrols
    conds = [p.c.tenant == tenant]
    if start:
        conds.append(p.c.started_at >= start)
    if end:
        conds.append(p.c.started_at < end)
    if place_prefix:
        conds.append(p.c.place_code.startswith(place_prefix, autoescape=True))
    q = sa.select(p.c.kind, sa.func.count().label("rounds"), sa.func.sum(p.c.points).label("points"),
                  sa.func.sum(p.c.findings).label("findings")).where(*conds).group_by(p.c.kind)
    rows = (await conn.execute(q)).all()
    kinds = {r.kind: {"rounds": r.rounds, "points": int(r.points or 0), "findings": int(r.findings or 0)} for r in rows}
    return {
        "tenant": tenant,
        "rounds": sum(k["rounds"] for k in kinds.values()),
        "points": sum(k["points"] for k in kinds.values()),
        "by_kind": kinds,
    }


async def query_progress(engine: AsyncEngine, tenant: str | None, place_prefix: str | None,
                         department: str | None) -> dict:
    """Cases reported and events folded so far, of ``tenant`` (every tenant for ``None``), under
    ``place_prefix``, of ``department``: ``{"tenant", "reported_cases", "events_applied"}``. The
    whole tenant's (or every tenant's) come from the tally the triggers keep
    (shared/platform/tally.py); a caller scoped to a place or a department counts its facts."""
    if not place_prefix and not department:
        totals = await tally(engine, case_tally, tenant)
        return {"tenant": tenant, **totals}
    q = sa.select(
        sa.func.count().filter(cf.c.reported_at.is_not(None)).label("reported_cases"),  # every report, for waiting
        sa.func.coalesce(sa.func.sum(cf.c.event_count), 0).label("events_applied"),
    )
    if tenant:
        q = q.where(cf.c.tenant == tenant)
    if place_prefix:
        q = q.where(cf.c.place_code.startswith(place_prefix, autoescape=True))
    if department:
        q = q.where(cf.c.department == department)
    async with engine.connect() as conn:
        row = (await conn.execute(q)).one()
    return {"tenant": tenant, "reported_cases": row.reported_cases, "events_applied": int(row.events_applied)}
