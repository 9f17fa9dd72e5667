"""The month cuboids of the KPI rollups (services/reporting/kpis/cuboids.py): which cuboid answers a
question, and the day cells' deltas summed into month rows, worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest

from services.reporting.kpis.cells import OPEN_DAY, CellKey, SketchKey, SpanKey
from services.reporting.kpis.cuboids import (
    CUBOIDS,
    DAY_CUBOID,
    MonthCellKey,
    MonthSpanKey,
    choose,
    choose_day,
    choose_sketch,
    month_aligned,
    month_deltas,
    month_of,
)

GRID_1, GRID_2 = "990102001001001", "990102001001002"  # two grids of community 990102001001
COMMUNITY = "990102001001"


def test_month_of_keeps_none_and_the_open_close_day():
    assert month_of(date(2024, 5, 17)) == date(2024, 5, 1)
    assert month_of(date(2024, 5, 1)) == date(2024, 5, 1)
    assert month_of(None) is None
    assert month_of(OPEN_DAY) == OPEN_DAY


def test_month_aligned_bounds():
    assert month_aligned([date(1, 1, 1), date(2024, 5, 1), date(2024, 6, 1), date(9999, 12, 31)])
    assert not month_aligned([date(2024, 5, 1), date(2024, 5, 31)])
    assert not month_aligned([date(2024, 5, 2), date(2024, 6, 1)])


@pytest.mark.parametrize(("group_by", "prefix", "category", "department", "business", "want"), [
    # nothing asked beyond the place at community level: the smallest cuboid, community × channel
    (None, None, None, None, False, 3),
    ("community", "990102", None, None, False, 3),
    ("street", None, None, None, False, 3),
    (None, COMMUNITY, None, None, False, 3),
    # a grid, as a grouping or a prefix longer than a community's code: only the place cuboid
    ("grid", None, None, None, False, 0),
    (None, GRID_1, None, None, False, 0),
    # one more dimension: its cuboid
    ("category", None, None, None, False, 1),
    (None, None, "100401", None, False, 1),
    (None, None, None, None, True, 1),  # the illegal-business figure reads the category
    ("department", None, None, "housing", False, 2),
    ("channel", COMMUNITY, None, None, False, 3),
    # two dimensions, or a grid with another: no cuboid keeps them (the scan answers)
    ("department", None, "100401", None, False, None),
    (None, None, "100401", "housing", False, None),
    ("grid", None, "100401", None, False, None),
    ("channel", GRID_1, None, None, False, None),
    ("department", None, None, None, True, None),
])
def test_choose(group_by, prefix, category, department, business, want):
    assert choose(group_by, prefix, category, department, business) == want


@pytest.mark.parametrize(("group_by", "prefix", "category", "department", "want"), [
    # the sketch-only cuboids (no counters), smallest first: the tenant's one row
    (None, None, None, None, 4),
    ("channel", None, None, None, 9),
    ("department", None, None, "housing", 8),
    ("category", None, None, None, 7),
    (None, None, "100401", None, 7),  # a category filter reads the category's row
    ("street", None, None, None, 5),
    (None, "990102001", None, None, 5),  # a street's prefix (9 digits)
    (None, "990102", None, None, 5),  # a district's (6): its streets' rows
    ("community", None, None, None, 6),
    (None, "9901020010", None, None, 6),  # 10 digits: finer than a street, within a community
    (None, COMMUNITY, None, None, 6),
    # a place and a dimension: the cuboids 1–3 (community × one)
    ("street", None, "100401", None, 1),
    ("department", "990102001", None, None, 2),
    ("channel", "990102", None, None, 3),
    ("channel", COMMUNITY, None, None, 3),
    # a grid: only the place cuboid
    ("grid", None, None, None, 0),
    (None, GRID_1, None, None, 0),
    # two dimensions, or a grid with another: none (the scan answers; choose declines these too)
    ("department", None, "100401", None, None),
    ("category", "990102", None, "housing", None),
    ("grid", None, None, "housing", None),
])
def test_choose_sketch(group_by, prefix, category, department, want):
    assert choose_sketch(group_by, prefix, category, department) == want


@pytest.mark.parametrize(("group_by", "prefix", "category", "department", "business", "want"), [
    # nothing asked but the period (the caller passes None for period:day / week / month): the tenant by day
    (None, None, None, None, False, DAY_CUBOID),
    (None, "", None, None, False, DAY_CUBOID),  # an empty prefix keeps every place
    # anything else asked: none (the month cuboids or the scan answer)
    (None, "990102", None, None, False, None),
    (None, None, "100401", None, False, None),
    (None, None, None, "housing", False, None),
    (None, None, None, None, True, None),
    ("street", None, None, None, False, None),
    ("channel", None, None, None, False, None),
])
def test_choose_day(group_by, prefix, category, department, business, want):
    assert choose_day(group_by, prefix, category, department, business) == want


def test_month_deltas_sum_days_into_each_cuboid():
    may5, may20, jun3 = date(2024, 5, 5), date(2024, 5, 20), date(2024, 6, 3)
    cells = {
        # one case reported 5 May and closed 20 May in grid 1; one reported 3 June in grid 2
        CellKey("t", may5, None, None, GRID_1, "100401", "housing", "phone"): {"accepted": 1},
        CellKey("t", may20, None, None, GRID_1, "100401", "housing", "phone"): {"closed": 1, "close_n": 1,
                                                                                "close_us": 7},
        CellKey("t", jun3, None, None, GRID_2, "100501", "health", "app"): {"accepted": 1},
        # a deadline event of 3 June on a case closed 20 May (lo = the close day)
        CellKey("t", jun3, may20, None, GRID_2, "100501", "health", "app"): {"supervisions": 2},
        # a retraction and an addition in two days of one month of one grid cancel in the month row
        CellKey("t", date(2024, 6, 10), None, None, GRID_1, "100401", "housing", "phone"): {"disposed": -1},
        CellKey("t", date(2024, 6, 11), None, None, GRID_1, "100401", "housing", "phone"): {"disposed": 1},
    }
    spans = {SpanKey("t", may5, None, may20, GRID_1, "100401", "housing", "phone"): {"open_own": 1},
             SpanKey("t", jun3, None, OPEN_DAY, GRID_2, "100501", "health", "app"): {"open_own": 1},
             SpanKey("t", jun3, may20, OPEN_DAY, GRID_2, "100501", "health", "app"): {"due_open": 1}}
    points = {SketchKey(CellKey("t", may20, None, None, GRID_1, "100401", "housing", "phone"), "close_hours", 57): 1,
              SketchKey(CellKey("t", date(2024, 5, 30), None, None, GRID_2, "100401", "health", "app"),
                        "close_hours", 57): 1}
    mcells, mspans, mpoints = month_deltas(cells, spans, points)
    may, jun = date(2024, 5, 1), date(2024, 6, 1)

    def c(i, day, place, cat=None, dept=None, chan=None, lo=None):
        return MonthCellKey(i, "t", day, lo, None, place, cat, dept, chan)

    assert mcells == {
        # cuboid 0: grids, nothing else
        c(0, may, GRID_1): {"accepted": 1, "closed": 1, "close_n": 1, "close_us": 7},
        c(0, jun, GRID_2): {"accepted": 1},
        c(0, jun, GRID_2, lo=may): {"supervisions": 2},
        # cuboid 1: community × category
        c(1, may, COMMUNITY, cat="100401"): {"accepted": 1, "closed": 1, "close_n": 1, "close_us": 7},
        c(1, jun, COMMUNITY, cat="100501"): {"accepted": 1},
        c(1, jun, COMMUNITY, cat="100501", lo=may): {"supervisions": 2},
        # cuboid 2: community × department
        c(2, may, COMMUNITY, dept="housing"): {"accepted": 1, "closed": 1, "close_n": 1, "close_us": 7},
        c(2, jun, COMMUNITY, dept="health"): {"accepted": 1},
        c(2, jun, COMMUNITY, dept="health", lo=may): {"supervisions": 2},
        # cuboid 3: community × channel
        c(3, may, COMMUNITY, chan="phone"): {"accepted": 1, "closed": 1, "close_n": 1, "close_us": 7},
        c(3, jun, COMMUNITY, chan="app"): {"accepted": 1},
        c(3, jun, COMMUNITY, chan="app", lo=may): {"supervisions": 2},
        # cuboid 10: the tenant by day, days as they are, place '' (the two disposals of 10 and
        # 11 June fall on two days, so they do not cancel here)
        c(DAY_CUBOID, may5, ""): {"accepted": 1},
        c(DAY_CUBOID, may20, ""): {"closed": 1, "close_n": 1, "close_us": 7},
        c(DAY_CUBOID, jun3, ""): {"accepted": 1},
        c(DAY_CUBOID, jun3, "", lo=may20): {"supervisions": 2},
        c(DAY_CUBOID, date(2024, 6, 10), ""): {"disposed": -1},
        c(DAY_CUBOID, date(2024, 6, 11), ""): {"disposed": 1},
    }
    assert mspans[MonthSpanKey(0, "t", may, None, may, GRID_1, None, None, None)] == {"open_own": 1}
    assert mspans[MonthSpanKey(0, "t", jun, None, OPEN_DAY, GRID_2, None, None, None)] == {"open_own": 1}
    assert mspans[MonthSpanKey(3, "t", jun, may, OPEN_DAY, COMMUNITY, None, None, "app")] == {"due_open": 1}
    assert mspans[MonthSpanKey(DAY_CUBOID, "t", may5, None, may20, "", None, None, None)] == {"open_own": 1}
    assert mspans[MonthSpanKey(DAY_CUBOID, "t", jun3, may20, OPEN_DAY, "", None, None, None)] == {"due_open": 1}
    assert len(mspans) == 3 * len(CUBOIDS) + 3
    # the two points of May fall in one bucket of one community row (cuboid 1: same category),
    # in two grid rows (cuboid 0) and two department rows (cuboid 2)
    assert mpoints[(c(1, may, COMMUNITY, cat="100401"), "close_hours", 57)] == 2
    assert mpoints[(c(0, may, GRID_1), "close_hours", 57)] == 1
    assert mpoints[(c(0, may, GRID_2), "close_hours", 57)] == 1
    assert mpoints[(c(2, may, COMMUNITY, dept="health"), "close_hours", 57)] == 1
    # the sketch-only cuboids: the tenant (place ''), the street, the community and the category
    # hold both points in one row; the department and the channel differ, so two rows each
    assert mpoints[(c(4, may, ""), "close_hours", 57)] == 2
    assert mpoints[(c(5, may, COMMUNITY[:9]), "close_hours", 57)] == 2
    assert mpoints[(c(6, may, COMMUNITY), "close_hours", 57)] == 2
    assert mpoints[(c(7, may, "", cat="100401"), "close_hours", 57)] == 2
    assert mpoints[(c(8, may, "", dept="housing"), "close_hours", 57)] == 1
    assert mpoints[(c(8, may, "", dept="health"), "close_hours", 57)] == 1
    assert mpoints[(c(9, may, "", chan="phone"), "close_hours", 57)] == 1
    assert mpoints[(c(9, may, "", chan="app"), "close_hours", 57)] == 1
    # the tenant by day: 20 and 30 May apart
    assert mpoints[(c(DAY_CUBOID, may20, ""), "close_hours", 57)] == 1
    assert mpoints[(c(DAY_CUBOID, date(2024, 5, 30), ""), "close_hours", 57)] == 1
    # rows per cuboid: 0: 2 grids, 1: 1, 2: 2, 3: 2; 4–7: 1 each; 8: 2; 9: 2; 10: 2 days
    assert len(mpoints) == 2 + 1 + 2 + 2 + 4 + 2 + 2 + 2
    # the counters and spans: the cuboids 0–3 and the tenant by day
    assert {k[0] for k in mcells} | {k[0] for k in mspans} == {*CUBOIDS, DAY_CUBOID}
