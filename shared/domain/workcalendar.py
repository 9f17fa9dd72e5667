"""Working-day calendar, time limits, deadlines and alert levels (pure, no I/O).

Sources:

- docs/domain.md §1.5: 12345 limits are counted in working days (WD); an extension must be requested
  before the deadline; overdue → 催办 (reminder), +5 WD → 通报 (public reprimand).
- docs/domain.md §3(d)3: the urgency table (特急 30 min / 2 h; 紧急 2 h / 24 h; 一般 1 WD / 5 WD;
  复杂 1 WD / 15 WD), "limits on a working calendar", per-type overrides from [P4].
- docs/domain.md §3(d)4: yellow at 80 % of the limit, red (automatic 督办) at 100 %, 提级督办
  (higher-level supervision) at 100 % + 5 WD.
- docs/domain.md §1.3 / §3(c): 挂账 (shelving) pauses the clock.

Chinese public holidays and adjusted working weekends (调休) come from the PyPI package
``chinese-calendar`` (module ``chinese_calendar``), which follows the State Council General
Office's yearly notice (国务院办公厅关于<year>年部分节假日安排的通知). Version 1.11.0 covers
2004–2026; its 2026 data equals the notice of 2025-11-04 (Spring Festival Feb 15–23, working
Sat Feb 14 and Sat Feb 28; National Day Oct 1–7, working Sun Sep 20 and Sat Oct 10). A date
outside the package's years raises :class:`CalendarRangeError` (dates are never guessed); a
caller may add official dates of a later year with :class:`WorkCalendar`'s ``holidays`` /
``workdays`` arguments.

Working-time model (used for every ``working_days`` limit):

- A working day is a whole local calendar day ``[00:00, 24:00)`` whose date is a working day
  (Mon–Fri unless a holiday, plus 调休 working weekends). Working time is the part of an interval
  that falls on working days, measured on the local wall clock (a DST day counts as 24 h; China
  has no DST).
- ``add_working_days(start, n)`` is the earliest instant ``t`` with ``working time(start, t) = n``
  days. A start on a working day therefore keeps its clock time (Fri 10:00 + 5 WD = next Fri
  10:00 when no holiday intervenes). A start on a non-working day counts from the next working
  day's 00:00 local, so Sat 10:00 + 1 WD = Tue 00:00 (the end of Monday).
- ``hours`` limits (特急/紧急) are natural elapsed hours: emergencies do not wait for workdays.

All datetimes must be timezone-aware (a naive one raises ``ValueError``); results are in the
given ``tz`` (default :data:`DEFAULT_TZ`, Asia/Shanghai).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

#: Default timezone of working-day arithmetic (the tenants of this calendar are in China).
DEFAULT_TZ: ZoneInfo = ZoneInfo("Asia/Shanghai")

#: Limit units: natural hours, or whole working days on the calendar.
LimitUnit = Literal["hours", "working_days"]
LIMIT_UNITS: tuple[str, ...] = ("hours", "working_days")

#: Alert levels (docs/domain.md §3(d)4 and R1's green/yellow/red lights).
AlertLevel = Literal["green", "yellow", "red"]

#: Yellow at 80 % of the limit, red at 100 % (docs/domain.md §3(d)4).
YELLOW_FRACTION = 0.8
RED_FRACTION = 1.0

#: 提级督办 (higher-level supervision) this many working days after red (docs/domain.md §3(d)4, §1.5).
HIGHER_SUPERVISION_WORKING_DAYS = 5

_log = logging.getLogger(__name__)
_DAY = timedelta(days=1)
_MIDNIGHT = time(0, 0)


class CalendarRangeError(ValueError):
    """A date lies outside the years the holiday data covers (``chinese-calendar`` 1.11.0:
    2004–2026). Upgrade the package after the State Council publishes the next year's notice, or
    pass that year's official dates to :class:`WorkCalendar`."""


