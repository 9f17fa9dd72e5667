"""KPIs of a period P over ``reporting.case_facts`` (domain.md §3(e)), each formula in one place.

Every figure of domain.md §3(e) "KPIs (period P)" (lines 171-186 of domain.md as of this writing)
is defined exactly once below: the per-case rule that decides whether a case counts (a SQL
fragment in :data:`EVENT_RULES` / :data:`STATE_RULES` / :data:`TIME_RULES` over the per-case
columns of :data:`CASE_COLUMNS`, all used by :func:`query_kpis`) and the arithmetic that turns
counts into rates (a pure function in the section "Formulas"). The work-summary paragraph
(seed-figures.md block A) and the CSV/XLSX exports are filled from the same rows.

Seed A check (seed-figures.md A: 办结率 67.36 % = 3644 / 5410): seed A's records are history
imports without a deadline, reported on weekdays from 2026-03-02 for 13 weeks, the closed ones
closed within that time. Over the campaign period P = [2026-03-02, 2026-06-01) +08:00 (or with P
open), 应办结 = the 3644 closed in P + the 1766 open ones, due because they have no deadline and
were reported in P = 5410 (none is shelved); 办结 = 3644; 办结率 = 3644 / 5410 = 67.36 %, which
the summary states as 67.4 %.

Period and buckets
------------------
P is the half-open interval ``[start, end)`` (timezone-aware; either end may be open). A KPI row
is computed for P as a whole, or for each of P's sub-periods (``period:day|week|month``: local
calendar days, ISO weeks starting Monday, calendar months in the tenant's timezone, the first and
last clipped to P). Each case event is put in the sub-period its own time falls in (the report
in the one containing ``reported_at``, the closure in the one containing its close time, …), so
grouping by period is exact and not just "grouped by report date". "Open at the end of P"
figures (在办, open past deadline) are computed for the end of every sub-period.

What case_facts does not have, and the rule applied instead
-----------------------------------------------------------
- 受理/立案 times: case_facts keeps no acceptance or filing time. Grid workers' reports are
  accepted and filed automatically when dispatch takes them (services/dispatch/domain.py), so
  ``reported_at`` is the time of 受理 and of 立案 for every case.
- State history: case_facts keeps the case's *current* ``state`` only. Rejected (不予受理) and
  cancelled (作废) cases, and reports still awaiting acceptance (state ``reported``), are outside
  every KPI; shelved (挂账) means "shelved now".
- Deadline: history imports (NYC, Fuzhou, seed A) carry none. A case without a deadline is due
  in the period it was reported in (the "reported" basis a work summary uses: seed-figures.md A
  states 办结率 = 3644 / 5410, closed ÷ found). It can never be late.
- Close time: a closed case whose source gave no close time (RecordedOutcome.closed_at None)
  counts as closed at its report time; a close time before the report time counts as the report
  time (a source's clock error cannot make a case close before it existed).
- 督办 records: case_facts keeps the highest supervision level (0 none, 1 督办 at red, 2 提级督办,
  services/dispatch/lifecycle.py), not each record's time. A case's records are its level (one
  per level reached; yellow warnings are not 督办) and are counted in the period of its deadline,
  the moment the red alert fires (domain.md §3(d)4).
- Transfers and returns: counted on the case (``transfer_count``, ``return_count``) and
  attributed to the period of the case's first dispatch.

Working hours
-------------
"Working hours" (工作日时长) are hours of working-day time as :mod:`shared.domain.workcalendar` defines it
(:func:`shared.domain.workcalendar.working_time_between`): the part of an interval that falls on working
days of the Chinese calendar (holidays and 调休 weekends from ``chinese-calendar``), a working day
being a whole local calendar day (24 working hours) in the tenant's timezone. SQL evaluates it
with a cumulative table (:class:`WorkingClock`): ``W(t)`` = working seconds from the calendar's
first day to ``t``, and working time between ``a`` and ``b`` = ``W(b) − W(a)``; this equals
``working_time_between`` to the second (tests/unit/test_kpis.py). The calendar is the services'
default one (:data:`shared.domain.workcalendar.DEFAULT_CALENDAR`: holiday data, Monday–Friday in years
the data does not cover yet, as dispatch counts deadlines); intervals outside the clock's years
(:func:`working_clock`) are left out of the working-hour figures.

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

import csv
import io
import json
import logging
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import LIFETIME_END
from services.reporting.db import case_facts as cf
from services.reporting.stats import label_for
from shared.domain.tenants import STANDARD_LEVEL_LENGTHS, TenantConfig
from shared.domain import workcalendar
from shared.domain.workcalendar import DEFAULT_CALENDAR, DEFAULT_TZ, WorkCalendar

log = logging.getLogger("gridcase.reporting.kpis")

# --------------------------------------------------------------------------- catalogue

#: ``group_by`` values of ``GET /v1/kpis``.
GROUP_BYS: tuple[str, ...] = (
    "period:day", "period:week", "period:month", "street", "community", "grid", "category", "department", "channel",
)

#: Place levels a KPI table can be grouped by: the cumulative code length (domain.md §3(a), shared/domain/tenants.py).
PLACE_LEVELS: Mapping[str, int] = {level: STANDARD_LEVEL_LENGTHS[level] for level in ("street", "community", "grid")}

#: Most sub-periods one request may ask for (e.g. 1000 days): keeps answers and queries bounded.
MAX_BUCKETS = 1000

#: Cases outside every KPI (their current state, see the module docstring).
EXCLUDED_STATES: tuple[str, ...] = ("reported", "rejected", "cancelled")


@dataclass(frozen=True)
class Kpi:
    """One output column: ``name`` (JSON key), ``zh`` / ``en`` labels and ``unit``: ``count``
    (cases or records), ``rate`` (share 0–1 in JSON, per cent in CSV/XLSX), ``hours`` (natural
    hours) or ``working_hours`` (hours of working-day time, module docstring)."""

    name: str
    zh: str
    en: str
    unit: str

    @property
    def label(self) -> str:
        """``"<zh> <en>"``, Chinese first (the users' language)."""
        return f"{self.zh} {self.en}"


def _times(prefix: str, zh: str, en: str) -> list[Kpi]:
    out = []
    for unit, zh_unit, en_unit in (("hours", "小时", "h"), ("working_hours", "工作小时", "working h")):
        stem = f"{prefix}_{'hours' if unit == 'hours' else 'working_hours'}"
        for stat, zh_stat, en_stat in (("mean", "平均", "mean"), ("median", "中位数", "median"), ("p90", "P90", "p90")):
            out.append(Kpi(f"{stem}_{stat}", f"{zh}{zh_stat}({zh_unit})", f"{en} {en_stat} ({en_unit})", unit))
    return out


#: Every KPI column, in output order (domain.md §3(e) order, parts beside their rate).
KPIS: tuple[Kpi, ...] = (
    Kpi("accepted", "受理量", "intake (accepted)", "count"),
    Kpi("filed", "立案数", "filed", "count"),
    Kpi("closed", "办结量", "completed", "count"),
    Kpi("due", "应办结", "due", "count"),
    Kpi("completion_rate", "办结率", "completion rate", "rate"),
    Kpi("closed_on_time", "按期办结", "completed on time", "count"),
    Kpi("on_time_rate", "按期办结率", "on-time completion rate", "rate"),
    Kpi("in_progress", "在办", "in progress (open at end)", "count"),
    Kpi("in_progress_own", "在办·未转办", "in progress (not transferred)", "count"),
    Kpi("in_progress_transferred", "在办·已转办", "in progress (transferred)", "count"),
    Kpi("overdue", "超期", "overdue", "count"),
    Kpi("overdue_open", "超期未办结", "open past deadline", "count"),
    Kpi("closed_late", "超期办结", "completed late", "count"),
    Kpi("overdue_rate", "超期率", "overdue rate", "rate"),
    Kpi("dispatched", "派遣案件", "cases dispatched", "count"),
    Kpi("transferred", "转办案件", "cases transferred", "count"),
    Kpi("transfer_rate", "转办率", "transfer rate", "rate"),
    Kpi("disposed", "处置案件", "cases disposed", "count"),
    Kpi("rework", "返工案件", "rework cases", "count"),
    Kpi("rework_rate", "返工率", "rework rate", "rate"),
    Kpi("supervisions", "督办数", "supervisions", "count"),
    Kpi("supervised_cases", "督办案件", "supervised cases", "count"),
    Kpi("dispatches", "派遣次数", "dispatches", "count"),
    Kpi("returned", "退回次数", "returns (wrong dispatch)", "count"),
    Kpi("accurate_dispatch_rate", "准确派遣率", "accurate-dispatch rate", "rate"),
    Kpi("ack_n", "签收案件", "cases acknowledged", "count"),
    *_times("ack", "签收时长", "time to acknowledge"),
    Kpi("close_n", "计时办结案件", "completed cases timed", "count"),
    *_times("close", "办结时长", "time to close"),
)
KPI_BY_NAME: Mapping[str, Kpi] = {k.name: k for k in KPIS}

#: Channel codes seen in imports and reports, labelled zh-CN first (others show as they are).
CHANNEL_LABELS: Mapping[str, str] = {
    "grid_worker": "网格员上报 grid worker",
    "phone": "电话 phone",
    "PHONE": "电话 phone",
    "web": "网站 web",
    "ONLINE": "网上 online",
    "app": "手机应用 app",
    "wechat": "微信 WeChat",
    "12345": "12345热线 12345 hotline",
}

# --------------------------------------------------------------------------- formulas


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` as a share 0–1, or ``None`` when the denominator is 0 (nothing
    to measure: a rate of an empty set is not 0 % and not 100 %)."""
    return numerator / denominator if denominator else None


def completion_rate(closed: int, due: int) -> float | None:
    """办结率 completion rate = 办结 ÷ 应办结 (domain.md §3(e) l.174 "办结率 completion rate = 办结 ÷
    应办结"; §1.3 结案率 = 结案数 / 应结案数 [R1]). Seed A: 3644 / 5410 = 0.6736 (seed-figures.md A).
    ``None`` when nothing is due."""
    return ratio(closed, due)


def on_time_rate(closed_on_time: int, due: int) -> float | None:
    """按期办结率 on-time completion rate = closed by the deadline ÷ 应办结 (domain.md §3(e)
    l.175 [R1][P9]). ``None`` when nothing is due."""
    return ratio(closed_on_time, due)


def overdue_total(open_past_deadline: int, closed_late: int) -> int:
    """超期 overdue = open past the deadline (at the end of P) + closed late (in P)
    (domain.md §3(e) l.177 "超期 overdue = open past the deadline + closed late")."""
    return open_past_deadline + closed_late


def overdue_rate(overdue: int, due: int) -> float | None:
    """超期率 overdue rate = 超期 ÷ 应办结 (domain.md §3(e) l.177). ``None`` when nothing is due."""
    return ratio(overdue, due)


def transfer_rate(transferred: int, dispatched: int) -> float | None:
    """转办率 transfer rate = cases transferred ≥ 1 time ÷ cases dispatched (domain.md §3(e) l.178;
    转办 [P22]). ``None`` when nothing was dispatched."""
    return ratio(transferred, dispatched)


def rework_rate(rework: int, disposed: int) -> float | None:
    """返工率 rework rate = rework cases ÷ disposed (resolved) cases (domain.md §3(e) l.179 [R1];
    §1.3 返工率 = 返工数/处置数 in R1's ranking service). ``None`` when nothing was disposed."""
    return ratio(rework, disposed)


def accurate_dispatch_rate(dispatches: int, returned: int) -> float | None:
    """准确派遣率 accurate-dispatch rate = dispatches not returned ÷ dispatches (domain.md §3(e) l.185;
    §1.3 派遣员 composite [R1]). ``None`` when there was no dispatch.

    Raises:
        ValueError: more returns than dispatches (impossible counts).
    """
    if returned > dispatches:
        raise ValueError(f"returned ({returned}) > dispatches ({dispatches})")
    return ratio(dispatches - returned, dispatches)


def counts_at_period_ends(spans: Iterable[tuple[int, int, int]], n: int) -> list[int]:
    """How many cases are in a condition at the end of each sub-period ``1..n``.

    ``spans`` holds ``(first, stop, count)``: ``count`` cases enter the condition in sub-period
    ``first`` (0 = before P) and leave it in sub-period ``stop`` (``n + 1`` = after P or never),
    so they are in it at the end of sub-periods ``first ≤ k < stop``. Used for 在办 (enter: the
    report, leave: the closure) and for "open past deadline" (enter: the later of report and
    deadline, leave: the closure). Returns a list of ``n`` counts (index 0 = sub-period 1).
    """
    diff = [0] * (n + 2)
    for first, stop, count in spans:
        lo, hi = max(first, 1), min(stop, n + 1)
        if lo < hi:
            diff[lo] += count
            diff[hi] -= count
    out, running = [], 0
    for k in range(1, n + 1):
        running += diff[k]
        out.append(running)
    return out


def derive(raw: Mapping[str, Any]) -> dict[str, Any]:
    """All KPI columns of one row from its raw counts (the keys :func:`query_kpis` reads: accepted,
    filed, closed, closed_on_time, closed_late, due, in_progress_own, in_progress_transferred,
    overdue_open, dispatched, transferred, dispatches, returned, disposed, rework, supervisions,
    supervised_cases, ack_n, close_n and the time statistics). Missing counts are 0, missing
    times ``None``. Rates are shares 0–1 or ``None``; counts ints; times floats (hours)."""
    g = lambda k: int(raw.get(k) or 0)  # noqa: E731
    row: dict[str, Any] = {}
    for k in KPIS:
        if k.unit == "count":
            row[k.name] = g(k.name)
        elif k.unit in ("hours", "working_hours"):
            v = raw.get(k.name)
            row[k.name] = float(v) if v is not None else None
    row["in_progress"] = row["in_progress_own"] + row["in_progress_transferred"]
    row["overdue"] = overdue_total(row["overdue_open"], row["closed_late"])
    row["completion_rate"] = completion_rate(row["closed"], row["due"])
    row["on_time_rate"] = on_time_rate(row["closed_on_time"], row["due"])
    row["overdue_rate"] = overdue_rate(row["overdue"], row["due"])
    row["transfer_rate"] = transfer_rate(row["transferred"], row["dispatched"])
    row["rework_rate"] = rework_rate(row["rework"], row["disposed"])
    row["accurate_dispatch_rate"] = accurate_dispatch_rate(row["dispatches"], row["returned"])
    return {k.name: row[k.name] for k in KPIS}


# --------------------------------------------------------------------------- working time


@dataclass(frozen=True)
class WorkingClock:
    """Cumulative working time of a :class:`~shared.domain.workcalendar.WorkCalendar`.

    ``cum[i]`` is the working seconds on days ``d0 … d0 + i − 1`` (so ``cum[0] = 0`` and
    ``cum[i + 1] − cum[i]`` is 86400 if day ``d0 + i`` is a working day, else 0), for every day of
    the calendar's covered years. ``W(t) = cum[i] + min(seconds since local midnight,
    cum[i + 1] − cum[i])`` with ``i`` the local day of ``t``; working time between ``a`` and ``b``
    is ``W(b) − W(a)`` (module docstring).
    """

    d0: date
    cum: tuple[int, ...]

    def at(self, t: datetime, tz: tzinfo = DEFAULT_TZ) -> float | None:
        """``W(t)`` in seconds, ``None`` if ``t``'s local date is outside the covered years.

        Raises:
            ValueError: ``t`` is naive.
        """
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got {t!r}")
        local = t.astimezone(tz).replace(tzinfo=None)
        i = (local.date() - self.d0).days
        if i < 0 or i + 1 >= len(self.cum):
            return None
        since_midnight = (local - datetime.combine(local.date(), time(0))).total_seconds()
        return self.cum[i] + min(since_midnight, self.cum[i + 1] - self.cum[i])


#: First year of the working clock of a lenient calendar (intake refuses reports before 1990).
CLOCK_FIRST_YEAR = 1990

#: Years after the current one the working clock of a lenient calendar spans.
CLOCK_YEARS_AHEAD = 2


@lru_cache(maxsize=4)
def working_clock(calendar: WorkCalendar | None = None) -> WorkingClock:
    """The :class:`WorkingClock` of ``calendar`` (default :data:`shared.domain.workcalendar.DEFAULT_CALENDAR`),
    built with its ``is_working_day``, so it follows the calendar's own policy. A strict calendar
    spans its covered years (``first_year``..``last_year``); a lenient one (``strict=False``,
    Monday–Friday beyond the holiday data, the services' default) spans :data:`CLOCK_FIRST_YEAR`
    to :data:`CLOCK_YEARS_AHEAD` years after the current one. Cached per calendar."""
    cal = calendar or DEFAULT_CALENDAR
    first, last = cal.first_year, cal.last_year
    if not getattr(cal, "strict", True):
        first = min(first, CLOCK_FIRST_YEAR)
        last = max(last, date.today().year + CLOCK_YEARS_AHEAD)
    d0, end = date(first, 1, 1), date(last, 12, 31)
    cum = [0]
    d = d0
    # The lenient calendar warns once per year without holiday data when it is asked about it;
    # building the whole clock asks about every year, so its warnings are held back here and one
    # line names the years instead.
    quiet = _QuietCalendarLog()
    logging.getLogger(workcalendar.__name__).addFilter(quiet)
    try:
        while d <= end:
            cum.append(cum[-1] + (86400 if cal.is_working_day(d) else 0))
            d += timedelta(days=1)
    finally:
        logging.getLogger(workcalendar.__name__).removeFilter(quiet)
    uncovered = [y for y in range(first, last + 1) if not cal.covers(date(y, 1, 1))]
    if uncovered:
        log.info("working clock %d-%d: no holiday data for %s, Monday-Friday counted as working days "
                 "(shared.domain.workcalendar lenient calendar)", first, last, _years(uncovered))
    return WorkingClock(d0, tuple(cum))


class _QuietCalendarLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "no holiday data" not in record.getMessage()


def _years(years: list[int]) -> str:
    """``[1990, 1991, 1992, 2027]`` → ``"1990-1992, 2027"``."""
    runs: list[list[int]] = []
    for y in years:
        if runs and y == runs[-1][1] + 1:
            runs[-1][1] = y
        else:
            runs.append([y, y])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def working_seconds(a: datetime, b: datetime, tz: tzinfo = DEFAULT_TZ, clock: WorkingClock | None = None) -> float | None:
    """Working time in ``[a, b)`` in seconds (0 if ``b <= a``), as ``W(b) − W(a)``: equal to
    ``shared.domain.workcalendar.working_time_between(a, b, tz, calendar).total_seconds()`` within the
    clock's years (``clock`` default: :func:`working_clock` of the default calendar); ``None``
    outside them.

    Raises:
        ValueError: a naive datetime.
    """
    clock = clock or working_clock()
    wa, wb = clock.at(a, tz), clock.at(b, tz)
    if wa is None or wb is None:
        return None
    return max(wb - wa, 0.0)


# --------------------------------------------------------------------------- periods


def period_bounds(start: datetime, end: datetime, unit: str, tz: tzinfo) -> list[datetime]:
    """Bounds ``[b0 = start, b1, …, bn = end]`` of P's sub-periods: local calendar days, ISO weeks
    (Monday 00:00) or calendar months (the 1st, 00:00) in ``tz``; the first and last are clipped
    to P. ``unit`` is ``day``, ``week`` or ``month``.

    Raises:
        ValueError: unknown unit, naive datetimes, ``end <= start``, or more than
            :data:`MAX_BUCKETS` sub-periods.
    """
    if unit not in ("day", "week", "month"):
        raise ValueError(f"period unit must be day, week or month, got {unit!r}")
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
    if end <= start:
        raise ValueError("end must be after start")
    local = start.astimezone(tz)
    d = local.date()
    if unit == "week":
        d -= timedelta(days=d.weekday())
    elif unit == "month":
        d = d.replace(day=1)
    bounds = [start]
    while True:
        if unit == "day":
            d += timedelta(days=1)
        elif unit == "week":
            d += timedelta(days=7)
        else:
            d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
        b = datetime.combine(d, time(0), tz)
        if b >= end:
            bounds.append(end)
            return bounds
        if b > start:
            bounds.append(b)
        if len(bounds) > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} sub-periods: narrow start/end or use a longer period")


def period_label(begin: datetime, unit: str, tz: tzinfo) -> tuple[str, str]:
    """``(key, label)`` of the sub-period starting at ``begin`` (local in ``tz``): day
    ``2026-03-02`` / ``2026年3月2日 2026-03-02``; week ``2026-W10`` / ``2026年第10周 2026-W10``
    (ISO week); month ``2026-03`` / ``2026年3月 2026-03``."""
    d = begin.astimezone(tz).date()
    if unit == "day":
        key = d.isoformat()
        return key, f"{d.year}年{d.month}月{d.day}日 {key}"
    if unit == "week":
        y, w, _ = d.isocalendar()
        key = f"{y}-W{w:02d}"
        return key, f"{y}年第{w}周 {key}"
    key = f"{d.year}-{d.month:02d}"
    return key, f"{d.year}年{d.month}月 {key}"


# --------------------------------------------------------------------------- SQL

#: Stand-ins for an open end of P (PostgreSQL ``width_bucket`` needs finite, sorted bounds).
OPEN_START = datetime(1900, 1, 1, tzinfo=timezone.utc)
OPEN_END = datetime(9000, 1, 1, tzinfo=timezone.utc)


def _local_epoch(t: str) -> str:
    """SQL: the local wall-clock time of ``t`` as seconds since 1970-01-01 00:00 (local): ``t`` +
    ``:off`` (the zone's UTC offset since ``:fixed_from``, its last change; plain arithmetic,
    cheaper), else ``t AT TIME ZONE :tz``."""
    return (f"(CASE WHEN {t} >= :fixed_from THEN date_part('epoch', {t}) + :off::int "
            f"ELSE date_part('epoch', {t} AT TIME ZONE :tz) END)")


def _w(ls: str) -> str:
    """SQL ``W(t)`` (seconds, double precision) of :class:`WorkingClock` from ``ls``, the local
    epoch of ``t`` (:func:`_local_epoch`), and the parameters of :func:`working_clock_params`:
    day ``floor(ls / 86400)``, ``W = cum[day] + working[day] · seconds since local midnight``;
    NULL outside the covered years."""
    day = f"floor({ls} / 86400)"
    i = f"({day}::int - :day0::int + 1)"
    return f"((:cum::bigint[])[{i}] + (:wk::int[])[{i}] * ({ls} - {day} * 86400))"


@lru_cache(maxsize=64)
def fixed_offset(tz_name: str, calendar: WorkCalendar | None = None) -> tuple[int, datetime]:
    """``(offset, since)``: the UTC offset (seconds) zone ``tz_name`` has at the end of the working
    clock's years, and the first local midnight since which it has not changed (Asia/Shanghai:
    +28800 since 1991-09-16 00:00, the day after its last summer time ended). SQL converts times from ``since``
    on by adding the offset, earlier ones with ``AT TIME ZONE``."""
    clock = working_clock(calendar)
    tz = timezone.utc if tz_name == "UTC" else ZoneInfo(tz_name)
    midnights = [datetime.combine(clock.d0 + timedelta(days=i), time(0), tz) for i in range(len(clock.cum))]
    final = midnights[-1].utcoffset()
    since = midnights[0]
    for i in range(len(midnights) - 1, -1, -1):
        if midnights[i].utcoffset() != final:
            since = midnights[i + 1]
            break
    return int(final.total_seconds()), since


def working_clock_params(tz: tzinfo, calendar: WorkCalendar | None = None) -> dict[str, Any]:
    """SQL parameters of :func:`_w` for zone ``tz``: ``tz`` (name), ``off`` and ``fixed_from``
    (:func:`fixed_offset`), ``day0`` (the calendar's first day as days since 1970-01-01), ``cum`` (working seconds
    before each day, :class:`WorkingClock`) and ``wk`` (1 for a working day, else 0). Cached."""
    return _clock_params(_tz_name(tz), calendar)


@lru_cache(maxsize=64)
def _clock_params(name: str, calendar: WorkCalendar | None) -> dict[str, Any]:
    clock = working_clock(calendar)
    return {
        "tz": name, "off": fixed_offset(name, calendar)[0], "fixed_from": fixed_offset(name, calendar)[1],
        "day0": (clock.d0 - date(1970, 1, 1)).days,
        "cum": tuple(clock.cum[:-1]), "wk": tuple(1 if b > a else 0 for a, b in zip(clock.cum, clock.cum[1:])),
    }


#: Group keys (SQL over ``cf``, a case_facts row) of each ``group_by``; period grouping and the
#: total use none. Place levels: ``left(place_code, 9/12/15)``; a code shorter than the level
#: (e.g. a district-only history record) has no key at that level (NULL, "(无 none)").
GROUP_KEYS: Mapping[str, str] = {
    **{level: f"CASE WHEN length(cf.place_code) >= {n} THEN left(cf.place_code, {n}) END" for level, n in PLACE_LEVELS.items()},
    "category": "cf.category_code",
    "department": "cf.department",
    "channel": "cf.channel",
}

#: Per-case columns (SQL over ``cf``, the case_facts row), computed once per case for P; bucket
#: numbers come from ``width_bucket(t, bounds)``: 0 = before P, ``k`` = sub-period k,
#: ``n + 1`` = after P (or never).
CASE_COLUMNS: Mapping[str, str] = {
    # Universe: cases that were accepted (受理) and are not rejected/cancelled (module docstring).
    "universe": "cf.reported_at IS NOT NULL AND (cf.state IS NULL OR cf.state NOT IN ("
                + ", ".join(f"'{state}'" for state in EXCLUDED_STATES) + "))",
    # Candidates of P: cases alive at some moment of P, i.e. reported before its end and not
    # closed before its start (every event of a case lies within its life).
    # The lifetime end (close time, or +infinity while open) is the expression of the index
    # ix_reporting_case_facts_tenant_lifetime (services/reporting/db.py): one index range.
    "candidate": f"{LIFETIME_END} >= :b0 AND cf.reported_at < :bn",
    # 受理/立案 time = report time (module docstring). 立案: the case was dispatched or waits
    # filed in the triage queue; a grid worker's 自行处置 closes an accepted case without filing
    # (domain.md §3(c) "accepted→closed by a grid worker's 自行处置").
    "rb": "width_bucket(cf.reported_at, :bounds::timestamptz[])",
    "filed": "(cf.dispatched_at IS NOT NULL OR cf.state IS NOT DISTINCT FROM 'filed')",
    # 办结: the close time (module docstring); open cases: n + 1.
    "close_t": "greatest(coalesce(cf.closed_at, cf.reported_at), cf.reported_at)",
    "cb": "CASE WHEN cf.closed THEN width_bucket(greatest(coalesce(cf.closed_at, cf.reported_at), cf.reported_at), "
          ":bounds::timestamptz[]) ELSE :n::int + 1 END",
    "db": "width_bucket(cf.deadline, :bounds::timestamptz[])",
    "shelved": "(cf.state IS NOT DISTINCT FROM 'shelved')",
    # Overdue while open from the later of report and deadline, once the deadline is before now;
    # a shelved case's clock is paused (domain.md §3(c) "挂账 pauses the clock"): never overdue.
    "ob": "CASE WHEN cf.deadline < :now AND cf.state IS DISTINCT FROM 'shelved' "
          "THEN width_bucket(greatest(cf.deadline, cf.reported_at), :bounds::timestamptz[]) ELSE :n::int + 1 END",
    # First dispatch to a handler (the triage queue is not a dispatch to a handler).
    "pb": "width_bucket(CASE WHEN cf.target_kind IS DISTINCT FROM 'triage' THEN cf.dispatched_at END, :bounds::timestamptz[])",
    "ab": "width_bucket(cf.acknowledged_at, :bounds::timestamptz[])",
    # Disposed (处置): first resolution, or the closure when the source records none (history
    # imports, 自行处置).
    "sb": "width_bucket(coalesce(cf.resolved_at, CASE WHEN cf.closed THEN greatest(coalesce(cf.closed_at, cf.reported_at), "
          "cf.reported_at) END), :bounds::timestamptz[])",
    # Time to close (stats.py rule): closed_at − reported_at over closed cases with both times and
    # closed_at ≥ reported_at; time to acknowledge (平均响应时长, domain.md §3(e)): acknowledged_at −
    # dispatched_at. Natural hours and working hours (module docstring).
    "close_h": "CASE WHEN cf.closed AND cf.closed_at >= cf.reported_at "
               "THEN date_part('epoch', cf.closed_at - cf.reported_at) / 3600.0 END",
    "close_wh": f"CASE WHEN cf.closed AND cf.closed_at >= cf.reported_at "
                f"THEN ({_w('cf.l_closed')} - {_w('cf.l_reported')}) / 3600.0 END",
    "ack_h": "CASE WHEN cf.acknowledged_at >= cf.dispatched_at "
             "THEN date_part('epoch', cf.acknowledged_at - cf.dispatched_at) / 3600.0 END",
    "ack_wh": f"CASE WHEN cf.acknowledged_at >= cf.dispatched_at "
              f"THEN ({_w('cf.l_acknowledged')} - {_w('cf.l_dispatched')}) / 3600.0 END",
}

#: The event KPIs, each defined once: ``name: (aggregate, condition)`` over the per-case row ``c``
#: for the sub-periods ``{lo}..{hi}`` (one sub-period: lo = hi; all of P: 1..n); aggregate
#: ``count`` or ``sum:<expression>``. Sources: domain.md §3(e) (line numbers as of this writing).
EVENT_RULES: Mapping[str, tuple[str, str]] = {
    # 受理量 (l.172): accepted in P (受理 time = report time).
    "accepted": ("count", "c.rb BETWEEN {lo} AND {hi}"),
    # 立案数 (l.172): of those, filed (立案 time = report time).
    "filed": ("count", "c.rb BETWEEN {lo} AND {hi} AND c.filed"),
    # 办结量 (l.172): closed in P.
    "closed": ("count", "c.cb BETWEEN {lo} AND {hi}"),
    # 按期办结 (l.175 [R1][P9]): closed in P by the deadline; no deadline = not late.
    "closed_on_time": ("count", "c.cb BETWEEN {lo} AND {hi} AND (c.deadline IS NULL OR c.close_t <= c.deadline)"),
    # 超期 part 2 (l.177): closed in P after the deadline.
    "closed_late": ("count", "c.cb BETWEEN {lo} AND {hi} AND c.close_t > c.deadline"),
    # 应办结 (l.173 [R2]): closed in P; or, minus shelved (挂账) and not closed before P, a deadline
    # in P, or no deadline and reported in P (module docstring; seed-figures.md A 办结率 =
    # 3644 / 5410).
    "due": ("count", "(c.cb BETWEEN {lo} AND {hi} OR (NOT c.shelved AND c.cb >= {lo} AND (c.db BETWEEN {lo} AND {hi} "
                     "OR (c.deadline IS NULL AND c.rb BETWEEN {lo} AND {hi}))))"),
    # 转办率 (l.178): cases first dispatched in P; transferred ≥ 1 time.
    "dispatched": ("count", "c.pb BETWEEN {lo} AND {hi}"),
    "transferred": ("count", "c.pb BETWEEN {lo} AND {hi} AND c.transfer_count > 0"),
    # 准确派遣率 (l.185): dispatches of a case = 1 + its returns (each 退回 is a wrong dispatch).
    "dispatches": ("sum:1 + c.return_count", "c.pb BETWEEN {lo} AND {hi}"),
    "returned": ("sum:c.return_count", "c.pb BETWEEN {lo} AND {hi}"),
    # 返工率 (l.179 [R1]): disposed in P; rework cases = disposed with rework_count ≥ 1.
    "disposed": ("count", "c.sb BETWEEN {lo} AND {hi}"),
    "rework": ("count", "c.sb BETWEEN {lo} AND {hi} AND c.rework_count > 0"),
    # 督办数 (l.180): a case's records = its supervision level, in the sub-period of its deadline.
    "supervisions": ("sum:c.supervision_level", "c.db BETWEEN {lo} AND {hi}"),
    "supervised_cases": ("count", "c.db BETWEEN {lo} AND {hi} AND c.supervision_level > 0"),
}

#: Time statistics: ``prefix: (hours column, working-hours column, sub-period column)``: count,
#: mean, median and p90 (PostgreSQL ``percentile_cont``, linear interpolation, as pandas
#: ``quantile``) over the cases acknowledged / closed in the sub-periods.
TIME_RULES: Mapping[str, tuple[str, str, str]] = {
    "ack": ("c.ack_h", "c.ack_wh", "c.ab"),
    "close": ("c.close_h", "c.close_wh", "c.cb"),
}

#: State KPIs at the end of a sub-period: ``name: (first, stop, condition)``: a case is in the
#: state at the end of sub-periods ``first ≤ k < stop`` (:func:`counts_at_period_ends`; at the end
#: of sub-period ``{hi}``: ``first <= hi AND stop > hi``).
#: 在办 (l.176): open at the end (reported before it, not closed by then), split by whether the
#: case was transferred (seed-figures.md A: 627 in the bureau's remit, 1139 transferred);
#: 超期 part 1 (l.177): open past the deadline at the end.
STATE_RULES: Mapping[str, tuple[str, str, str]] = {
    "in_progress_own": ("c.rb", "c.cb", "c.transfer_count = 0"),
    "in_progress_transferred": ("c.rb", "c.cb", "c.transfer_count > 0"),
    "overdue_open": ("c.ob", "c.cb", "TRUE"),
}

#: Extra counts the work summary needs (:func:`choose_wording`), same ``{lo}``/``{hi}`` form:
#: accepted cases found by sweeps, and of illegal-business categories (``:business``).
SUMMARY_RULES: Mapping[str, tuple[str, str]] = {
    "swept": ("count", "c.rb BETWEEN {lo} AND {hi} AND c.request_type = :sweep"),
    "illegal_business": ("count", "c.rb BETWEEN {lo} AND {hi} AND c.category_code = ANY(:business::text[])"),
}

_FILTERS = (
    "cf.tenant = :tenant"
    " AND (:place_prefix::text IS NULL OR starts_with(cf.place_code, :place_prefix::text))"
    " AND (:category::text IS NULL OR cf.category_code = :category::text)"
    " AND (:department::text IS NULL OR cf.department = :department::text)"
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
    epochs = ", ".join(f"{_local_epoch(f'cf.{c}_at')} AS l_{c}" for c in ("reported", "closed", "dispatched", "acknowledged"))
    cols = ",\n         ".join(
        f"{CASE_COLUMNS[name]} AS {name}"
        for name in ("filed", "close_t", *_BUCKETS, "ob", "shelved", "close_h", "close_wh", "ack_h", "ack_wh"))
    return (f"WITH c AS {'MATERIALIZED ' if materialized else ''}(\n"
            f"  SELECT {key} AS key, cf.deadline, cf.transfer_count, cf.return_count, cf.rework_count,\n"
            f"         cf.supervision_level, cf.request_type, cf.category_code,\n         {cols}\n"
            f"  FROM (SELECT {inner_cols},\n          {epochs}\n        FROM reporting.case_facts cf\n"
            f"        WHERE {_FILTERS}\n          AND {CASE_COLUMNS['universe']}\n"
            f"          AND {CASE_COLUMNS['candidate']}\n        OFFSET 0) AS cf\n"
            f"  OFFSET 0\n)\n")


def _time_measures(prefix: str, flt: str) -> list[str]:
    hours, work, _ = TIME_RULES[prefix]
    out = [f"count({hours}) {flt} AS {prefix}_n"]
    for col, stem in ((hours, f"{prefix}_hours"), (work, f"{prefix}_working_hours")):
        out.append(f"avg({col}) {flt} AS {stem}_mean")
        out.append(f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {col}) {flt} AS {stem}_q")
    return out


def _measures(lo: str, hi: str, *, states: bool, times: bool = True, extras: bool = False) -> str:
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
      :func:`counts_at_period_ends`. The per-case rows are materialised once.

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
        return f"{_cases_cte(key)}SELECT {head},\n  {_measures('1', '1', states=True, extras=extras)}\nFROM c\n{tail}"
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
            f", per AS (\n  SELECT e.b,\n  {_measures('e.b', 'e.b', states=False, times=False)}\n"
            f"  FROM c CROSS JOIN LATERAL unnest(ARRAY[{values}]) AS e(b)\n  WHERE e.b BETWEEN 1 AND :n::int\n  GROUP BY e.b\n)"
            f", tot AS (\n  SELECT {_measures('1', ':n::int', states=True, extras=extras)}\n  FROM c\n)"
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


@dataclass(frozen=True)
class KpiFilter:
    """Which cases and which period: ``tenant`` (required); P = ``[start, end)`` (aware; ``None``
    = open); optional place-code prefix, category and department; ``tz`` the tenant's timezone
    (sub-periods, working hours, labels)."""

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


def _tz_name(tz: tzinfo) -> str:
    return tz.key if isinstance(tz, ZoneInfo) else "UTC" if tz in (timezone.utc,) else str(tz)


def _unpack(raw: dict) -> dict:
    """Split the ``*_q`` percentile arrays of a result row into ``*_median`` / ``*_p90``."""
    for name in [k for k in raw if k.endswith("_q")]:
        q = raw.pop(name)
        raw[f"{name[:-2]}_median"], raw[f"{name[:-2]}_p90"] = (q[0], q[1]) if q else (None, None)
    return raw


#: Sort memory for one KPI statement (the percentiles sort their inputs); ``SET LOCAL``, so it
#: ends with the caller's transaction.
WORK_MEM = "32MB"


async def _run(conn: AsyncConnection, flt: KpiFilter, group_by: str | None, bounds: Sequence[datetime],
               now: datetime, business: Sequence[str] | None = None) -> dict[Any, dict]:
    """Raw figures of P for sub-periods ``bounds`` (``n = len(bounds) − 1``): ``{TOTAL: raw, key:
    raw, …}`` for one sub-period (keys of ``group_by``), ``{TOTAL: raw, 1: raw, …, n: raw}`` for
    several. With ``business`` (illegal-business category codes), also :data:`SUMMARY_RULES`."""
    n = len(bounds) - 1
    params = {
        "tenant": flt.tenant, "place_prefix": flt.place_prefix, "category": flt.category, "department": flt.department,
        "bounds": list(bounds), "b0": bounds[0], "bn": bounds[-1], "n": n, "now": now,
        **working_clock_params(flt.tz),
    }
    if business is not None:
        params.update(sweep=SWEEP_REQUEST_TYPE, business=list(business))
    sql = kpi_sql(group_by, periods=n > 1, extras=business is not None)
    # Percentiles sort their input in memory; a custom plan per call (a generic plan cannot see
    # the period and picked slow plans in bench/kpis.py). SET LOCAL: ends with the transaction.
    await conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
    await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    text, args = bind(sql, params)
    result = await conn.exec_driver_sql(text, args)
    out: dict[Any, dict] = {}
    if n == 1:
        for row in result.mappings():
            raw = _unpack(dict(row))
            key, g = raw.pop("key"), raw.pop("g")
            out[TOTAL if g == 1 or group_by is None or group_by.startswith("period:") else key] = raw
        return out
    per, tot, spans, times = (json.loads(x) if isinstance(x, str) else x for x in result.one())
    out[TOTAL] = _unpack(dict(tot or {}))
    for row in per or []:
        raw = dict(row)
        out[raw.pop("b")] = raw
    for row in times or []:
        raw = _unpack(dict(row))
        out.setdefault(raw.pop("b"), {}).update(raw)
    by_state: dict[str, list[tuple[int, int, int]]] = {}
    for row in spans or []:
        by_state.setdefault(row["m"], []).append((row["s"], row["t"], row["n"]))
    for m, rows in by_state.items():
        for k, count in enumerate(counts_at_period_ends(rows, n), start=1):
            out.setdefault(k, {})[m] = count
    return out


#: Key of the total row in :func:`_run`'s answer to a grouped query.
TOTAL = object()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def query_kpis(conn: AsyncConnection, flt: KpiFilter, group_by: str | None = None, *,
                     tenant: TenantConfig | None = None, taxonomy=None, now: datetime | None = None) -> dict:
    """The KPI table of P.

    Returns ``{"tenant", "group_by", "start", "end", "timezone", "columns": [{name, zh, en, label,
    unit}], "total": row, "rows": [row, …]}``; a row is ``{"key", "label", "start"?, "end"?,
    <every KPI of KPIS>}`` (counts int, rates share 0–1 or None, times hours float or None).
    Period rows come in time order with their bounds; other rows by 受理量 descending, then key.
    Labels: zh-CN first, English beside (places from ``tenant``, categories and departments from
    ``taxonomy``). ``now`` (default: the current time) decides which deadlines have passed.

    Raises:
        ValueError: unknown ``group_by``; ``period:*`` with a range of more than
            :data:`MAX_BUCKETS` sub-periods.
    """
    if group_by is not None and group_by not in GROUP_BYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")
    result, _ = await _kpis(conn, flt, group_by, tenant=tenant, taxonomy=taxonomy, now=now)
    return result


async def _kpis(conn: AsyncConnection, flt: KpiFilter, group_by: str | None, *, tenant: TenantConfig | None,
                taxonomy, now: datetime | None, business: Sequence[str] | None = None) -> tuple[dict, dict]:
    now = now or datetime.now(timezone.utc)
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
        raw = await _run(conn, flt, None, bounds, now, business)
        if len(bounds) == 2:  # a single sub-period: it is all of P
            raw[1] = raw[TOTAL]
        for k in range(1, len(bounds)):
            key, label = period_label(bounds[k - 1], unit, flt.tz)
            rows.append({"key": key, "label": label, "start": _iso(bounds[k - 1]), "end": _iso(bounds[k]),
                         **derive(raw.get(k, {}))})
    else:
        raw = await _run(conn, flt, group_by, [flt.start or OPEN_START, flt.end or OPEN_END], now, business)
        for key, values in raw.items():
            if key is not TOTAL:
                rows.append({"key": key, "label": group_label(group_by, key, tenant, taxonomy), **derive(values)})
        rows.sort(key=lambda r: (-r["accepted"], -r["in_progress"], r["key"] is None, str(r["key"])))
    total_raw = raw.get(TOTAL, {})
    total = {"key": None, "label": "合计 total", **derive(total_raw)}
    return {
        "tenant": flt.tenant, "group_by": group_by, "start": _iso(flt.start), "end": _iso(flt.end),
        "timezone": _tz_name(flt.tz),
        "columns": [{"name": k.name, "zh": k.zh, "en": k.en, "label": k.label, "unit": k.unit} for k in KPIS],
        "total": total, "rows": rows,
    }, total_raw


def group_label(group_by: str, key: Any, tenant: TenantConfig | None, taxonomy) -> str:
    """Label of a group key, zh-CN first: place names from the tenant file (``"<name_zh>
    <name_en>"``), categories and departments as :func:`services.reporting.stats.label_for`,
    channels from :data:`CHANNEL_LABELS`; the key itself when nothing better is known, ``"(无
    none)"`` for no key."""
    if key is None:
        return "(无 none)"
    if group_by in PLACE_LEVELS:
        return tenant.place_label(key) if tenant else str(key)
    if group_by in ("category", "department") and taxonomy is not None:
        return label_for(group_by, key, tenant, taxonomy)
    if group_by == "channel":
        return CHANNEL_LABELS.get(key, str(key))
    return str(key)


async def data_range(conn: AsyncConnection, tenant: str) -> tuple[datetime | None, datetime | None]:
    """``(first report, last report or closure)`` of ``tenant``'s cases, or ``(None, None)``."""
    q = sa.select(sa.func.min(cf.c.reported_at), sa.func.max(sa.func.greatest(cf.c.reported_at, cf.c.closed_at))).where(
        cf.c.tenant == tenant, cf.c.reported_at.is_not(None))
    first, last = (await conn.execute(q)).one()
    return first, last


# --------------------------------------------------------------------------- case lists

#: Largest page of a case list (``limit``), and the default.
MAX_PAGE = 500
DEFAULT_PAGE = 100


def _universe() -> sa.ColumnElement[bool]:
    return sa.and_(cf.c.reported_at.is_not(None),
                   sa.or_(cf.c.state.is_(None), cf.c.state.not_in(EXCLUDED_STATES)))


async def query_overdue(conn: AsyncConnection, tenant: str, *, now: datetime | None = None, limit: int = DEFAULT_PAGE,
                        offset: int = 0, place_prefix: str | None = None, tz: tzinfo = DEFAULT_TZ,
                        tenant_config: TenantConfig | None = None, taxonomy=None, department: str | None = None) -> dict:
    """Open cases past their deadline now (超期未办结; shelved cases excluded: their clock is
    paused), most overdue first; only those of ``department`` when given (department staff's scope).

    Returns ``{"tenant", "now", "total", "limit", "offset", "cases": [case, …]}``; a case is
    ``{"case_id", "category", "category_label", "department", "department_label", "place",
    "place_label", "deadline", "hours_overdue", "working_hours_overdue", "supervision_level",
    "state", "reported_at"}`` (hours since the deadline; working hours per the module docstring,
    ``None`` outside the calendar's years).

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_PAGE` or negative ``offset``.
    """
    now = now or datetime.now(timezone.utc)
    conds = [cf.c.tenant == tenant, _universe(), sa.not_(cf.c.closed), cf.c.deadline < now,
             cf.c.state.is_distinct_from("shelved")]
    if department is not None:
        conds.append(cf.c.department == department)
    return await _case_list(conn, tenant, conds, [cf.c.deadline, cf.c.case_id], now=now, limit=limit, offset=offset,
                            place_prefix=place_prefix, tz=tz, tenant_config=tenant_config, taxonomy=taxonomy)


async def query_supervised(conn: AsyncConnection, tenant: str, *, now: datetime | None = None,
                           limit: int = DEFAULT_PAGE, offset: int = 0, include_closed: bool = False,
                           place_prefix: str | None = None, tz: tzinfo = DEFAULT_TZ,
                           tenant_config: TenantConfig | None = None, taxonomy=None,
                           department: str | None = None) -> dict:
    """Cases under 督办 (supervision level ≥ 1: 1 督办, 2 提级督办; domain.md §3(d)4), open ones
    only unless ``include_closed``; highest level first, then earliest deadline. Same answer
    shape as :func:`query_overdue` (``hours_overdue`` is ``None`` for a case not past its
    deadline, or closed).

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_PAGE` or negative ``offset``.
    """
    now = now or datetime.now(timezone.utc)
    conds = [cf.c.tenant == tenant, _universe(), cf.c.supervision_level > 0]
    if not include_closed:
        conds.append(sa.not_(cf.c.closed))
    if department is not None:
        conds.append(cf.c.department == department)
    order = [cf.c.supervision_level.desc(), cf.c.deadline.asc().nulls_last(), cf.c.case_id]
    return await _case_list(conn, tenant, conds, order, now=now, limit=limit, offset=offset,
                            place_prefix=place_prefix, tz=tz, tenant_config=tenant_config, taxonomy=taxonomy)


async def _case_list(conn, tenant, conds, order, *, now, limit, offset, place_prefix, tz, tenant_config, taxonomy) -> dict:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    if offset < 0:
        raise ValueError("offset must be >= 0")
    if place_prefix:
        conds = [*conds, cf.c.place_code.startswith(place_prefix, autoescape=True)]
    total = (await conn.execute(sa.select(sa.func.count()).select_from(cf).where(*conds))).scalar_one()
    cols = [cf.c.case_id, cf.c.category_code, cf.c.department, cf.c.place_code, cf.c.deadline, cf.c.supervision_level,
            cf.c.state, cf.c.closed, cf.c.reported_at]
    rows = (await conn.execute(sa.select(*cols).where(*conds).order_by(*order).limit(limit).offset(offset))).all()
    clock = working_clock()
    cases = []
    for r in rows:
        late = r.deadline is not None and not r.closed and r.deadline < now
        work = working_seconds(r.deadline, now, tz, clock) if late else None
        cases.append({
            "case_id": str(r.case_id),
            "category": r.category_code,
            "category_label": group_label("category", r.category_code, tenant_config, taxonomy),
            "department": r.department,
            "department_label": group_label("department", r.department, tenant_config, taxonomy),
            "place": r.place_code,
            "place_label": tenant_config.place_label(r.place_code) if tenant_config else r.place_code,
            "deadline": _iso(r.deadline),
            "hours_overdue": round((now - r.deadline).total_seconds() / 3600, 2) if late else None,
            "working_hours_overdue": round(work / 3600, 2) if work is not None else None,
            "supervision_level": r.supervision_level,
            "state": r.state,
            "reported_at": _iso(r.reported_at),
        })
    return {"tenant": tenant, "now": now.isoformat(), "total": total, "limit": limit, "offset": offset, "cases": cases}


# --------------------------------------------------------------------------- work summary

#: request_type of cases found by grid sweeps (排查; gridcase/seeds.py, seed-figures.md A).
SWEEP_REQUEST_TYPE = "排查"

#: Categories of illegal business (非法经营): unlicensed trading (无照经营, street and shop) and
#: every 前置审批 prior-licence trade (taxonomy kind ``licence``, domain.md §3(b)).
ILLEGAL_BUSINESS_CATEGORIES: frozenset[str] = frozenset({"100501", "500101"})


@dataclass(frozen=True)
class SummaryWording:
    """The nouns of a summary: ``verb`` (排查梳理 or 受理), ``subject`` (what was found),
    ``unit`` (户 businesses or 件 cases). See :func:`choose_wording`."""

    verb: str
    subject: str
    unit: str


def choose_wording(accepted: int, swept: int, illegal_business: int) -> SummaryWording:
    """The summary's nouns, chosen by the tenant's data in P (``accepted`` cases, of which
    ``swept`` were found by grid sweeps, request_type 排查, and ``illegal_business`` are of an
    :data:`ILLEGAL_BUSINESS_CATEGORIES` category or a licence trade):

    - verb 排查梳理 (sorted out by sweeps, seed-figures.md A) when at least half the cases were
      found by sweeps, else 受理 (accepted: reports from the public, hotlines, imports);
    - subject 非法经营领域矛盾问题 and unit 户 (businesses, one case per business) when every
      case is an illegal-business case (seed-figures.md A), else 问题 with 排查梳理 / 案件 with
      受理, unit 件.
    """
    sweep = accepted > 0 and swept * 2 >= accepted
    business = accepted > 0 and illegal_business == accepted
    if business:
        return SummaryWording("排查梳理" if sweep else "受理", "非法经营领域矛盾问题", "户")
    return SummaryWording("排查梳理", "问题", "件") if sweep else SummaryWording("受理", "案件", "件")


def percent(rate: float | None, digits: int = 1) -> str:
    """A share 0–1 as ``"67.4%"`` (half away from zero, like a reader would round), ``"—"`` for None."""
    if rate is None:
        return "—"
    q = Decimal(1).scaleb(-digits)
    return f"{(Decimal(repr(rate)) * 100).quantize(q, rounding=ROUND_HALF_UP)}%"


def _hours(value: float) -> str:
    return f"{value:.1f}"


def summary_paragraph(total: Mapping[str, Any], wording: SummaryWording, *, transfer_departments: Sequence[str] = (),
                      period: str = "", place: str = "") -> str:
    """The statistics paragraph of a work summary (工作总结), in Chinese, from a KPI row.

    Template (clauses with a zero count are left out, except 已办结 and 办结率):
    ``"{period}，{place}共{verb}{subject}{受理量}{unit}，已办结{办结量}{unit}，正在办理{在办·未转办}{unit}，
    转办{departments}等部门{在办·已转办}{unit}，办结率{办结率}。"`` followed, when known, by the time to
    close (mean hours and working hours), 超期 and 督办. 正在办理 and 转办 split the cases open at
    the end of P by whether they were transferred, so 已办结 + 正在办理 + 转办 = 受理量 when every
    case of P was reported in P (seed-figures.md A: 3644 + 627 + 1139 = 5410). Seed A reads
    "共排查梳理非法经营领域矛盾问题5410户，已办结3644户，正在办理627户，转办卫生健康、文化和旅游等部门1139户，
    办结率67.4%。…".
    """
    u = wording.unit
    lead = f"{period}，" if period else ""
    parts = [f"{lead}{place}共{wording.verb}{wording.subject}{total['accepted']}{u}", f"已办结{total['closed']}{u}"]
    if total["in_progress_own"]:
        parts.append(f"正在办理{total['in_progress_own']}{u}")
    if total["in_progress_transferred"]:
        names = "、".join(transfer_departments[:2])
        to = f"{names}等部门" if len(transfer_departments) > 1 else (f"{names}" if names else "其他部门")
        parts.append(f"转办{to}{total['in_progress_transferred']}{u}")
    parts.append(f"办结率{percent(total['completion_rate'])}")
    text = "，".join(parts) + "。"
    extra = []
    if total.get("close_n") and total.get("close_hours_mean") is not None:
        clause = f"已办结案件平均办理时长{_hours(total['close_hours_mean'])}小时"
        if total.get("close_working_hours_mean") is not None:
            clause += f"（工作日时长{_hours(total['close_working_hours_mean'])}小时）"
        extra.append(clause)
    if total.get("overdue"):
        extra.append(f"超期{total['overdue']}{u}，超期率{percent(total['overdue_rate'])}")
    if total.get("supervisions"):
        extra.append(f"督办{total['supervisions']}次")
    if extra:
        text += "，".join(extra) + "。"
    return text


def period_text(start: datetime | None, end: datetime | None, tz: tzinfo) -> str:
    """``"2026年3月2日至2026年5月31日"`` for P = [start, end) in ``tz`` (the last day shown is the
    one before ``end``'s local midnight when ``end`` is a midnight); ``""`` when P is open."""
    def fmt(d: date) -> str:
        return f"{d.year}年{d.month}月{d.day}日"

    last = None
    if end is not None:
        local_end = end.astimezone(tz)
        last = local_end.date() - timedelta(days=1) if local_end.time() == time(0) else local_end.date()
    if start is not None and last is not None:
        return f"{fmt(start.astimezone(tz).date())}至{fmt(last)}"
    if start is not None:
        return f"{fmt(start.astimezone(tz).date())}以来"
    if last is not None:
        return f"截至{fmt(last)}"
    return ""


def business_categories(taxonomy=None) -> tuple[str, ...]:
    """Codes of the illegal-business categories: :data:`ILLEGAL_BUSINESS_CATEGORIES` and every
    licence trade (``8001nn``) of ``taxonomy`` (if given)."""
    licence = {c.code for c in taxonomy.categories_of_kind("licence")} if taxonomy is not None else set()
    return tuple(sorted(ILLEGAL_BUSINESS_CATEGORIES | licence))


async def work_summary(conn: AsyncConnection, flt: KpiFilter, *, tenant: TenantConfig | None = None, taxonomy=None,
                       now: datetime | None = None) -> dict:
    """The work-summary statistics of P (one KPI query, grouped by department): ``{"paragraph":
    str, "figures": KPI row, "wording": {verb, subject, unit}, "transfer_departments": [name,
    …]}``. The nouns come from :func:`choose_wording`; departments receiving the transferred open
    cases are named by their Chinese short name, most cases first (ties by code); the place
    (``flt.place_prefix``) by its Chinese name from the tenant file."""
    by_dept, raw = await _kpis(conn, flt, "department", tenant=tenant, taxonomy=taxonomy, now=now,
                               business=business_categories(taxonomy))
    total = by_dept["total"]
    ranked = sorted((r for r in by_dept["rows"] if r["in_progress_transferred"] and r["key"]),
                    key=lambda r: (-r["in_progress_transferred"], r["key"]))
    names = [_department_short(r["key"], tenant, taxonomy) for r in ranked]
    wording = choose_wording(total["accepted"], int(raw.get("swept") or 0), int(raw.get("illegal_business") or 0))
    place = ""
    if flt.place_prefix and tenant is not None:
        p = tenant.place(flt.place_prefix)
        place = p.name_zh if p is not None else flt.place_prefix
    paragraph = summary_paragraph(total, wording, transfer_departments=names,
                                  period=period_text(flt.start, flt.end, flt.tz), place=place)
    return {"paragraph": paragraph, "figures": total,
            "wording": {"verb": wording.verb, "subject": wording.subject, "unit": wording.unit},
            "transfer_departments": names}


def _department_short(code: str, tenant: TenantConfig | None, taxonomy) -> str:
    if taxonomy is not None and taxonomy.department(code) is not None:
        return taxonomy.department(code).name_zh
    local = tenant.department(code) if tenant else None
    return local.name_zh if local is not None and local.name_zh else code


# --------------------------------------------------------------------------- exports

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def sanitize_cell(value: Any) -> Any:
    """A value safe to put in a spreadsheet cell: text starting with ``= + - @`` TAB or CR gets a
    leading apostrophe, so Excel/LibreOffice show it as text and never run it as a formula (CSV
    injection, OWASP); other values unchanged (numbers stay numbers, even negative ones)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _export_value(kpi: Kpi | None, value: Any) -> Any:
    if value is None:
        return None
    if kpi is not None and kpi.unit == "rate":
        return round(value * 100, 2)
    if isinstance(value, float):
        return round(value, 2)
    return value


def export_table(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a KPI answer (:func:`query_kpis`) for CSV/XLSX: columns 分组 group
    (key), 名称 label, for period rows 开始 start / 结束 end, then every KPI with a Chinese and
    English header (rates in per cent, times in hours); the total row last. Every text cell is
    passed through :func:`sanitize_cell`."""
    period = str(result.get("group_by") or "").startswith("period:")
    header = ["分组 group", "名称 label"] + (["开始 start", "结束 end"] if period else [])
    for k in KPIS:
        suffix = {"rate": " (%)", "hours": "", "working_hours": ""}.get(k.unit, "")
        header.append(f"{k.label}{suffix}")
    rows = []
    for r in [*result["rows"], result["total"]]:
        line = [r.get("key") if r is not result["total"] else "合计 total", r["label"]]
        if period:
            line += [r.get("start"), r.get("end")]
        line += [_export_value(k, r.get(k.name)) for k in KPIS]
        rows.append([sanitize_cell(v) for v in line])
    return [sanitize_cell(h) for h in header], rows


def to_csv(result: Mapping[str, Any]) -> bytes:
    """The KPI table as CSV: UTF-8 with a byte-order mark (so Excel detects UTF-8 and shows the
    Chinese headers), CRLF line ends, text cells sanitised (:func:`sanitize_cell`)."""
    header, rows = export_table(result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def to_xlsx(result: Mapping[str, Any]) -> bytes:
    """The KPI table as an XLSX workbook (openpyxl): sheet ``KPI 指标`` with the header row bold
    and frozen, text cells sanitised and stored as text (never as formulas), a second sheet
    ``说明 about`` with tenant, period and grouping.

    Raises:
        ImportError: openpyxl is not installed.
    """
    from openpyxl import Workbook  # noqa: PLC0415
    from openpyxl.styles import Font  # noqa: PLC0415

    header, rows = export_table(result)
    wb = Workbook()
    ws = wb.active
    ws.title = "KPI 指标"
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)
    for line in ws.iter_rows(min_row=1):
        for cell in line:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    ws.freeze_panes = "C2"
    about = wb.create_sheet("说明 about")
    for item in (("租户 tenant", result.get("tenant")), ("开始 start", result.get("start")), ("结束 end", result.get("end")),
                 ("分组 group by", result.get("group_by")), ("时区 timezone", result.get("timezone"))):
        about.append([sanitize_cell(v) for v in item])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def sub_period_index(bounds: Sequence[datetime], t: datetime) -> int:
    """Python twin of SQL ``width_bucket(t, bounds)``: 0 before ``bounds[0]``, ``k`` for
    ``bounds[k−1] ≤ t < bounds[k]``, ``len(bounds)`` at or after the last bound."""
    return bisect_right(list(bounds), t)
