"""Periods of the KPIs: P, its sub-periods, and which sub-period a moment falls in.

P is the half-open interval ``[start, end)`` (timezone-aware; either end may be open). A KPI row
is computed for P as a whole, or for each of P's sub-periods (``period:day|week|month``: local
calendar days, ISO weeks starting Monday, calendar months in the tenant's timezone, the first and
last clipped to P). Each case event is put in the sub-period its own time falls in (the report
in the one containing ``reported_at``, the closure in the one containing its close time, …), so
grouping by period is exact and not just "grouped by report date". "Open at the end of P"
figures (在办, open past deadline) are computed for the end of every sub-period
(:func:`counts_at_period_ends`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

#: Most sub-periods one request may ask for (e.g. 1000 days): keeps answers and queries bounded.
MAX_BUCKETS = 1000

#: Stand-ins for an open end of P (PostgreSQL ``width_bucket`` needs finite, sorted bounds).
OPEN_START = datetime(1900, 1, 1, tzinfo=UTC)
OPEN_END = datetime(9000, 1, 1, tzinfo=UTC)


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


def sub_period_index(bounds: Sequence[datetime], t: datetime) -> int:
    """Python twin of SQL ``width_bucket(t, bounds)``: 0 before ``bounds[0]``, ``k`` for
    ``bounds[k−1] ≤ t < bounds[k]``, ``len(bounds)`` at or after the last bound."""
    return bisect_right(list(bounds), t)


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


def iso(value: datetime | None) -> str | None:
    """``value`` in ISO 8601 (as the KPI answers show times), ``None`` for ``None``."""
    return value.isoformat() if value is not None else None