class WorkCalendar:
    """Chinese working-day calendar: ``chinese-calendar`` data plus optional extra dates.

    Args:
        holidays: extra non-working dates (they win over the package data and weekdays).
        workdays: extra working dates, e.g. 调休 weekends (they win over everything else).
        extra_years: years whose weekday/weekend rule may be used for dates outside the package's
            range *because* the caller supplied that year's official ``holidays``/``workdays``;
            dates in other uncovered years raise :class:`CalendarRangeError` when ``strict``.
        strict: when False, a date in an uncovered year counts Monday–Friday as working days and
            a warning is logged once per year. The services run lenient (a deadline in a year whose
            notice is not loaded yet must not stop dispatch); tests and tools can ask for strict.
    """

    def __init__(
        self,
        holidays: Iterable[date] = (),
        workdays: Iterable[date] = (),
        extra_years: Iterable[int] = (),
        strict: bool = True,
    ) -> None:
        self.strict = strict
        self._warned: set[int] = set()
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        if self._holidays & self._workdays:
            raise ValueError("a date cannot be both an extra holiday and an extra workday")
        years = [d.year for d in chinese_calendar.holidays]
        self.first_year: int = min(years)
        self.last_year: int = max(years)
        self._extra_years = frozenset(extra_years)

    def covers(self, d: date) -> bool:
        """True if the calendar knows whether ``d`` is a working day."""
        return self.first_year <= d.year <= self.last_year or d.year in self._extra_years

    def is_working_day(self, d: date) -> bool:
        """True if ``d`` (a local calendar date) is a working day.

        Raises:
            CalendarRangeError: ``d``'s year is not covered (see :meth:`covers`).
        """
        if isinstance(d, datetime):
            d = d.date()
        if d in self._workdays:
            return True
        if d in self._holidays:
            return False
        if not self.covers(d):
            if not self.strict:
                if d.year not in self._warned:
                    self._warned.add(d.year)
                    _log.warning("no holiday data for %d: counting Monday-Friday as working days until the "
                                 "State Council notice is loaded (upgrade chinese-calendar)", d.year)
                return d.weekday() < 5
            raise CalendarRangeError(
                f"no holiday data for {d.isoformat()}: chinese-calendar covers "
                f"{self.first_year}-{self.last_year}"
            )
        if d in chinese_calendar.workdays:
            return True
        return d.weekday() < 5 and d not in chinese_calendar.holidays

    def next_working_day(self, d: date) -> date:
        """The first working day on or after ``d``. Raises :class:`CalendarRangeError`."""
        while not self.is_working_day(d):
            d += _DAY
        return d


#: The strict calendar (package data only; uncovered years raise).
STRICT_CALENDAR = WorkCalendar()

#: The default calendar: package data, Monday–Friday beyond it (logged; see ``strict``).
DEFAULT_CALENDAR = WorkCalendar(strict=False)


def _cal(calendar: WorkCalendar | None) -> WorkCalendar:
    return DEFAULT_CALENDAR if calendar is None else calendar


def _local(dt: datetime, tz: tzinfo) -> datetime:
    """``dt`` as a naive local wall-clock datetime in ``tz``. Raises ``ValueError`` if naive."""
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got {dt!r}")
    return dt.astimezone(tz).replace(tzinfo=None)


def is_working_day(d: date, calendar: WorkCalendar | None = None) -> bool:
    """True if the local date ``d`` is a working day: Mon–Fri except public holidays, plus the
    adjusted working weekends (调休), per ``chinese-calendar``.

    Raises:
        CalendarRangeError: the year is not covered by the holiday data.
    """
    return _cal(calendar).is_working_day(d)


