"""Working hours of the KPIs: the working clock, in Python and as SQL.

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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from shared.domain import workcalendar
from shared.domain.workcalendar import DEFAULT_CALENDAR, DEFAULT_TZ, WorkCalendar

log = logging.getLogger("gridcase.reporting.kpis")


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


# --------------------------------------------------------------------------- the clock in SQL


def local_epoch_sql(t: str) -> str:
    """SQL: the local wall-clock time of ``t`` as seconds since 1970-01-01 00:00 (local): ``t`` +
    ``:off`` (the zone's UTC offset since ``:fixed_from``, its last change; plain arithmetic,
    cheaper), else ``t AT TIME ZONE :tz``."""
    return (f"(CASE WHEN {t} >= :fixed_from THEN date_part('epoch', {t}) + :off::int "
            f"ELSE date_part('epoch', {t} AT TIME ZONE :tz) END)")


def working_clock_sql(ls: str) -> str:
    """SQL ``W(t)`` (seconds, double precision) of :class:`WorkingClock` from ``ls``, the local
    epoch of ``t`` (:func:`local_epoch_sql`), and the parameters of :func:`working_clock_params`:
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
    tz = UTC if tz_name == "UTC" else ZoneInfo(tz_name)
    midnights = [datetime.combine(clock.d0 + timedelta(days=i), time(0), tz) for i in range(len(clock.cum))]
    final = midnights[-1].utcoffset()
    since = midnights[0]
    for i in range(len(midnights) - 1, -1, -1):
        if midnights[i].utcoffset() != final:
            since = midnights[i + 1]
            break
    return int(final.total_seconds()), since


def working_clock_params(tz: tzinfo, calendar: WorkCalendar | None = None) -> dict[str, Any]:
    """SQL parameters of :func:`working_clock_sql` for zone ``tz``: ``tz`` (name), ``off`` and ``fixed_from``
    (:func:`fixed_offset`), ``day0`` (the calendar's first day as days since 1970-01-01), ``cum`` (working seconds
    before each day, :class:`WorkingClock`) and ``wk`` (1 for a working day, else 0). Cached."""
    return _clock_params(tz_name(tz), calendar)


def working_clock_params_between(tz: tzinfo, start: datetime, end: datetime,
                                 calendar: WorkCalendar | None = None) -> dict[str, Any]:
    """:func:`working_clock_params` with the day tables cut to the local days from ``start`` to
    ``end`` (within the clock's years): ``W(t)`` is NULL outside them. For a statement that needs
    the working clock only within a known window: the whole tables hold ~14,000 days each, and
    sending them costs milliseconds per statement."""
    full = working_clock_params(tz, calendar)
    epoch = date(1970, 1, 1)
    first = max(0, (start.astimezone(tz).date() - epoch).days - full["day0"])
    last = min(len(full["cum"]), (end.astimezone(tz).date() - epoch).days - full["day0"] + 1)
    first = min(first, last) if last > 0 else 0
    return {**full, "day0": full["day0"] + first, "cum": full["cum"][first:max(first, last)],
            "wk": full["wk"][first:max(first, last)]}


@lru_cache(maxsize=64)
def _clock_params(name: str, calendar: WorkCalendar | None) -> dict[str, Any]:
    clock = working_clock(calendar)
    return {
        "tz": name, "off": fixed_offset(name, calendar)[0], "fixed_from": fixed_offset(name, calendar)[1],
        "day0": (clock.d0 - date(1970, 1, 1)).days,
        "cum": tuple(clock.cum[:-1]), "wk": tuple(1 if b > a else 0 for a, b in pairwise(clock.cum)),
    }


#: Group keys (SQL over ``cf``, a case_facts row) of each ``group_by``; period grouping and the
#: total use none. Place levels: ``left(place_code, 9/12/15)``; a code shorter than the level


def tz_name(tz: tzinfo) -> str:
    """The zone's name as PostgreSQL's ``AT TIME ZONE`` takes it (``"UTC"`` for UTC)."""
    return tz.key if isinstance(tz, ZoneInfo) else "UTC" if tz in (UTC,) else str(tz)
