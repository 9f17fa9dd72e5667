"""The KPI rollups (issue 14): what ONE case contributes to the additive cells, as the rules of
:mod:`services.reporting.kpis.rules` count it. Pure functions over a ``case_facts`` row; the fold
(services/reporting/kpis/rollup_fold.py) adds ``contributions(new) − contributions(old)`` to the
cells in the same transaction as the facts, and the readers
(services/reporting/kpis/rollup_query.py) sum cells instead of scanning the cases.

Cells
-----
A cell is ``tenant × local day (the tenant's time zone) × place_code (the full grid code) ×
category × department × channel`` (:data:`DIMS`), plus two *span* days ``lo`` / ``hi`` that are
NULL for nearly every contribution (below). Its counters (:data:`COUNTERS`) are:

- event counts, each on the local day of the moment the rule puts it in (rules.py bucket column):
  report (``rb``: accepted, filed, swept), newest closure (``cb``: closed, one per outcome,
  outcome_unrecorded, closed_on_time, closed_late), deadline (``db``: supervisions,
  supervised_cases), first dispatch to a handler (``pb``: dispatched, transferred), disposal
  (``sb``: disposed, rework);
- the sums for the means of :data:`~services.reporting.kpis.rules.TIME_RULES` on the day of their
  bucket column (``ab``, ``fb``, ``cb``): ``<prefix>_n`` the cases with the natural-hours figure,
  ``<prefix>_us`` its sum in microseconds, ``<prefix>_wn`` / ``<prefix>_wus`` the same for working
  hours (integers, so retraction and re-addition stay exact);
- the state figures are spans (below).

Why the span days: the scan counts an event of a case only if the case is a *candidate* of P
(reported before P's end, not closed before its start). For an event inside the case's life
(report ≤ t ≤ close) that follows from ``t ∈ P``; when the event lies before the report (``hi`` =
the report day: also needs ``hi < end``) or after the close (``lo`` = the close day: also needs
``lo ≥ start``), the cell keeps the day it needs. Deadlines fall outside the life often; the
others only with odd source data.

The span table
--------------
What holds from one day until the case closes: 在办 (``open_own`` / ``open_transferred``) from the
report day, 超期 open (``overdue``) from the day of the later of deadline and report (not for shelved
cases; the rule's ``deadline < now`` is applied by the reader), and 应办结's open part
(``due_open``): not shelved, not closed by the end of P (of the sub-period), the deadline in P (no
deadline: reported in P) — not additive over days. A row is keyed by ``(first day, hi, close day)``
(close day :data:`OPEN_DAY` while open; ``hi`` the report day when later than the due day). A state
at a local midnight E sums the spans with first day < E ≤ close day; ``due_open`` of a (sub-)period
sums first day in it, ``hi`` before P's end and close day ≥ its end. The rows read are those with
a close day at or after P's first end: the open cases and the recent ones, not the whole history.

Days are local calendar days of the tenant's time zone; the readers answer from the cells only
when every bound of P is a local midnight of that zone (else they scan).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, NamedTuple

from services.reporting.filters import EXCLUDED_STATES
from services.reporting.kpis.cell_columns import (  # noqa: F401
    COUNTERS,
    DIMS,
    SPAN_COUNTERS,
    TIME_PREFIXES,
)
from services.reporting.kpis.clock import WorkingClock, working_clock
from services.reporting.kpis.rules import SWEEP_REQUEST_TYPE
from services.reporting.kpis.sketch import bucket as sketch_bucket
from shared.contract.actions import OUTCOMES

_US = timedelta(microseconds=1)
_US_PER_HOUR = 3_600_000_000


class CellKey(NamedTuple):
    """A cell: tenant, local day, span days (NULL = the day itself; module docstring), dimensions."""

    tenant: str
    day: date
    lo: date | None
    hi: date | None
    place_code: str
    category_code: str | None
    department: str | None
    channel: str | None


#: The close day of a case still open (a span without end).
OPEN_DAY = date(9999, 12, 31)


class SpanKey(NamedTuple):
    """A row of the span table (module docstring): ``day`` the first day, ``close_day`` the close
    day (:data:`OPEN_DAY` while open)."""

    tenant: str
    day: date
    hi: date | None
    close_day: date | None
    place_code: str
    category_code: str | None
    department: str | None
    channel: str | None


def local_day(t: datetime, tz: tzinfo) -> date:
    """The local calendar day of ``t`` in ``tz``: the day ``d`` with midnight(d) ≤ t < midnight(d + 1),
    midnights as :func:`~services.reporting.kpis.periods.period_bounds` makes them."""
    d = t.astimezone(tz).date()
    if t < datetime.combine(d, time(0), tz):
        return d - timedelta(days=1)
    if t >= datetime.combine(d + timedelta(days=1), time(0), tz):
        return d + timedelta(days=1)
    return d


def is_local_midnight(t: datetime, tz: tzinfo) -> bool:
    """Whether ``t`` is the start of a local day in ``tz`` (a bound the cells can answer for)."""
    return datetime.combine(local_day(t, tz), time(0), tz) == t


def counted(row: Mapping[str, Any]) -> bool:
    """The KPI universe (services/reporting/filters.py ``counted``): reported, accepted, not
    rejected or cancelled."""
    return (row.get("reported_at") is not None and row.get("accepted_at") is not None
            and row.get("state") not in EXCLUDED_STATES)


def merged_duplicate(row: Mapping[str, Any]) -> bool:
    """rules.py ``CASE_COLUMNS["merged_duplicate"]``: a reported case cancelled as a duplicate
    (``merge_duplicate``): outside the universe, counted apart by its report day."""
    return row.get("reported_at") is not None and row.get("state") == "cancelled" and row.get("outcome") == "duplicate"


def close_time(row: Mapping[str, Any]) -> datetime | None:
    """rules.py ``close_t`` for a closed case (the newest closure, never before the report); None while open."""
    if not row["closed"]:
        return None
    rep = row["reported_at"]
    return max(row.get("final_closed_at") or row.get("closed_at") or rep, rep)


def _hours_pair(a: datetime | None, b: datetime | None, tz: tzinfo, clock: WorkingClock) -> tuple[int | None, int | None]:
    """(natural µs, working µs) from ``a`` to ``b`` when ``b ≥ a`` (rules.py ``*_h`` / ``*_wh``);
    working µs None outside the working clock's years."""
    if a is None or b is None or b < a:
        return None, None
    wa, wb = clock.at(a, tz), clock.at(b, tz)
    work = round((wb - wa) * 1_000_000) if wa is not None and wb is not None else None
    return (b - a) // _US, work