def working_time_between(
    start: datetime, end: datetime, tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None
) -> timedelta:
    """Working time in ``[start, end)``: the part of the interval on working days (local wall
    clock in ``tz``). ``timedelta(0)`` if ``end <= start``.

    Raises:
        ValueError: a naive datetime. CalendarRangeError: an uncovered year.
    """
    cal = _cal(calendar)
    a, b = _local(start, tz), _local(end, tz)
    if b <= a:
        return timedelta(0)
    total = timedelta(0)
    d = a.date()
    while datetime.combine(d, _MIDNIGHT) < b:
        if cal.is_working_day(d):
            lo = max(a, datetime.combine(d, _MIDNIGHT))
            hi = min(b, datetime.combine(d + _DAY, _MIDNIGHT))
            if hi > lo:
                total += hi - lo
        d += _DAY
    return total


def add_working_time(
    start: datetime, amount: timedelta, tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None
) -> datetime:
    """The earliest instant ``t`` with ``working_time_between(start, t) == amount``, in ``tz``.

    ``amount == 0`` returns ``start`` (converted to ``tz``). Non-working days are skipped; a start
    on a non-working day counts from the next working day's 00:00 local.

    Raises:
        ValueError: negative ``amount`` or naive ``start``. CalendarRangeError: uncovered year.
    """
    if amount < timedelta(0):
        raise ValueError(f"working time to add must be >= 0, got {amount}")
    _local(start, tz)  # validates awareness before the cache sees it
    return _add_working_time(start, amount, tz, calendar)


@lru_cache(maxsize=4096)
def _add_working_time(start: datetime, amount: timedelta, tz: tzinfo, calendar: WorkCalendar | None) -> datetime:
    """:func:`add_working_time`, remembered: a pure function of the instant, the amount, the zone and
    the (immutable) calendar, and a batch's cases mostly start at the same instant with the same
    limits (dispatch's deadlines and timers, issue 13)."""
    local = _local(start, tz)
    if amount == timedelta(0):
        return local.replace(tzinfo=tz)
    cal = _cal(calendar)
    cursor, remaining = local, amount
    while True:
        d = cursor.date()
        day_end = datetime.combine(d + _DAY, _MIDNIGHT)
        if cal.is_working_day(d):
            available = day_end - cursor
            if remaining <= available:
                return (cursor + remaining).replace(tzinfo=tz)
            remaining -= available
        cursor = day_end


def add_working_days(
    start: datetime, n: int | float, tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None
) -> datetime:
    """``start`` plus ``n`` working days (``n >= 0``, fractions allowed: 0.8 WD = 19.2 h of
    working time), in ``tz``. See the module docstring: the clock time is kept for a start on a
    working day; a start on a non-working day counts from the next working day's 00:00 local.

    Example: Fri 2025-09-26 10:00 + 5 WD = Fri 2025-10-10 10:00: Sun 09-28 is a 调休 working
    day, Oct 1–8 are holidays (the counted days are Fri 26 from 10:00, Sun 28, Mon 29, Tue 30,
    Thu Oct 9 and Fri Oct 10 until 10:00).

    Raises:
        ValueError: ``n < 0``, not finite, or naive ``start``. CalendarRangeError: uncovered year.
    """
    if isinstance(n, bool) or not math.isfinite(n) or n < 0:
        raise ValueError(f"working days must be a finite number >= 0, got {n!r}")
    return add_working_time(start, timedelta(days=n), tz, calendar)


