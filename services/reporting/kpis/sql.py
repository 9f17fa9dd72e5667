"""The two SQL statements of a KPI query, assembled from the rules of
:mod:`services.reporting.kpis.rules` — the case figures (:func:`kpi_sql`) and the per-event
figures (:func:`step_sql`) — and :func:`bind` for asyncpg.

Cost
----
Two SQL statements per request. The candidates of P (cases alive at some moment of P) are one
range of the index ``ix_reporting_case_facts_tenant_lifetime`` (services/reporting/db.py); each
per-case column is computed once (subqueries fenced with ``OFFSET 0``); the counts are
``FILTER`` aggregates, the times ``percentile_cont`` (one sort per statistic); grouped tables get
their total from the same pass (``GROUPING SETS``). The step statement reads the steps of the
cases with a step in P (index ``ix_reporting_case_steps_tenant_at``), each once. Figures:
bench/kpis.py; what the same case rules cost at best in PostgreSQL (precomputed per-case values,
index-only scans): bench/kpi_floor.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.filters import (
    COUNTED_SQL,
    FILTER_SQL,
    SCOPE_SQL,
    department_sql,
)
from services.reporting.kpis.catalogue import GROUP_BYS
from services.reporting.kpis.clock import local_epoch_sql
from services.reporting.kpis.rules import (
    CASE_COLUMNS,
    DUPLICATE_RULES,
    EVENT_RULES,
    GROUP_KEYS,
    HANDLING_STATES,
    OPENING_ACTIONS,
    STATE_RULES,
    STEP_RULES,
    SUMMARY_RULES,
    TIME_RULES,
)
from shared.contract.actions import MEDIATION_LEVELS
from shared.domain.workcalendar import URGENCIES

_BUCKETS = ("rb", "cb", "db", "pb", "ab", "sb", "fb")


#: case_facts columns the per-case row reads.
_FACT_COLUMNS = ("place_code", "category_code", "department", "channel", "request_type", "reported_at", "closed",
                 "closed_at", "final_closed_at", "deadline", "state", "dispatched_at", "target_kind",
                 "acknowledged_at", "resolved_at", "transfer_count", "return_count", "rework_count",
                 "supervision_level", "outcome")

#: The times converted to local epochs (``l_<name>``) for the working clock (SQL over ``cf``).
LOCAL_EPOCHS = {"reported": "cf.reported_at", "closed": "cf.closed_at",
           "final_closed": "coalesce(cf.final_closed_at, cf.closed_at)", "dispatched": "cf.dispatched_at",
           "acknowledged": "cf.acknowledged_at"}


def _cases_cte(key: str, materialized: bool = False) -> str:
    # Two levels, each with OFFSET 0 so the planner does not pull it up (which would copy every
    # expression into each aggregate that mentions it): the inner one selects the candidates and
    # their local epochs, the outer one computes each per-case column once.
    inner_cols = ", ".join(f"cf.{c}" for c in _FACT_COLUMNS)
    epochs = ", ".join(f"{local_epoch_sql(expr)} AS l_{name}" for name, expr in LOCAL_EPOCHS.items())
    cols = ",\n         ".join(
        f"{CASE_COLUMNS[name]} AS {name}"
        for name in ("filed", "close_t", *_BUCKETS, "ob", "shelved", "close_h", "close_wh", "final_close_h",
                     "final_close_wh", "ack_h", "ack_wh"))
    # the universe's cases (``counted``: every rule but DUPLICATE_RULES counts only those) and the
    # merged duplicates (``merged_duplicate``: DUPLICATE_RULES count only those)
    universe, merged = CASE_COLUMNS["universe"], CASE_COLUMNS["merged_duplicate"]
    return (f"WITH c AS {'MATERIALIZED ' if materialized else ''}(\n"
            f"  SELECT {key} AS key, cf.deadline, cf.transfer_count, cf.return_count, cf.rework_count,\n"
            f"         cf.supervision_level, cf.request_type, cf.category_code, cf.outcome,\n"
            f"         cf.counted, cf.merged_duplicate,\n         {cols}\n"
            f"  FROM (SELECT {inner_cols},\n          {epochs},\n"
            f"          {universe} AS counted, {merged} AS merged_duplicate\n        FROM reporting.case_facts cf\n"
            f"        WHERE {FILTER_SQL}\n          AND ({universe} OR {merged})\n"
            f"          AND {CASE_COLUMNS['candidate']}\n        OFFSET 0) AS cf\n"
            f"  OFFSET 0\n)\n")


def _time_measures(prefix: str, flt: str) -> list[str]:
    hours, work, _ = TIME_RULES[prefix]
    out = [f"count({hours}) {flt} AS {prefix}_n"]
    for col, stem in ((hours, f"{prefix}_hours"), (work, f"{prefix}_working_hours")):
        out.append(f"avg({col}) {flt} AS {stem}_mean")
        out.append(f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {col}) {flt} AS {stem}_q")
    return out


def measures(lo: str, hi: str, *, states: bool, times: bool = True, extras: bool = False) -> str:
    """The aggregate list of the rules for sub-periods ``lo..hi`` (SQL expressions): every rule over
    the universe's cases (``c.counted``), :data:`~services.reporting.kpis.rules.DUPLICATE_RULES`
    over the merged duplicates (``c.merged_duplicate``)."""
    out = []
    rules = [(name, rule, "c.counted") for name, rule in {**EVENT_RULES, **(SUMMARY_RULES if extras else {})}.items()]
    rules += [(name, rule, "c.merged_duplicate") for name, rule in DUPLICATE_RULES.items()]
    for name, (agg, cond), cases in rules:
        c = f"{cases} AND {cond.format(lo=lo, hi=hi)}"
        out.append(f"count(*) FILTER (WHERE {c}) AS {name}" if agg == "count"
                   else f"sum({agg[4:]}) FILTER (WHERE {c}) AS {name}")
    if times:
        for prefix, (_, _, bucket) in TIME_RULES.items():
            out += _time_measures(prefix, f"FILTER (WHERE c.counted AND {bucket} BETWEEN {lo} AND {hi})")
    if states:
        for name, (first, stop, cond) in STATE_RULES.items():
            out.append(f"count(*) FILTER (WHERE c.counted AND {cond} AND {first} <= {hi} AND {stop} > {hi}) AS {name}")
    return ",\n  ".join(out)


def kpi_sql(group_by: str | None, periods: bool = False, extras: bool = False) -> str:
    """The one statement of a KPI query (over the per-case CTE ``c``).

    - ``periods=False`` (P as one sub-period, bounds ``[b0, bn]``): one pass over the candidates,
      rows ``(key, g, <raw figures>)``; with a ``group_by`` key of :data:`GROUP_KEYS` the groups
      and the total (``GROUPING SETS``, ``g`` = 1 on the total row). ``extras`` adds
      :data:`SUMMARY_RULES`.
    - ``periods=True`` (``n`` sub-periods): one row ``(per, tot, spans)`` of JSON: ``per`` the
      event and time figures of each sub-period ``b`` (a case takes part once in each
      sub-period holding one of its events), ``tot`` every figure of all of P (sub-periods
      1..n), ``spans`` the ``(m, s, t, n)`` spans of the state KPIs for
      :func:`~services.reporting.kpis.periods.counts_at_period_ends`. The per-case rows are
      materialised once.

    Raises:
        ValueError: unknown ``group_by``.
    """
    if periods or group_by is None or group_by.startswith("period:"):
        key = "NULL::text"
    elif group_by in GROUP_KEYS:
        key = GROUP_KEYS[group_by]
    else:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")
    if not periods:
        grouped = key != "NULL::text"
        tail = "GROUP BY GROUPING SETS ((c.key), ())" if grouped else ""
        head = "c.key, grouping(c.key) AS g" if grouped else "NULL::text AS key, 0 AS g"
        return f"{_cases_cte(key)}SELECT {head},\n  {measures('1', '1', states=True, extras=extras)}\nFROM c\n{tail}"
    # each sub-period a case has an event in, once: the i-th bucket unless an earlier one equals it
    values = ", ".join(
        "c.rb" if i == 0 else
        f"CASE WHEN {' AND '.join(f'c.{b} IS DISTINCT FROM c.{p}' for p in _BUCKETS[:i])} THEN c.{b} END"
        for i, b in enumerate(_BUCKETS))
    spans = " UNION ALL\n  ".join(
        f"SELECT '{name}' AS m, {first} AS s, {stop} AS t, count(*) AS n FROM c "
        f"WHERE c.counted AND {cond} AND {first} <= :n::int AND {stop} > {first} AND {stop} >= 2 GROUP BY 2, 3"
        for name, (first, stop, cond) in STATE_RULES.items())
    # time statistics per sub-period: grouped by their own sub-period column (a narrow sort)
    times = " UNION ALL\n  ".join(
        f"SELECT row_to_json(x) AS j FROM (SELECT {bucket} AS b, {', '.join(_time_measures(prefix, ''))} FROM c "
        f"WHERE c.counted AND {bucket} BETWEEN 1 AND :n::int GROUP BY {bucket}) AS x"
        for prefix, (_, _, bucket) in TIME_RULES.items())
    return (f"{_cases_cte(key, materialized=True)}"
            f", per AS (\n  SELECT e.b,\n  {measures('e.b', 'e.b', states=False, times=False)}\n"
            f"  FROM c CROSS JOIN LATERAL unnest(ARRAY[{values}]) AS e(b)\n  WHERE e.b BETWEEN 1 AND :n::int\n  GROUP BY e.b\n)"
            f", tot AS (\n  SELECT {measures('1', ':n::int', states=True, extras=extras)}\n  FROM c\n)"
            f", sp AS (\n  {spans}\n)"
            f", tm AS (\n  {times}\n)\n"
            "SELECT (SELECT json_agg(per) FROM per) AS per, (SELECT row_to_json(tot) FROM tot) AS tot, "
            "(SELECT json_agg(sp) FROM sp) AS spans, (SELECT json_agg(tm.j) FROM tm) AS times")


def step_sql(group_by: str | None, periods: bool = False) -> str:
    """The statement of the per-event figures (:data:`~services.reporting.kpis.rules.STEP_RULES`).

    The cases of the filter (place, category; counted, services/reporting/filters.py) with a step
    in P; their steps in sequence order (``st``), each with the department and rung before it (the
    event's own, else the previous step's) and its hold number (opening actions so far); one row per
    hold (``h``, its opening step and what followed); then one row per counted event (``ev``: the
    figure, the department it counts against, its rung, time and value). Rows ``(key, g, <figures>)``:
    ``key`` is the event's department for ``group_by=department``, the case's group key for other
    groupings, the sub-period number with ``periods``; ``g`` = 1 on the total row (all of P). The
    department filter applies to the event's department.

    Raises:
        ValueError: unknown ``group_by``.
    """
    if periods or group_by is None or group_by.startswith("period:") or group_by == "department":
        case_key = "NULL::text"
    elif group_by in GROUP_KEYS:
        case_key = GROUP_KEYS[group_by]
    else:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")
    part = "e.b" if periods else "e.dept" if group_by == "department" else "e.key"
    openers = ", ".join(f"'{a}'" for a in OPENING_ACTIONS)
    urgencies = ", ".join(f"'{u}'" for u in URGENCIES)
    handling = ", ".join(f"'{s}'" for s in HANDLING_STATES)

    def events(source: str) -> str:
        rows = ",\n      ".join(
            f"('{name}'::text, ({r.department})::text, ({r.rung or 'NULL'})::text, ({r.time or f'{source}.at'})::timestamptz, "
            f"(CASE WHEN {r.condition} THEN {r.value} END)::float8)"
            for name, r in STEP_RULES.items() if r.source == source)
        return (f"SELECT {source}.case_id, {source}.key, x.m, x.dept, x.r, x.t, x.v FROM {'st' if source == 's' else 'h'} AS {source}\n"
                f"    CROSS JOIN LATERAL (VALUES\n      {rows}) AS x(m, dept, r, t, v)\n    WHERE x.v IS NOT NULL")

    def measure(name: str, agg: str, rung: str | None = None) -> str:
        of = "count(DISTINCT e.case_id)" if agg == "cases" else f"{agg}(e.v)"
        where = f"e.m = '{name}'" + (f" AND e.r = '{rung}'" if rung else "")
        return f"{of} FILTER (WHERE {where}) AS {f'{name}_{rung}' if rung else name}"

    measures = []
    for name, r in STEP_RULES.items():
        measures.append(measure(name, r.agg))
        if r.rung is not None:
            measures += [measure(name, r.agg, rung) for rung in MEDIATION_LEVELS]
    return (
        f"WITH cs AS MATERIALIZED (\n"
        f"  SELECT cf.case_id, {case_key} AS key,\n"
        f"         CASE WHEN cf.urgency IN ({urgencies}) THEN cf.urgency ELSE '一般' END AS urgency\n"
        f"  FROM reporting.case_facts cf\n  WHERE {SCOPE_SQL}\n    AND {COUNTED_SQL}\n"
        f"    AND cf.case_id IN (SELECT s.case_id FROM reporting.case_steps s\n"
        f"                       WHERE s.tenant = :tenant AND s.at >= :b0 AND s.at < :bn)\n"
        f"), st AS MATERIALIZED (\n"
        f"  SELECT s.case_id, s.sequence, s.at, s.action, s.from_state, s.to_state, s.target_kind, s.history,\n"
        f"         s.department, coalesce(s.from_department, lag(s.department) OVER w) AS from_department,\n"
        f"         s.mediation_level, coalesce(s.from_mediation_level, lag(s.mediation_level) OVER w) AS from_rung,\n"
        f"         s.satisfaction, s.resident_resolved, cs.key, cs.urgency, s.action IN ({openers}) AS opener,\n"
        f"         count(*) FILTER (WHERE s.action IN ({openers})) OVER w AS hold\n"
        f"  FROM reporting.case_steps s JOIN cs ON cs.case_id = s.case_id\n"
        f"  WINDOW w AS (PARTITION BY s.case_id ORDER BY s.sequence)\n"
        f"), hf AS (\n"
        f"  SELECT case_id, hold, min(at) FILTER (WHERE action = 'acknowledge') AS ack_at,\n"
        f"         bool_or(action = 'return' OR (action = 'recategorize' AND from_state IN ({handling}))) AS undone,\n"
        f"         min(at) FILTER (WHERE NOT opener AND to_state IS DISTINCT FROM 'mediating') AS left_at\n"
        f"  FROM st WHERE hold > 0 GROUP BY case_id, hold\n"
        f"), h AS (\n"
        f"  SELECT o.*, hf.ack_at, hf.undone, hf.left_at,\n"
        f"         lead(o.at) OVER (PARTITION BY o.case_id ORDER BY o.hold) AS next_at\n"
        f"  FROM st o JOIN hf ON hf.case_id = o.case_id AND hf.hold = o.hold\n  WHERE o.opener\n"
        f"), ev AS (\n  {events('s')}\n  UNION ALL\n  {events('h')}\n"
        f"), e AS (\n"
        f"  SELECT ev.*, width_bucket(ev.t, :bounds::timestamptz[]) AS b FROM ev WHERE {department_sql('ev.dept')}\n"
        f")\n"
        f"SELECT {part} AS key, grouping({part}) AS g,\n  " + ",\n  ".join(measures) + "\n"
        f"FROM e\nWHERE e.b BETWEEN 1 AND :n::int\nGROUP BY GROUPING SETS (({part}), ())"
    )


_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def bind(sql: str, params: Mapping[str, Any]) -> tuple[str, tuple]:
    """Turn ``:name`` placeholders into asyncpg's ``$1…$n`` (each name sent once, however often it
    is used; ``::type`` casts are left alone). Returns ``(sql, args)``.

    Raises:
        KeyError: a placeholder without a value.
    """
    order: dict[str, int] = {}

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name not in params:
            raise KeyError(name)
        order.setdefault(name, len(order) + 1)
        return f"${order[name]}"

    text = _PARAM.sub(repl, sql)
    return text, tuple(params[name] for name in order)


async def fetch_dicts(conn: AsyncConnection, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of ``sql`` (``:name`` placeholders, :func:`bind`) as dicts, from asyncpg's records as
    they come: a breakdown by grid returns a thousand rows of fifty or sixty figures, and
    SQLAlchemy's Row and mapping views around each cost more than the read."""
    return [dict(r) for r in await fetch_records(conn, sql, params)]


async def fetch_records(conn: AsyncConnection, sql: str, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """:func:`fetch_dicts`' rows as asyncpg's records, read-only mappings (``r[name]``,
    ``r.items()``): for a caller that reads each row once into a dict of its own."""
    text, args = bind(sql, params)
    raw = (await conn.get_raw_connection()).driver_connection
    return await raw.fetch(text, *args)
