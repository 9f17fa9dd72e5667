"""The step cells' month cuboids (services/reporting/kpis/step_cuboids.py), worked by hand: which
rows a day cell and a case day add to, with the months, places and dimensions each cuboid keeps
(cuboid 0 the grid, 1–3 the community, 12 digits, with the category, department, channel)."""

from __future__ import annotations

from collections import Counter
from datetime import date

from services.reporting.kpis.step_cells import CaseDayKey, CellKey
from services.reporting.kpis.step_cuboids import month_case_days, month_cells

G1, G2 = "990102001001001", "990102001001002"  # two grids of community 990102001001
COMMUNITY = "990102001001"
APRIL, MAY = date(2024, 4, 1), date(2024, 5, 1)


def test_cells_are_summed_by_month_into_each_cuboid_and_cancelled_rows_dropped():
    cells = {
        CellKey("t", date(2024, 4, 30), G1, "100401", "housing", "phone", "grid"): Counter(events=2, escalations=1),
        CellKey("t", date(2024, 4, 3), G2, "100401", "housing", "phone", "grid"): Counter(events=1, escalations=1),
        CellKey("t", date(2024, 5, 1), G1, "100402", None, "app", None): Counter(events=1, callbacks=1),
        # a retraction: G1's April escalation moved on (its events and escalations, −2 and −1)
        CellKey("t", date(2024, 4, 10), G1, "100401", "housing", "phone", "grid"): Counter(events=-2, escalations=-1),
    }
    # By hand: G1's April rows sum to 0 in cuboid 0 (2 − 2 events, 1 − 1 escalations) and go;
    # the community's April rows keep G2's cell (1 event, 1 escalation); May's one cell is its own row.
    assert month_cells(cells) == {
        (0, "t", APRIL, G2, None, None, None, "grid"): Counter(events=1, escalations=1),
        (0, "t", MAY, G1, None, None, None, None): Counter(events=1, callbacks=1),
        (1, "t", APRIL, COMMUNITY, "100401", None, None, "grid"): Counter(events=1, escalations=1),
        (1, "t", MAY, COMMUNITY, "100402", None, None, None): Counter(events=1, callbacks=1),
        (2, "t", APRIL, COMMUNITY, None, "housing", None, "grid"): Counter(events=1, escalations=1),
        (2, "t", MAY, COMMUNITY, None, None, None, None): Counter(events=1, callbacks=1),
        (3, "t", APRIL, COMMUNITY, None, None, "phone", "grid"): Counter(events=1, escalations=1),
        (3, "t", MAY, COMMUNITY, None, None, "app", None): Counter(events=1, callbacks=1),
    }


def _day(day: date, prev: date | None, place: str = G1, department: str | None = None) -> CaseDayKey:
    return CaseDayKey("t", "escalated", day, prev, place, "100401", department, "phone", None,
                      department is not None, False)


def test_case_days_by_month_leave_out_same_month_pairs_and_keep_departments_only_where_kept():
    k1 = _day(date(2024, 5, 2), date(2024, 4, 30))  # May, previous in April: counts for May
    k2 = _day(date(2024, 5, 20), date(2024, 5, 2))  # previous in its own month: never counts by month
    k3 = _day(date(2024, 5, 2), None, department="housing")  # the per-department scope
    k4 = _day(date(2024, 5, 9), date(2024, 4, 2), place=G2)  # retracted, same community as k1
    got = month_case_days({k1: 1, k2: 1, k3: 1, k4: -1})
    # cuboid 10: every row with its days as they are, the department kept, no place/category/channel
    day_rows = {(10, "t", "escalated", d, p, bd, False, dept, None, "", None, None): n
                for d, p, bd, dept, n in ((date(2024, 5, 2), date(2024, 4, 30), False, None, 1),
                                          (date(2024, 5, 20), date(2024, 5, 2), False, None, 1),
                                          (date(2024, 5, 2), None, True, "housing", 1),
                                          (date(2024, 5, 9), date(2024, 4, 2), False, None, -1))}
    # by month: k1 (+1) and k4 (−1) are both (May, April); apart in cuboid 0 (two grids), they cancel
    # in the community's cuboids 1–3; k2 is left out; k3 only in cuboid 2 (the department's)
    month_rows = {
        (0, "t", "escalated", MAY, APRIL, False, False, None, None, G1, None, None): 1,
        (0, "t", "escalated", MAY, APRIL, False, False, None, None, G2, None, None): -1,
        (2, "t", "escalated", MAY, None, True, False, "housing", None, COMMUNITY, None, None): 1,
    }
    assert got == Counter({**day_rows, **month_rows})