@dataclass(frozen=True)
class Limit:
    """A time limit: ``value`` (> 0) in ``unit``: ``"hours"`` (natural hours; 30 min = 0.5) or
    ``"working_days"`` (whole working days on the calendar). docs/domain.md §3(d)3.

    Raises:
        ValueError: unknown unit, or a value that is not a finite number > 0.
    """

    value: float
    unit: LimitUnit

    def __post_init__(self) -> None:
        if self.unit not in LIMIT_UNITS:
            raise ValueError(f"limit unit must be one of {LIMIT_UNITS}, got {self.unit!r}")
        if (isinstance(self.value, bool) or not isinstance(self.value, (int, float))
                or not math.isfinite(self.value) or self.value <= 0):
            raise ValueError(f"limit value must be a finite number > 0, got {self.value!r}")

    @classmethod
    def of_hours(cls, value: float) -> Limit:
        """A limit of ``value`` natural hours."""
        return cls(value, "hours")

    @classmethod
    def of_working_days(cls, value: float) -> Limit:
        """A limit of ``value`` working days."""
        return cls(value, "working_days")

    @property
    def is_working_days(self) -> bool:
        """True for a working-day limit."""
        return self.unit == "working_days"

    def span(self) -> timedelta:
        """The limit as a duration in its own measure: natural time for hours, working time
        (24 h per working day) for working days."""
        return timedelta(hours=self.value) if self.unit == "hours" else timedelta(days=self.value)

    def __str__(self) -> str:
        return f"{self.value:g} h" if self.unit == "hours" else f"{self.value:g} WD"


@dataclass(frozen=True)
class UrgencyLimits:
    """The respond (签收/响应) and dispose (处置) limits of one urgency."""

    respond: Limit
    dispose: Limit


#: Urgency levels (紧急程度), most urgent first (docs/domain.md §3(d)3).
URGENCIES: tuple[str, ...] = ("特急", "紧急", "一般", "复杂")

#: The urgency table of docs/domain.md §3(d)3 (a proposal anchored on [P20][P21]).
URGENCY_LIMITS: Mapping[str, UrgencyLimits] = MappingProxyType({
    "特急": UrgencyLimits(Limit.of_hours(0.5), Limit.of_hours(2)),
    "紧急": UrgencyLimits(Limit.of_hours(2), Limit.of_hours(24)),
    "一般": UrgencyLimits(Limit.of_working_days(1), Limit.of_working_days(5)),
    "复杂": UrgencyLimits(Limit.of_working_days(1), Limit.of_working_days(15)),
})

#: Urgencies whose limits are natural hours; per-category overrides do not apply to them.
EMERGENCY_URGENCIES: frozenset[str] = frozenset({"特急", "紧急"})


def limits_for(
    urgency: str,
    category_code: str | None = None,
    overrides: Mapping[str, Limit] | None = None,
) -> UrgencyLimits:
    """The respond and dispose limits of a case.

    ``overrides`` maps a category code to its own dispose limit (per-type 处置时限, docs/domain.md
    §1.1/[P4], e.g. garbage 4 h, demolition 20 WD). An override replaces the dispose limit of
    一般 and 复杂 cases only: 特急/紧急 cases keep their natural-hour limits (an emergency is not
    slowed down by a category's routine limit).

    Raises:
        ValueError: ``urgency`` is not one of :data:`URGENCIES`.
    """
    try:
        limits = URGENCY_LIMITS[urgency]
    except KeyError:
        raise ValueError(f"unknown urgency {urgency!r} (one of {', '.join(URGENCIES)})") from None
    if overrides and category_code is not None and urgency not in EMERGENCY_URGENCIES:
        override = overrides.get(category_code)
        if override is not None:
            return UrgencyLimits(limits.respond, override)
    return limits


def dispose_deadline(
    start: datetime, limit: Limit, tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None
) -> datetime:
    """The deadline of ``limit`` counted from ``start`` (any limit, also a respond limit), in
    ``tz``: ``start + hours`` for hour limits, :func:`add_working_days` for working-day limits.

    Raises:
        ValueError: naive ``start``. CalendarRangeError: uncovered year (working days only).
    """
    return _add(start, limit, limit.span(), tz, calendar)


def _add(start: datetime, limit: Limit, amount: timedelta, tz: tzinfo,
         calendar: WorkCalendar | None) -> datetime:
    if limit.is_working_days:
        return add_working_time(start, amount, tz, calendar)
    _local(start, tz)  # validates awareness
    return (start + amount).astimezone(tz)


