"""Running the KPI statements: the KPI table of P (``GET /v1/kpis``, its exports and the work
summary), from the statements of :mod:`services.reporting.kpis.sql` (case figures and per-event
figures, merged by group key) to rows of :mod:`services.reporting.kpis.catalogue` columns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import case_facts as cf
from services.reporting.filters import CaseFilter
from services.reporting.kpis.catalogue import GROUP_BYS, KPIS
from services.reporting.kpis.clock import (
    tz_name,
    working_clock_params,
    working_clock_params_between,
)
from services.reporting.kpis.formulas import derive, table_row
from services.reporting.kpis.periods import (
    OPEN_END,
    OPEN_START,
    counts_at_period_ends,
    iso,
    period_bounds,
    period_label,
)
from services.reporting.kpis.rollup_query import rollup_figures
from services.reporting.kpis.rules import RESPONSE_WINDOW, SWEEP_REQUEST_TYPE
from services.reporting.kpis.sql import bind, kpi_sql, step_sql
from services.reporting.kpis.step_cells_sql import cell_rows
from services.reporting.labels import group_label
from shared.domain.tenants import AssessmentWeights, TenantConfig


def unpack_quantiles(raw: dict) -> dict:
    """Split the ``*_q`` percentile arrays of a result row into ``*_median`` / ``*_p90``."""
    for name in [k for k in raw if k.endswith("_q")]:
        q = raw.pop(name)
        raw[f"{name[:-2]}_median"], raw[f"{name[:-2]}_p90"] = (q[0], q[1]) if q else (None, None)
    return raw


#: Key of the total row in :func:`raw_figures`' answer to a grouped query.
TOTAL = object()

#: Sort memory for one KPI statement (the percentiles sort their inputs); ``SET LOCAL``, so it
#: ends with the caller's transaction.
WORK_MEM = "32MB"


async def raw_figures(conn: AsyncConnection, flt: CaseFilter, group_by: str | None, bounds: Sequence[datetime],
                      now: datetime, business: Sequence[str] | None = None, *,
                      use_rollups: bool = False, use_cuboids: bool = True) -> dict[Any, dict]:
    """Raw figures of P for sub-periods ``bounds`` (``n = len(bounds) − 1``): ``{TOTAL: raw, key:
    raw, …}`` for one sub-period (keys of ``group_by``), ``{TOTAL: raw, 1: raw, …, n: raw}`` for
    several. With ``business`` (illegal-business category codes), also
    :data:`~services.reporting.kpis.rules.SUMMARY_RULES`.

    From the month cuboids when they can answer (whole months, one cuboid keeping every dimension
    asked: services/reporting/kpis/cuboids.py), else by the scan of the cases: the same figures, the
    medians and p90 of the cuboids within 1 % (docs/kpis.md §10). ``use_cuboids=False``: always the
    scan. ``use_rollups``: the day cells when they can answer (kept for comparison and summed into
    the cuboids; measured slower than the scan at their key, docs/kpis.md §10)."""
    n = len(bounds) - 1
    await _session(conn)
    if use_rollups or use_cuboids:
        rolled = await rollup_figures(conn, flt, group_by, bounds, now, business, total=TOTAL, by_month=not use_rollups)
        if rolled is not None:
            return rolled
    params = _params(flt, bounds, now)
    if business is not None:
        params.update(sweep=SWEEP_REQUEST_TYPE, business=list(business))
    sql = kpi_sql(group_by, periods=n > 1, extras=business is not None)
    text, args = bind(sql, params)
    result = await conn.exec_driver_sql(text, args)
    out: dict[Any, dict] = {}
    if n == 1:
        for row in result.mappings():
            raw = unpack_quantiles(dict(row))
            key, g = raw.pop("key"), raw.pop("g")
            out[TOTAL if g == 1 or group_by is None or group_by.startswith("period:") else key] = raw
        return out
    per, tot, spans, times = (json.loads(x) if isinstance(x, str) else x for x in result.one())
    out[TOTAL] = unpack_quantiles(dict(tot or {}))
    for row in per or []:
        raw = dict(row)
        out[raw.pop("b")] = raw
    for row in times or []:
        raw = unpack_quantiles(dict(row))
        out.setdefault(raw.pop("b"), {}).update(raw)
    by_state: dict[str, list[tuple[int, int, int]]] = {}
    for row in spans or []:
        by_state.setdefault(row["m"], []).append((row["s"], row["t"], row["n"]))
    for m, rows in by_state.items():
        for k, count in enumerate(counts_at_period_ends(rows, n), start=1):
            out.setdefault(k, {})[m] = count
    return out


def _params(flt: CaseFilter, bounds: Sequence[datetime], now: datetime) -> dict[str, Any]:
    return {
        **flt.sql_params(),
        "bounds": list(bounds), "b0": bounds[0], "bn": bounds[-1], "n": len(bounds) - 1, "now": now,
        **working_clock_params(flt.tz),
    }


async def _session(conn: AsyncConnection) -> None:
    # Percentiles sort their input in memory; a custom plan per call (a generic plan cannot see
    # the period and picked slow plans in bench/kpis.py). set_config(…, true) is SET LOCAL: ends
    # with the transaction; both in one round trip.
    await conn.exec_driver_sql(f"SELECT set_config('work_mem', '{WORK_MEM}', true),"
                               " set_config('plan_cache_mode', 'force_custom_plan', true)")


async def step_figures(conn: AsyncConnection, flt: CaseFilter, group_by: str | None, bounds: Sequence[datetime],
                       now: datetime) -> dict[Any, dict]:
    """The per-event figures of P (:data:`~services.reporting.kpis.rules.STEP_RULES`) for sub-periods
    ``bounds``, keyed as :func:`raw_figures`' answer: ``{TOTAL: raw, key: raw, …}`` (for
    ``group_by=department`` the department each event counts against), ``{TOTAL: raw, 1: raw, …}``
    for several sub-periods. Figures without an event are left out (0 or ``None``)."""
    n = len(bounds) - 1
    await _session(conn)
    rows = await cell_rows(conn, flt, group_by, bounds)  # the step cells when P is made of whole local days
    if rows is not None:
        return _step_rows(rows, group_by, n)
    # the working clock is read at hand-overs in P and at their acknowledgements (RESPONSE_WINDOW)
    clock = working_clock_params_between(flt.tz, bounds[0], min(bounds[-1], OPEN_END) + RESPONSE_WINDOW)
    text, args = bind(step_sql(group_by, periods=n > 1), {**_params(flt, bounds, now), **clock})
    return _step_rows((await conn.exec_driver_sql(text, args)).mappings(), group_by, n)


def _step_rows(rows, group_by: str | None, n: int) -> dict[Any, dict]:
    """The rows of the step statement (or of the step cells) keyed as :func:`step_figures` answers."""
    out: dict[Any, dict] = {}
    for row in rows:
        raw = {k: v for k, v in row.items() if v is not None}
        key, g = raw.pop("key", None), raw.pop("g")
        out[TOTAL if g == 1 or (n == 1 and (group_by is None or group_by.startswith("period:"))) else key] = raw
    return out


def _merge(into: dict[Any, dict], more: dict[Any, dict]) -> dict[Any, dict]:
    """The per-event figures ``more`` added to the case figures ``into``, key by key."""
    for key, figures in more.items():
        into.setdefault(key, {}).update(figures)
    return into


async def query_kpis(conn: AsyncConnection, flt: CaseFilter, group_by: str | None = None, *,
                     tenant: TenantConfig | None = None, taxonomy=None, now: datetime | None = None) -> dict:
    """The KPI table of P.

    Returns ``{"tenant", "group_by", "start", "end", "timezone", "weights", "columns": [{name, zh,
    en, label, unit}], "total": row, "rows": [row, …]}``; a row is ``{"key", "label", "start"?, "end"?,
    <every KPI of KPIS>}`` (counts int, rates share 0–1 or None, times hours float or None).
    Period rows come in time order with their bounds; other rows by 受理量 descending, then key.
    Labels: zh-CN first, English beside (places from ``tenant``, categories and departments from
    ``taxonomy``). ``now`` (default: the current time) decides which deadlines have passed. The
    composite score weighs with ``tenant``'s ``assessment_weights`` (the answer's ``weights``).

    Raises:
        ValueError: unknown ``group_by``; ``period:*`` with a range of more than
            :data:`~services.reporting.kpis.periods.MAX_BUCKETS` sub-periods.
    """
    if group_by is not None and group_by not in GROUP_BYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")
    result, _ = await kpi_table(conn, flt, group_by, tenant=tenant, taxonomy=taxonomy, now=now)
    return result


async def kpi_table(conn: AsyncConnection, flt: CaseFilter, group_by: str | None, *, tenant: TenantConfig | None,
                    taxonomy, now: datetime | None, business: Sequence[str] | None = None) -> tuple[dict, dict]:
    """:func:`query_kpis`' answer for a known ``group_by``, and the raw figures of its total row
    (with ``business``, also those of :data:`~services.reporting.kpis.rules.SUMMARY_RULES`)."""
    now = now or datetime.now(UTC)
    weights = tenant.assessment_weights if tenant is not None else AssessmentWeights()
    rows: list[dict] = []
    if group_by and group_by.startswith("period:"):
        unit = group_by.split(":", 1)[1]
        start, end = flt.start, flt.end
        if start is None or end is None:  # P from the first report to now
            first, last = await data_range(conn, flt.tenant)
            start = start or first or now
            end = end or max(now, last or now) + timedelta(microseconds=1)
            if end <= start:
                end = start + timedelta(days=1)
        bounds = period_bounds(start, end, unit, flt.tz)
        raw = _merge(await raw_figures(conn, flt, None, bounds, now, business),
                     await step_figures(conn, flt, None, bounds, now))
        if len(bounds) == 2:  # a single sub-period: it is all of P
            raw[1] = raw[TOTAL]
        for k in range(1, len(bounds)):
            key, label = period_label(bounds[k - 1], unit, flt.tz)
            rows.append({"key": key, "label": label, "start": iso(bounds[k - 1]), "end": iso(bounds[k]),
                         **derive(raw.get(k, {}), weights)})
    else:
        bounds = [flt.start or OPEN_START, flt.end or OPEN_END]
        raw = _merge(await raw_figures(conn, flt, group_by, bounds, now, business),
                     await step_figures(conn, flt, group_by, bounds, now))
        rows = [table_row(key, group_label(group_by, key, tenant, taxonomy), values, weights)
                for key, values in raw.items() if key is not TOTAL]
        rows.sort(key=lambda r: (-r["accepted"], -r["in_progress"], r["key"] is None, str(r["key"])))
    total_raw = raw.get(TOTAL, {})
    total = table_row(None, "合计 total", total_raw, weights)
    return {
        "tenant": flt.tenant, "group_by": group_by, "start": iso(flt.start), "end": iso(flt.end),
        "timezone": tz_name(flt.tz), "weights": weights.as_dict(),
        "columns": [{"name": k.name, "zh": k.zh, "en": k.en, "label": k.label, "unit": k.unit} for k in KPIS],
        "total": total, "rows": rows,
    }, total_raw


async def data_range(conn: AsyncConnection, tenant: str) -> tuple[datetime | None, datetime | None]:
    """``(first report, last report or closure)`` of ``tenant``'s cases, or ``(None, None)``."""
    q = sa.select(sa.func.min(cf.c.reported_at), sa.func.max(sa.func.greatest(cf.c.reported_at, cf.c.closed_at))).where(
        cf.c.tenant == tenant, cf.c.reported_at.is_not(None))
    first, last = (await conn.execute(q)).one()
    return first, last
