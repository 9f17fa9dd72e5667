"""The KPI rollups by month (issue 14): the day cells of services/reporting/kpis/cells.py summed over
the month and over all dimensions but one or two — *cuboids* — so that the dashboard's questions
about a month, a quarter or a year read a few thousand rows instead of about one cell per case and
day. Pure functions; the fold adds these deltas beside the day cells' (rollup_fold.py), the reader
picks a cuboid (rollup_query.py).

Why: at a city's density (about 900 cases a day over 1,000 grids, 20 categories, a dozen
departments, a few channels) the day key tenant × day × grid × category × department × channel
holds about one cell per case and day, so summing cells costs what scanning the cases costs
(docs/kpis.md §10). A cuboid keeps only the dimensions a question needs:

==========  =======================  ==========================  ==============================
cuboid      place kept               other dimension kept        rows a month (city above)
==========  =======================  ==========================  ==============================
0           the full code (grid)     none                        ≤ grids (1,000)
1           community (12 digits)    category                    ≤ communities × categories
2           community                department                  ≤ communities × departments
3           community                channel                     ≤ communities × channels
4 (sketch)  none ('')                none                        1
5 (sketch)  street (9 digits)        none                        ≤ streets (10)
6 (sketch)  community                none                        ≤ communities (100)
7 (sketch)  none                     category                    ≤ categories (20)
8 (sketch)  none                     department                  ≤ departments
9 (sketch)  none                     channel                     ≤ channels
10 (days)   none ('')                none                        ≤ days (30), by day
==========  =======================  ==========================  ==============================

(times the few span-day variants below). :func:`choose` takes the smallest of the cuboids 0–3
that keeps every dimension the question groups or filters by; a question needing two (a category
filter and grouping by department, say) or a place finer than the cuboid's is answered by the scan.

The cuboids 4–9 hold only the quantile sketches (``kpi_month_sketches``): a median is not a sum,
so a slot whose sketch is one stored row reads the row's medians and p90 (its ``q``, kept by the
fold) instead of adding up hundreds of buckets per row. :func:`choose_sketch` picks, among all
ten, the smallest that keeps what the question needs: by street, the street's one row, not the sum
of its hundred community rows; without grouping, the tenant's one row.

Cuboid 10 (:data:`DAY_CUBOID`) keeps the days as they are: the tenant's figures by day, for any
period of whole local days that asks for nothing but the period (a ``period:day`` table).

Months, exactly: in the cuboids 0–9 a cell's ``day``, ``lo`` and ``hi`` (and a span's ``day``, ``hi``, ``close_day``)
become the first day of their month (:func:`month_of`; an open case's close day 9999-12-31 stays
as it is). Every comparison the readers make is of such a day with a bound that is the first day
of a month, or the open ends 0001-01-01 / 9999-12-31, and ``x ≥ b ⟺ month_of(x) ≥ b`` for such a
bound ``b``; so for a period whose bounds are all month starts (:func:`month_aligned`) the cuboids
give the day cells' figures, key for key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import NamedTuple

from services.reporting.kpis.cells import OPEN_DAY, CellKey, SketchKey, SpanKey
from shared.domain.tenants import STANDARD_LEVEL_LENGTHS

#: Length of a community's place code: the place the cuboids 1–3 and 6 keep.
COMMUNITY_LENGTH = STANDARD_LEVEL_LENGTHS["community"]
#: Length of a street's place code: the place the sketch cuboid 5 keeps.
STREET_LENGTH = STANDARD_LEVEL_LENGTHS["street"]


class Cuboid(NamedTuple):
    """What a cuboid keeps: ``place_length`` (None: the whole place code; 0: none, the row's place
    is '') and one more dimension (a column of cells.py DIMS, or None)."""

    place_length: int | None
    dim: str | None


#: The cuboids (module docstring), smallest first as :func:`choose` tries them.
CUBOIDS: Mapping[int, Cuboid] = {
    3: Cuboid(COMMUNITY_LENGTH, "channel"),
    2: Cuboid(COMMUNITY_LENGTH, "department"),
    1: Cuboid(COMMUNITY_LENGTH, "category_code"),
    0: Cuboid(None, None),
}

#: The cuboids that hold only sketches (module docstring), smallest first as
#: :func:`choose_sketch` tries them before :data:`CUBOIDS`.
SKETCH_CUBOIDS: Mapping[int, Cuboid] = {
    4: Cuboid(0, None),
    9: Cuboid(0, "channel"),
    8: Cuboid(0, "department"),
    7: Cuboid(0, "category_code"),
    5: Cuboid(STREET_LENGTH, None),
    6: Cuboid(COMMUNITY_LENGTH, None),
}

#: The tenant by day: counters, spans and sketches summed over every dimension but the tenant,
#: their days kept as they are (not months), so that it answers any period of whole local days
#: (a ``period:day`` or ``period:week`` table, a week, a day) that asks for no place, category,
#: department or channel (:func:`choose_day`).
DAY_CUBOID = 10

#: Every cuboid a sketch is kept in, in the order :func:`choose_sketch` tries them.
ALL_SKETCH_CUBOIDS: Mapping[int, Cuboid] = {**SKETCH_CUBOIDS, **CUBOIDS}

#: The dimension a grouping needs (place levels: the place).
_GROUP_DIMS: Mapping[str, str] = {"category": "category_code", "department": "department", "channel": "channel"}


class MonthCellKey(NamedTuple):
    """A row of ``reporting.kpi_month_cells`` (and of ``kpi_month_sketches``)."""

    cuboid: int
    tenant: str
    day: date
    lo: date | None
    hi: date | None
    place_code: str
    category_code: str | None
    department: str | None
    channel: str | None


class MonthSpanKey(NamedTuple):
    """A row of ``reporting.kpi_month_spans``."""

    cuboid: int
    tenant: str
    day: date
    hi: date | None
    close_day: date
    place_code: str
    category_code: str | None
    department: str | None
    channel: str | None


def month_of(d: date | None) -> date | None:
    """The first day of ``d``'s month; None and the open case's close day (9999-12-31) unchanged."""
    if d is None or d == OPEN_DAY:
        return d
    return d.replace(day=1)


def month_aligned(days: Sequence[date]) -> bool:
    """Whether every bound (local days, rollup_query.py ``bound_days``: open ends 0001-01-01 and
    9999-12-31) is the first day of a month or an open end: the cuboids can answer."""
    return all(d.day == 1 or d == OPEN_DAY for d in days)


def _plan(cuboids: Mapping[int, Cuboid]) -> tuple:
    """Per cuboid: (id, place length, keeps the category, the department, the channel)."""
    return tuple((i, c.place_length, c.dim == "category_code", c.dim == "department", c.dim == "channel")
                 for i, c in cuboids.items())


_PLAN = _plan(CUBOIDS)
_SKETCH_PLAN = _plan(SKETCH_CUBOIDS)


def projections(place: str, category: str | None, department: str | None, channel: str | None,
                plan: tuple = _PLAN) -> list[tuple]:
    """``(cuboid, place, category, department, channel)`` of each cuboid of ``plan`` for one cell's
    dimensions."""
    return [(i, place if n is None else place[:n], category if kc else None, department if kd else None,
             channel if kh else None) for i, n, kc, kd, kh in plan]


def _add(into: dict, key, counters: Mapping[str, int]) -> None:
    acc = into.get(key)
    if acc is None:
        into[key] = dict(counters)
        return
    for name, value in counters.items():
        acc[name] = acc.get(name, 0) + value


def month_deltas(cells: Mapping[CellKey, Mapping[str, int]], spans: Mapping[SpanKey, Mapping[str, int]],
                 points: Mapping[SketchKey, int]
                 ) -> tuple[dict[MonthCellKey, dict[str, int]], dict[MonthSpanKey, dict[str, int]],
                            dict[tuple[MonthCellKey, str, int], int]]:
    """The day cells' deltas (cells.py ``all_deltas``) summed into every cuboid's month rows (the
    sketch points also into the sketch-only cuboids :data:`SKETCH_CUBOIDS`); rows whose deltas
    cancel are dropped. Keys are plain tuples in :class:`MonthCellKey` / :class:`MonthSpanKey`
    field order (equal to those); sketch points are ``(month cell, statistic, bucket)``. The fold
    calls this for every batch, so it is written for speed: each cell's months and projections are
    worked out once."""
    mcells: dict = {}
    mspans: dict = {}
    mpoints: dict = {}
    seen: dict[tuple, list[tuple]] = {}  # dimensions → their projections, within this call

    def project(place, category, department, channel) -> list[tuple]:
        dims = (place, category, department, channel)
        out = seen.get(dims)
        if out is None:
            out = seen[dims] = projections(*dims)
        return out

    cell_keys: dict[CellKey, list[tuple]] = {}
    sketch_keys: dict[CellKey, list[tuple]] = {}

    def month_cells(k: CellKey) -> list[tuple]:
        out = cell_keys.get(k)
        if out is None:
            day, lo, hi = month_of(k.day), month_of(k.lo), month_of(k.hi)
            out = cell_keys[k] = [(i, k.tenant, day, lo, hi, place, cat, dept, chan)
                                  for i, place, cat, dept, chan in project(k.place_code, k.category_code,
                                                                           k.department, k.channel)]
            out.append((DAY_CUBOID, k.tenant, k.day, k.lo, k.hi, "", None, None, None))
        return out

    def month_sketches(k: CellKey) -> list[tuple]:
        out = sketch_keys.get(k)
        if out is None:
            day, lo, hi = month_of(k.day), month_of(k.lo), month_of(k.hi)
            out = sketch_keys[k] = month_cells(k) + [
                (i, k.tenant, day, lo, hi, place, cat, dept, chan)
                for i, place, cat, dept, chan in projections(k.place_code, k.category_code, k.department,
                                                              k.channel, _SKETCH_PLAN)]
        return out

    for k, counters in cells.items():
        for key in month_cells(k):
            _add(mcells, key, counters)
    for k, counters in spans.items():
        day, hi, close = month_of(k.day), month_of(k.hi), month_of(k.close_day)
        for i, place, cat, dept, chan in project(k.place_code, k.category_code, k.department, k.channel):
            _add(mspans, (i, k.tenant, day, hi, close, place, cat, dept, chan), counters)
        _add(mspans, (DAY_CUBOID, k.tenant, k.day, k.hi, k.close_day, "", None, None, None), counters)
    for p, n in points.items():
        for key in month_sketches(p.cell):
            point = (key, p.stat, p.bucket)
            mpoints[point] = mpoints.get(point, 0) + n
    drop = lambda m: {k: v for k, v in m.items() if any(v.values())}  # noqa: E731
    return drop(mcells), drop(mspans), {k: v for k, v in mpoints.items() if v}


def _needs(group_by: str | None, place_prefix: str | None, category: str | None, department: str | None,
           business: bool) -> tuple[set[str], int]:
    """The dimensions (cells.py DIMS but the place) a question groups or filters by, and the length
    of place code it needs: its prefix's or its place level's, whichever is longer
    (:data:`FULL_PLACE` for a grid grouping)."""
    need = {d for d in (_GROUP_DIMS.get(group_by or ""), "category_code" if category or business else None,
                        "department" if department else None) if d}
    lengths = [len(place_prefix)] if place_prefix is not None else []
    if group_by == "grid":
        lengths.append(FULL_PLACE)
    elif group_by in STANDARD_LEVEL_LENGTHS:
        lengths.append(STANDARD_LEVEL_LENGTHS[group_by])
    return need, max(lengths, default=0)


#: The place length that only the full code (``place_length`` None) keeps.
FULL_PLACE = 10**6


def _choose(cuboids: Mapping[int, Cuboid], need: set[str], place: int) -> int | None:
    for i, c in cuboids.items():
        kept = FULL_PLACE if c.place_length is None else c.place_length
        if need <= ({c.dim} - {None}) and place <= kept:
            return i
    return None


def choose(group_by: str | None, place_prefix: str | None, category: str | None, department: str | None,
           business: bool = False) -> int | None:
    """The smallest of the cuboids 0–3 that keeps every dimension the question groups or filters
    by (``business``: the illegal-business figure, which needs the category), or None when none
    does."""
    need, place = _needs(group_by, place_prefix, category, department, business)
    return _choose(CUBOIDS, need, place)


def choose_day(group_by: str | None, place_prefix: str | None, category: str | None, department: str | None,
               business: bool = False) -> int | None:
    """:data:`DAY_CUBOID` when the question groups and filters by nothing but the period (its
    bounds may be any local midnights), else None."""
    need, place = _needs(group_by, place_prefix, category, department, business)
    return DAY_CUBOID if not need and place == 0 and group_by is None else None


def choose_sketch(group_by: str | None, place_prefix: str | None, category: str | None,
                  department: str | None) -> int | None:
    """The smallest cuboid of all ten (:data:`ALL_SKETCH_CUBOIDS`) whose sketches keep every
    dimension the question groups or filters by, or None when none does."""
    need, place = _needs(group_by, place_prefix, category, department, False)
    return _choose(ALL_SKETCH_CUBOIDS, need, place)