def _measure(start: datetime, end: datetime, limit: Limit, tz: tzinfo,
             calendar: WorkCalendar | None) -> timedelta:
    if limit.is_working_days:
        return working_time_between(start, end, tz, calendar)
    _local(start, tz), _local(end, tz)
    return max(end - start, timedelta(0))


def paused_time(
    paused_from: datetime, resumed_at: datetime, limit: Limit,
    tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None,
) -> timedelta:
    """The time a 挂账 (shelving) pause stopped the clock, in the limit's own measure: working
    time for working-day limits, natural time for hour limits; ``0`` if ``resumed_at`` is not
    after ``paused_from``. Pass ``.total_seconds()`` as ``paused_seconds`` to
    :func:`elapsed_fraction`."""
    return _measure(paused_from, resumed_at, limit, tz, calendar)


def elapsed_fraction(
    start: datetime, now: datetime, limit: Limit, paused_seconds: float = 0,
    tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None,
) -> float:
    """The used share of ``limit`` at ``now`` (0.0 at ``start``, 1.0 at the deadline, may exceed
    1), never negative.

    Elapsed time is working time for working-day limits (only working-day time counts) and
    natural time for hour limits, minus ``paused_seconds`` (seconds the clock was stopped by
    挂账, in the same measure; see :func:`paused_time`).

    Raises:
        ValueError: naive datetime or negative ``paused_seconds``. CalendarRangeError.
    """
    if paused_seconds < 0:
        raise ValueError("paused_seconds must be >= 0")
    elapsed = _measure(start, now, limit, tz, calendar).total_seconds() - paused_seconds
    return max(elapsed, 0.0) / limit.span().total_seconds()


def alert_level(fraction: float) -> AlertLevel:
    """``"green"`` below 0.8, ``"yellow"`` from 0.8, ``"red"`` from 1.0 (docs/domain.md §3(d)4)."""
    if fraction >= RED_FRACTION:
        return "red"
    if fraction >= YELLOW_FRACTION:
        return "yellow"
    return "green"


def yellow_at(
    start: datetime, limit: Limit, tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None
) -> datetime:
    """When the case turns yellow: 80 % of ``limit`` after ``start`` (working or natural time,
    per the unit), without pauses or extensions."""
    return _add(start, limit, limit.span() * YELLOW_FRACTION, tz, calendar)


def red_at(
    start: datetime, limit: Limit, tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None
) -> datetime:
    """When the case turns red: 100 % of ``limit`` after ``start`` (= :func:`dispose_deadline`)."""
    return dispose_deadline(start, limit, tz, calendar)


def higher_supervision_at(
    red_time: datetime, tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None
) -> datetime:
    """When 提级督办 (higher-level supervision) and 通报 fall due: 5 working days after the red
    time (docs/domain.md §3(d)4, §1.5 "+5 WD → 通报"), whatever the limit's unit."""
    return add_working_days(red_time, HIGHER_SUPERVISION_WORKING_DAYS, tz, calendar)


def resume(
    deadline: datetime, paused_from: datetime, resumed_at: datetime, limit: Limit,
    tz: tzinfo = DEFAULT_TZ, calendar: WorkCalendar | None = None,
) -> datetime:
    """The deadline after a 挂账 (shelving) pause from ``paused_from`` to ``resumed_at``: shifted
    later by the paused time in the limit's measure, i.e. ``working_time_between(deadline,
    result) == working_time_between(paused_from, resumed_at)`` for working-day limits and
    ``result - deadline == resumed_at - paused_from`` for hour limits.

    Raises:
        ValueError: ``resumed_at`` before ``paused_from``, or a naive datetime.
        CalendarRangeError: uncovered year.
    """
    _local(resumed_at, tz), _local(paused_from, tz)  # validates awareness
    if resumed_at < paused_from:
        raise ValueError("resumed_at is before paused_from")
    return _add(deadline, limit, paused_time(paused_from, resumed_at, limit, tz, calendar), tz, calendar)
