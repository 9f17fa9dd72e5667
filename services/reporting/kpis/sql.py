"""The one SQL statement of a KPI query, assembled from the rules of
:mod:`services.reporting.kpis.rules`, and :func:`bind` for asyncpg.

Cost
----
One SQL statement per request. The candidates of P (cases alive at some moment of P) are one
range of the index ``ix_reporting_case_facts_tenant_lifetime`` (services/reporting/db.py); each
per-case column is computed once (subqueries fenced with ``OFFSET 0``); the counts are
``FILTER`` aggregates, the times ``percentile_cont`` (one sort per statistic); grouped tables get
their total from the same pass (``GROUPING SETS``). Figures: bench/kpis.py; what the same rules
cost at best in PostgreSQL (precomputed per-case values, index-only scans): bench/kpi_floor.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from services.reporting.filters import FILTER_SQL
from services.reporting.kpis.catalogue import GROUP_BYS
from services.reporting.kpis.clock import local_epoch_sql
from services.reporting.kpis.rules import (
    CASE_COLUMNS, EVENT_RULES, GROUP_KEYS, STATE_RULES, SUMMARY_RULES, TIME_RULES,
)

_BUCKETS = ("rb", "cb", "db", "pb", "ab", "sb")


#: case_facts columns the per-case row reads.
_FACT_COLUMNS = ("place_code", "category_code", "department", "channel", "request_type", "reported_at", "closed",
                 "closed_at", "deadline", "state", "dispatched_at", "target_kind", "acknowledged_at", "resolved_at",
                 "transfer_count", "return_count", "rework_count", "supervision_level")


def _cases_cte(key: str, materialized: bool = False) -> str:
    # Two levels, each with OFFSET 0 so the planner does not pull it up (which would copy every
    # expression into each aggregate that mentions it): the inner one selects the candidates and
    # their local epochs, the outer one computes each per-case column once.
    inner_cols = ", ".join(f"cf.{c}" for c in _FACT_COLUMNS)
    epochs = ", ".join(f"{local_epoch_sql(f'cf.{c}_at')} AS l_{c}"
                       for c in ("reported", "closed", "dispatched", "acknowledged"))
    cols = ",\n         ".join(
        f"{CASE_COLUMNS[name]} AS {name}"
        for name in ("filed", "close_t", *_BUCKETS, "ob", "shelved", "close_h", "close_wh", "ack_h", "ack_wh"))
    return (f"WITH c AS {'MATERIALIZED ' if materialized else ''}(\n"
            f"  SELECT {key} AS key, cf.deadline, cf.transfer_count, cf.return_count, cf.rework_count,\n"
            f"         cf.supervision_level, cf.request_type, cf.category_code,\n         {cols}\n"
            f"  FROM (SELECT {inner_cols},\n          {epochs}\n        FROM reporting.case_facts cf\n"
            f"        WHERE {FILTER_SQL}\n          AND {CASE_COLUMNS['universe']}\n"
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
    """The aggregate list of the rules for sub-periods ``lo..hi`` (SQL expressions)."""
    out = []
    rules = {**EVENT_RULES, **(SUMMARY_RULES if extras else {})}
    for name, (agg, cond) in rules.items():
        c = cond.format(lo=lo, hi=hi)
        out.append(f"count(*) FILTER (WHERE {c}) AS {name}" if agg == "count"
                   else f"sum({agg[4:]}) FILTER (WHERE {c}) AS {name}")
    if times:
        for prefix, (_, _, bucket) in TIME_RULES.items():
            out += _time_measures(prefix, f"FILTER (WHERE {bucket} BETWEEN {lo} AND {hi})")
    if states:
        for name, (first, stop, cond) in STATE_RULES.items():
            out.append(f"count(*) FILTER (WHERE {cond} AND {first} <= {hi} AND {stop} > {hi}) AS {name}")
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
        f"WHERE {cond} AND {first} <= :n::int AND {stop} > {first} AND {stop} >= 2 GROUP BY 2, 3"
        for name, (first, stop, cond) in STATE_RULES.items())
    # time statistics per sub-period: grouped by their own sub-period column (a narrow sort)
    times = " UNION ALL\n  ".join(
        f"SELECT row_to_json(x) AS j FROM (SELECT {bucket} AS b, {', '.join(_time_measures(prefix, ''))} FROM c "
        f"WHERE {bucket} BETWEEN 1 AND :n::int GROUP BY {bucket}) AS x"
        for prefix, (_, _, bucket) in TIME_RULES.items())
    return (f"{_cases_cte(key, materialized=True)}"
            f", per AS (\n  SELECT e.b,\n  {measures('e.b', 'e.b', states=False, times=False)}\n"
            f"  FROM c CROSS JOIN LATERAL unnest(ARRAY[{values}]) AS e(b)\n  WHERE e.b BETWEEN 1 AND :n::int\n  GROUP BY e.b\n)"
            f", tot AS (\n  SELECT {measures('1', ':n::int', states=True, extras=extras)}\n  FROM c\n)"
            f", sp AS (\n  {spans}\n)"
            f", tm AS (\n  {times}\n)\n"
            "SELECT (SELECT json_agg(per) FROM per) AS per, (SELECT row_to_json(tot) FROM tot) AS tot, "
            "(SELECT json_agg(sp) FROM sp) AS spans, (SELECT json_agg(tm.j) FROM tm) AS times")


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
