"""Reading the per-event figures from their cells (issue 14): the statement over
``reporting.step_cells`` and ``reporting.step_case_days`` (services/reporting/kpis/step_cells.py)
that answers what :func:`services.reporting.kpis.sql.step_sql` answers by scanning the steps, with
the same rows and figures, whenever P is made of whole local days in the zone the tenant's cells are
computed in (every day, week and month request; an open end is fine), or when its start or end
falls within a day but no step of the tenant lies between that bound and the day's edge (a period
request with an open start begins at the tenant's first report: :func:`day_bounds`). Its cost grows
with the cells of P (days × grids × categories × departments × channels that had an event), not
with the cases.

- ``sum`` figures: the sum of the cells' counters (NULL when 0, as the scan's ``sum`` of no row),
  per rung for the figures given per rung.
- ``mediation_hours``: the sum of the microseconds ÷ the count.
- ``cases`` figures: the case days with their day in the sub-period and their previous day before
  it (the total row: before P); per department for department rows or a department filter, else
  over all departments; per rung or over all.
- A group has a row when its cells hold at least one event (the total row always), as the scan.
- A request without place, category or channel (as grouping or filter) reads
  ``reporting.step_day_cells``, the cells summed over them, and the case days' tenant by day
  (``step_month_case_days`` cuboid 10): a few rows per day and department.
- Another request whose bounds are all month starts (or open ends) reads the month cuboid that
  keeps what it asks for (``step_month_cells`` and ``step_month_case_days``, cuboids 0–3,
  services/reporting/kpis/step_cuboids.py): rows per month and grid, or community and category,
  department or channel, whatever the cases. Only the rest (a week by grid, say) reads the day
  tables, whose cost grows with the events in P.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.filters import SCOPE_SQL, CaseFilter, department_sql
from services.reporting.kpis.catalogue import GROUP_BYS
from services.reporting.kpis.clock import tz_name
from services.reporting.kpis.cuboids import choose, month_aligned
from services.reporting.kpis.periods import OPEN_END, OPEN_START
from services.reporting.kpis.rules import GROUP_KEYS, STEP_RULES
from services.reporting.kpis.sql import bind, fetch_records
from services.reporting.kpis.step_cells import AVG_FIGURES, CASE_FIGURES, SUM_FIGURES
from services.reporting.kpis.step_cuboids import STEP_DAY_CUBOID
from shared.contract.actions import MEDIATION_LEVELS

#: Days standing for an open end of P.
FIRST_DAY, LAST_DAY = date(1, 1, 1), date(9999, 12, 31)


def day_bounds(bounds: Sequence[datetime], tz: tzinfo) -> tuple[list[date], list[tuple[datetime, datetime]]] | None:
    """The local days standing for ``bounds`` in ``tz``, and the parts of days they would add to P.

    Every bound but the first and the last must be a local midnight (else ``None``; period bounds
    always are). An open end (:data:`~services.reporting.kpis.periods.OPEN_START` / ``OPEN_END``)
    is a day before / after every cell. A first bound within a day stands for that day, adding
    ``[its midnight, b0)``; a last bound within a day stands for the next one, adding ``[bn, next
    midnight)``: the cells answer only if no step of the tenant lies in those parts
    (:func:`cell_rows`)."""
    days, extra = [], []
    last = len(bounds) - 1
    for i, b in enumerate(bounds):
        if (i == 0 and b == OPEN_START) or (i == last and b == OPEN_END):
            days.append(FIRST_DAY if i == 0 else LAST_DAY)
            continue
        d = b.astimezone(tz).date()
        midnight = datetime.combine(d, time(0), tz)
        if midnight != b:
            if i == 0:
                extra.append((midnight, b))
            elif i == last:
                d += timedelta(days=1)
                extra.append((b, datetime.combine(d, time(0), tz)))
            else:
                return None
        days.append(d)
    if any(a >= b for a, b in pairwise(days)):
        return None
    return days, extra


def cells_sql(group_by: str | None, periods: bool, by_department: bool, coarse: bool = False,
              cuboid: int | None = None) -> str:
    """The statement: rows ``(key, g, <figures>)`` as :func:`~services.reporting.kpis.sql.step_sql`'s.
    ``by_department``: a department filter is set (the 'cases' figures then count per department).
    ``coarse``: read the counters from ``step_day_cells`` and the case days from their tenant by day
    (no place, category or channel: only for a request that groups and filters by none of them,
    :func:`coarse_enough`). ``cuboid``: read both from that month cuboid
    (services/reporting/kpis/step_cuboids.py; only for bounds that are all month starts or open
    ends and a cuboid that keeps what the request needs, :func:`month_cuboid`). Else the day
    tables.

    How: the cells are summed per group key and sub-period, the per-rung figures as filtered sums
    beside the others (``c``), and the case days likewise, each 'cases' figure twice: as a group row
    counts it (previous day before the row's sub-period, in the group's scope) and as the total row
    does (previous day before P, in the total's scope) (``d``). A group row is the row of ``c`` that
    has an event with its row of ``d``; the total row sums ``c`` and ``d``. One sub-period, or no
    group key, makes each ``(key, sub-period)`` of ``c`` one answer row, so no row is summed twice
    (sums of sums: the same integers, and the same numeric sums of microseconds, exactly). Measured
    at 1,000,000 cases, a month by grid: 16 → 11 ms in PostgreSQL, against one aggregate with some
    sixty filtered sums over every cell and case day row (docs/kpis.md §11).

    Raises:
        ValueError: unknown ``group_by``.
    """
    if periods or group_by is None or group_by.startswith("period:"):
        key = "NULL::text"
    elif group_by == "department":
        key = "cf.department"
    elif group_by in GROUP_KEYS:
        key = GROUP_KEYS[group_by]
    else:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")
    # one sub-period: the answer rows are the group keys; several (no key): the sub-periods
    part = "c.b" if periods else "c.key"
    where = (f"{SCOPE_SQL} AND {department_sql('cf.department')}\n"
             "    AND cf.day >= :d0::date AND cf.day < :dn::date")
    bucket = "width_bucket(cf.day, :days::date[])"
    if coarse:
        cells_table, cells_where = "step_day_cells", (f"cf.tenant = :tenant AND {department_sql('cf.department')}\n"
                                                      "    AND cf.day >= :d0::date AND cf.day < :dn::date")
        days_table, days_where = "step_month_case_days", f"cf.cuboid = {STEP_DAY_CUBOID} AND {where}"
    elif cuboid is not None:
        cells_table, cells_where = "step_month_cells", f"cf.cuboid = {int(cuboid)} AND {where}"
        days_table, days_where = "step_month_case_days", cells_where
    else:
        cells_table, cells_where, days_table, days_where = "step_cells", where, "step_case_days", where
    sums = ["sum(cf.events) AS events"]  # c's columns
    group_cols, total_cols = [], []  # a group row's figures (from c and d), the total row's
    for name in SUM_FIGURES:
        for rung in _rungs(name):
            col, only = _per_rung(name, rung)
            sums.append(f"sum(cf.{name}){only} AS {col}")
            # ::bigint: a sum of bigint sums is numeric, which the driver would hand over as a
            # Decimal (slow to make, a thousand rows of them by grid); a count fits 64 bits
            group_cols.append(f"nullif(c.{col}, 0)::bigint AS {col}")
            total_cols.append(f"nullif(sum(c.{col}), 0)::bigint")
    for name in AVG_FIGURES:
        for rung in _rungs(name):
            col, only = _per_rung(name, rung)
            sums += [f"sum(cf.{name}_us){only} AS {col}_us", f"sum(cf.{name}_n){only} AS {col}_n"]
            group_cols.append(f"c.{col}_us::float8 / 3600e6 / nullif(c.{col}_n, 0) AS {col}")
            total_cols.append(f"sum(c.{col}_us)::float8 / 3600e6 / nullif(sum(c.{col}_n), 0)")
    group_scope = "TRUE" if group_by == "department" or by_department else "FALSE"
    total_scope = "TRUE" if by_department else "FALSE"
    prev = "coalesce(width_bucket(cf.prev_day, :days::date[]), 0)"
    cases = []  # d's columns
    for name in CASE_FIGURES:
        for rung in _rungs(name):
            col = f"{name}_{rung}" if rung else name
            of = f"cf.figure = '{name}' AND cf.by_rung = {'FALSE' if rung is None else 'TRUE'}" + (
                f" AND cf.rung = '{rung}'" if rung else "")
            cases += [f"sum(cf.cases) FILTER (WHERE {of} AND cf.by_department = {group_scope} AND {prev} < {bucket}) AS {col}_g",
                      f"sum(cf.cases) FILTER (WHERE {of} AND cf.by_department = {total_scope} AND {prev} = 0) AS {col}_t"]
            group_cols.append(f"coalesce(d.{col}_g, 0) AS {col}")
            total_cols.append(f"(SELECT coalesce(sum(d.{col}_t), 0)::bigint FROM d)")
    return (f"WITH c AS (\n  SELECT {key} AS key, {bucket} AS b, {', '.join(sums)}\n"
            f"  FROM reporting.{cells_table} cf\n  WHERE {cells_where}\n  GROUP BY 1, 2),\n"
            f"d AS (\n  SELECT {key} AS key, {bucket} AS b, {', '.join(cases)}\n"
            f"  FROM reporting.{days_table} cf\n  WHERE {days_where}\n  GROUP BY 1, 2)\n"
            f"SELECT {part} AS key, 0 AS g,\n  " + ",\n  ".join(group_cols) + "\n"
            # the keys may be NULL (no grid, say): joined on what a hash can compare
            "FROM c LEFT JOIN d ON coalesce(d.key, '') = coalesce(c.key, '') AND (d.key IS NULL) = (c.key IS NULL)"
            " AND d.b = c.b\n"
            "WHERE c.events > 0\n"
            "UNION ALL\n"
            "SELECT NULL, 1,\n  " + ",\n  ".join(total_cols) + "\nFROM c")


def _rungs(name: str) -> tuple[str | None, ...]:
    """``None`` (all rungs), and each rung for a figure given per rung."""
    return (None, *(MEDIATION_LEVELS if STEP_RULES[name].rung is not None else ()))


def _per_rung(name: str, rung: str | None) -> tuple[str, str]:
    """The column of ``name`` on ``rung`` (all rungs: ``None``) and the filter that keeps its cells."""
    return (f"{name}_{rung}", f" FILTER (WHERE cf.rung = '{rung}')") if rung else (name, "")


def coarse_enough(flt: CaseFilter, group_by: str | None) -> bool:
    """Whether ``step_day_cells`` can answer: no place or category filter, and no grouping but by
    period or department."""
    return (flt.place_prefix is None and flt.category is None
            and (group_by is None or group_by == "department" or group_by.startswith("period:")))


def month_cuboid(flt: CaseFilter, group_by: str | None, days: Sequence[date]) -> int | None:
    """The month cuboid (services/reporting/kpis/step_cuboids.py) that answers a request the
    coarse tables cannot: every bound a month start or an open end, and a cuboid of the case
    figures' 0–3 that keeps the place, category, department or channel it groups or filters by
    (cuboids.py ``choose``); else None (the day tables answer)."""
    if not month_aligned(days):
        return None
    return choose(group_by, flt.place_prefix, flt.category, flt.department)


async def _steps_within(conn: AsyncConnection, tenant: str, spans: Sequence[tuple[datetime, datetime]]) -> bool:
    """Whether any step of ``tenant`` lies in one of ``spans`` (index ix_reporting_case_steps_tenant_at)."""
    cond = " OR ".join(f"(s.at >= :a{i} AND s.at < :b{i})" for i in range(len(spans)))
    params = {"tenant": tenant, **{f"a{i}": a for i, (a, _) in enumerate(spans)},
              **{f"b{i}": b for i, (_, b) in enumerate(spans)}}
    text, args = bind(f"SELECT EXISTS (SELECT 1 FROM reporting.case_steps s WHERE s.tenant = :tenant AND ({cond}))",
                      params)
    return bool((await conn.exec_driver_sql(text, args)).scalar())


async def cells_zone(conn: AsyncConnection, tenant: str) -> str | None:
    """The zone the tenant's step cells are computed in, ``None`` if it has none."""
    text, args = bind("SELECT timezone FROM reporting.step_cell_zones WHERE tenant = :tenant", {"tenant": tenant})
    return (await conn.exec_driver_sql(text, args)).scalar()


async def cell_rows(conn: AsyncConnection, flt: CaseFilter, group_by: str | None,
                    bounds: Sequence[datetime]) -> list[Mapping[str, Any]] | None:
    """The rows of :func:`cells_sql` for P = ``bounds``, or ``None`` when the cells cannot answer
    (:func:`day_bounds`: an inner bound that is not a local midnight, or steps of the tenant in the
    part of a day an outer bound would add; cells in another zone or none for the tenant)."""
    found = day_bounds(bounds, flt.tz)
    if found is None or await cells_zone(conn, flt.tenant) != tz_name(flt.tz):
        return None
    days, extra = found
    if extra and await _steps_within(conn, flt.tenant, extra):
        return None
    n = len(bounds) - 1
    coarse = coarse_enough(flt, group_by)
    sql = cells_sql(group_by, periods=n > 1, by_department=flt.department is not None, coarse=coarse,
                    cuboid=None if coarse else month_cuboid(flt, group_by, days))
    # records, not dicts: the caller copies each row once, leaving out its NULL figures (queries._step_rows)
    return await fetch_records(conn, sql, {**flt.sql_params(), "days": days, "d0": days[0], "dn": days[-1]})