class SketchKey(NamedTuple):
    """A bucket of a cell's quantile sketch (services/reporting/kpis/sketch.py): the cell, the
    statistic (``<prefix>_hours`` / ``<prefix>_working_hours`` of TIME_RULES) and the bucket."""

    cell: CellKey
    stat: str
    bucket: int


def case_cells(row: Mapping[str, Any], tz: tzinfo, clock: WorkingClock | None = None
               ) -> tuple[dict[CellKey, dict[str, int]], dict[SpanKey, dict[str, int]]]:
    """The contributions of one case (a ``case_facts`` row as a mapping) to the cells and to the span
    table: ``({cell: {counter: value}}, {span: {counter: 1}})``; empty for a case outside the
    KPI universe. ``tz`` is the tenant's time zone, ``clock`` the working clock (default calendar)."""
    cells, spans, _ = contributions(row, tz, clock)
    return cells, spans


def contributions(row: Mapping[str, Any], tz: tzinfo, clock: WorkingClock | None = None
                  ) -> tuple[dict[CellKey, dict[str, int]], dict[SpanKey, dict[str, int]], dict[SketchKey, int]]:
    """:func:`case_cells` and the case's points in the quantile sketches: ``{(cell, statistic,
    bucket): 1}``, one per time figure it has, in the cell that holds the figure's count and sum."""
    cells: dict[CellKey, dict[str, int]] = {}
    spans: dict[SpanKey, dict[str, int]] = {}
    points: dict[SketchKey, int] = {}
    if not counted(row):
        if merged_duplicate(row):
            # reported in P implies alive in P (rules.py candidate): no span days needed
            key = CellKey(row["tenant"], local_day(row["reported_at"], tz), None, None, row["place_code"],
                          row.get("category_code"), row.get("department"), row.get("channel"))
            cells[key] = {"merged_duplicates": 1}
        return cells, spans, points
    clock = clock or working_clock()
    dims = (row["place_code"], row.get("category_code"), row.get("department"), row.get("channel"))
    tenant = row["tenant"]
    rep = row["reported_at"]
    rday = local_day(rep, tz)
    close_t = close_time(row)
    cday = local_day(close_t, tz) if close_t is not None else None

    def add(t: datetime | None, counters: Mapping[str, int], times: tuple | None = None) -> None:
        """Add ``counters`` to the cell of ``t``; ``times`` = (prefix, µs, working µs): also the
        sketches' points."""
        if t is None:
            return
        day = local_day(t, tz)
        hi = rday if rday > day else None
        lo = cday if cday is not None and cday < day else None
        key = CellKey(tenant, day, lo, hi, *dims)
        cell = cells.setdefault(key, {})
        for name, value in counters.items():
            if value:
                cell[name] = cell.get(name, 0) + value
        if times is not None:
            prefix, us, wus = times
            for stem, value in ((f"{prefix}_hours", us), (f"{prefix}_working_hours", wus)):
                if value is not None:
                    point = SketchKey(key, stem, sketch_bucket(value / _US_PER_HOUR))
                    points[point] = points.get(point, 0) + 1

    deadline = row.get("deadline")
    transfers = row.get("transfer_count") or 0
    # rb: 受理 / 立案 / 排查
    add(rep, {"accepted": 1, "filed": int(row.get("dispatched_at") is not None or row.get("state") == "filed"),
              "swept": int(row.get("request_type") == SWEEP_REQUEST_TYPE)})
    # cb: 办结, its outcome, on time / late, time to final close
    if close_t is not None:
        outcome = row.get("outcome")
        final = row.get("final_closed_at") or row.get("closed_at")
        us, wus = _hours_pair(rep, final, tz, clock)
        add(close_t, {"closed": 1, **({outcome: 1} if outcome in OUTCOMES else {}),
                      "outcome_unrecorded": int(outcome is None),
                      "closed_on_time": int(deadline is None or close_t <= deadline),
                      "closed_late": int(deadline is not None and close_t > deadline),
                      **_time_counters("final_close", us, wus)}, ("final_close", us, wus))
    # fb: time to first close
    first = row.get("closed_at")
    us, wus = _hours_pair(rep, first, tz, clock)
    add(first, _time_counters("close", us, wus), ("close", us, wus))
    # db: 督办
    level = row.get("supervision_level") or 0
    add(deadline, {"supervisions": level, "supervised_cases": int(level > 0)})
    # pb: first dispatch to a handler
    if row.get("target_kind") != "triage":
        add(row.get("dispatched_at"), {"dispatched": 1, "transferred": int(transfers > 0)})
    # ab: time to acknowledge
    ack = row.get("acknowledged_at")
    us, wus = _hours_pair(row.get("dispatched_at"), ack, tz, clock)
    add(ack, _time_counters("ack", us, wus), ("ack", us, wus))
    # sb: disposal
    disposed = row.get("resolved_at")
    if disposed is None and (row["closed"] or first is not None):
        disposed = max(first or rep, rep)
    add(disposed, {"disposed": 1, "rework": int((row.get("rework_count") or 0) > 0)})

    # spans from a first day to the close day (OPEN_DAY while open): 在办 from the report,
    # 超期 open from the later of deadline and report (not shelved; only if it closes after that
    # day), 应办结's open part from the due day (module docstring)
    end = cday or OPEN_DAY
    shelved = row.get("state") == "shelved"

    def span(first: date, hi: date | None, name: str) -> None:
        counters = spans.setdefault(SpanKey(tenant, first, hi, end, *dims), {})
        counters[name] = counters.get(name, 0) + 1

    span(rday, None, "open_transferred" if transfers > 0 else "open_own")
    if deadline is not None and not shelved:
        overdue_day = local_day(max(deadline, rep), tz)
        if end > overdue_day:
            span(overdue_day, None, "overdue")
    if not shelved:
        anchor = local_day(deadline, tz) if deadline is not None else rday
        span(anchor, rday if rday > anchor else None, "due_open")
    return {k: v for k, v in cells.items() if any(v.values())}, spans, points


def _time_counters(prefix: str, us: int | None, wus: int | None) -> dict[str, int]:
    out = {}
    if us is not None:
        out[f"{prefix}_n"], out[f"{prefix}_us"] = 1, us
    if wus is not None:
        out[f"{prefix}_wn"], out[f"{prefix}_wus"] = 1, wus
    return out


def deltas(pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
           tz_of: Callable[[str], tzinfo], clock: WorkingClock | None = None
           ) -> tuple[dict[CellKey, dict[str, int]], dict[SpanKey, dict[str, int]]]:
    """Σ contributions(new) − contributions(old) over ``(old, new)`` fact rows (None: no row), the
    cells left with a zero change dropped. ``tz_of(tenant)`` is the tenant's time zone."""
    cells, spans, _ = all_deltas(pairs, tz_of, clock)
    return cells, spans


def all_deltas(pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
               tz_of: Callable[[str], tzinfo], clock: WorkingClock | None = None
               ) -> tuple[dict[CellKey, dict[str, int]], dict[SpanKey, dict[str, int]], dict[SketchKey, int]]:
    """:func:`deltas` and the sketches' bucket deltas (``{(cell, statistic, bucket): ±n}``, zeros dropped)."""
    cells: dict[CellKey, dict[str, int]] = {}
    spans: dict[SpanKey, dict[str, int]] = {}
    points: dict[SketchKey, int] = {}
    for old, new in pairs:
        for row, sign in ((old, -1), (new, 1)):
            if row is None:
                continue
            c, d, p = contributions(row, tz_of(row["tenant"]), clock)
            for into, part in ((cells, c), (spans, d)):
                for key, counters in part.items():
                    acc = into.setdefault(key, {})
                    for name, value in counters.items():
                        acc[name] = acc.get(name, 0) + sign * value
            for key, n in p.items():
                points[key] = points.get(key, 0) + sign * n
    drop = lambda m: {k: v for k, v in m.items() if any(v.values())}  # noqa: E731
    return drop(cells), drop(spans), {k: v for k, v in points.items() if v}
