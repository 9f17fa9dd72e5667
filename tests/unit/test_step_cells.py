"""The per-event cells of one case (services/reporting/kpis/step_cells.py), by hand: which event
counts for which figure, on which local day, against which department and rung."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.reporting.db import STEP_CELL_COUNTERS
from services.reporting.kpis.rules import STEP_RULES
from services.reporting.kpis.step_cells import (
    AVG_FIGURES,
    CASE_FIGURES,
    CELL_COUNTERS,
    SUM_FIGURES,
    CaseDayKey,
    CellKey,
    Contributions,
    case_contributions,
)

SH = ZoneInfo("Asia/Shanghai")
GRID = "990102001001001"
FACT = {"tenant": "t", "place_code": GRID, "category_code": "100401", "channel": "phone", "urgency": "一般",
        "counted": True}


def step(seq: int, at: datetime, action: str, **kw) -> dict:
    row = {"sequence": seq, "at": at, "action": action, "from_state": None, "to_state": None, "target_kind": None,
           "department": None, "from_department": None, "mediation_level": None, "from_mediation_level": None,
           "satisfaction": None, "resident_resolved": None, "history": False}
    row.update(kw)
    return row


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cell(day: date, dept: str | None, rung: str | None = None) -> CellKey:
    return CellKey("t", day, GRID, "100401", dept, "phone", rung)


def case_day(figure, day, prev, dept, rung, by_dept, by_rung) -> CaseDayKey:
    return CaseDayKey("t", figure, day, prev, GRID, "100401", dept, "phone", rung, by_dept, by_rung)


#: A dispatch to A returned, a re-dispatch to B over Labour Day 2024, two escalations either side
#: of a local midnight.
DISPATCHES = [
    step(1, utc(2024, 4, 29, 1), "dispatch", from_state="filed", to_state="dispatched", target_kind="department",
         department="A"),                                        # Mon 29 Apr 09:00 local, a working day
    step(2, utc(2024, 4, 29, 3), "acknowledge", from_state="dispatched", to_state="acknowledged", department="A"),
    step(3, utc(2024, 4, 29, 5), "return", from_state="acknowledged", to_state="filed"),  # from A (the step before)
    step(4, utc(2024, 4, 30, 2), "dispatch", from_state="filed", to_state="dispatched", target_kind="department",
         department="B"),                                        # Tue 30 Apr 10:00 local
    step(5, utc(2024, 5, 6, 1), "acknowledge", from_state="dispatched", to_state="acknowledged", department="B"),
    step(6, utc(2024, 5, 6, 2), "escalate", from_state="acknowledged", to_state="acknowledged", department="B"),
    step(7, utc(2024, 5, 6, 16, 30), "escalate", from_state="acknowledged", to_state="acknowledged",
         department="B"),                                        # 00:30 on 7 May local
]


def test_dispatches_returns_responses_and_escalations_by_hand():
    got = case_contributions(FACT, DISPATCHES, SH)
    d29, d30, d6, d7 = date(2024, 4, 29), date(2024, 4, 30), date(2024, 5, 6), date(2024, 5, 7)
    # 一般: respond within 1 working day. Hold 1: acknowledged 2 h after the dispatch. Hold 2: from
    # Tue 30 Apr 10:00 to Mon 6 May 09:00 local: 14 h of 30 Apr + 0 (1–5 May holidays) + 9 h of 6 May
    # = 23 working hours ≤ 24: responded, although 5 calendar days passed.
    assert got.cells == {
        cell(d29, "A"): Counter(events=5, dispatches=1, inaccurate_dispatches=1, handovers=1, responded=1, returned=1),
        cell(d30, "B"): Counter(events=3, dispatches=1, handovers=1, responded=1),
        cell(d6, "B"): Counter(events=2, escalations=1),
        cell(d7, "B"): Counter(events=2, escalations=1),
    }
    # escalated: the case's escalation days, each with the one before (over all departments, and in B)
    assert got.case_days == Counter({
        case_day("escalated", d6, None, None, None, False, False): 1,
        case_day("escalated", d7, d6, None, None, False, False): 1,
        case_day("escalated", d6, None, "B", None, True, False): 1,
        case_day("escalated", d7, d6, "B", None, True, False): 1,
    })


def test_hour_limits_are_natural_time():
    # 紧急: 2 h. Hold 1 acknowledged after exactly 2 h (the limit itself counts); hold 2 after days.
    got = case_contributions({**FACT, "urgency": "紧急"}, DISPATCHES, SH)
    assert got.cells[cell(date(2024, 4, 29), "A")]["responded"] == 1
    assert got.cells[cell(date(2024, 4, 30), "B")]["responded"] == 0
    late = [*DISPATCHES[:1], {**DISPATCHES[1], "at": DISPATCHES[0]["at"] + timedelta(hours=2, seconds=1)}]
    assert case_contributions({**FACT, "urgency": "紧急"}, late, SH).cells[cell(date(2024, 4, 29), "A")][
        "responded"] == 0


MEDIATION = [
    step(1, utc(2024, 6, 3, 0), "dispatch", from_state="filed", to_state="mediating", target_kind="mediation",
         department="M", mediation_level="grid"),
    step(2, utc(2024, 6, 3, 3), "mediation_failed", from_state="mediating", to_state="mediating", department="M",
         mediation_level="community"),                           # from the grid rung (the step before)
    step(3, utc(2024, 6, 3, 5), "mediation_agreement", from_state="mediating", to_state="closed", department="M",
         mediation_level="community"),
    step(4, utc(2024, 6, 4, 11), "callback", from_state="closed", to_state="closed", department="M",
         satisfaction="satisfied", resident_resolved=True),
    step(5, utc(2024, 6, 4, 12), "callback", from_state="closed", to_state="closed", department="M",
         satisfaction="unreachable"),
]


def test_mediation_rungs_hours_and_callbacks_by_hand():
    got = case_contributions(FACT, MEDIATION, SH)
    d3, d4 = date(2024, 6, 3), date(2024, 6, 4)
    h = 3_600_000_000  # microseconds in an hour
    assert got.cells == {
        # the grid hold: mediated, left 3 h later by the escalation to the community rung (the next hold)
        # (3 events: mediated, the hours, the escalation out of the rung); the dispatch is not a
        # figure per rung: no rung
        cell(d3, "M"): Counter(events=1, dispatches=1),
        cell(d3, "M", "grid"): Counter(events=3, mediation_escalations=1, mediation_hours_us=3 * h,
                                       mediation_hours_n=1),
        # the community hold: mediated, agreement 2 h later (it left the rung by closing)
        cell(d3, "M", "community"): Counter(events=3, mediation_agreements=1, mediation_hours_us=2 * h,
                                            mediation_hours_n=1),
        cell(d4, "M"): Counter(events=5, callbacks=1, callbacks_satisfied=1, callbacks_rated=1, callbacks_resolved=1,
                               callbacks_unreachable=1),
    }
    # mediated: per rung, and once over all rungs; in M and over all departments
    d = date(2024, 6, 3)
    assert got.case_days == Counter({
        case_day("mediated", d, None, dept, rung, dept is not None, rung is not None): 1
        for dept in (None, "M") for rung in (None, "grid", "community")})


def test_a_case_not_counted_adds_nothing_and_contributions_cancel():
    assert case_contributions({**FACT, "counted": False}, DISPATCHES, SH) == Contributions.empty()
    both = Contributions.empty()
    both.add(case_contributions(FACT, MEDIATION, SH))
    both.add(case_contributions(FACT, MEDIATION, SH), sign=-1)
    assert both.nonzero() == Contributions.empty()


def test_day_is_the_tenants_local_day():
    ny = ZoneInfo("America/New_York")
    got = case_contributions(FACT, DISPATCHES[:1], ny)  # 01:00 UTC 29 Apr = 21:00 on 28 Apr in New York
    assert {k.day for k in got.cells} == {date(2024, 4, 28)}


def test_every_step_rule_has_a_counter_and_the_table_its_columns():
    assert set(SUM_FIGURES) | set(CASE_FIGURES) | set(AVG_FIGURES) == set(STEP_RULES)
    assert CELL_COUNTERS == STEP_CELL_COUNTERS


def test_day_bounds_of_a_period():
    from services.reporting.kpis.periods import OPEN_END, OPEN_START  # noqa: PLC0415
    from services.reporting.kpis.step_cells_sql import FIRST_DAY, LAST_DAY, day_bounds  # noqa: PLC0415

    m = lambda d: datetime(2024, 5, d, tzinfo=SH)  # noqa: E731 - local midnights of May 2024
    assert day_bounds([m(1), m(2), m(3)], SH) == ([date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)], [])
    assert day_bounds([OPEN_START, OPEN_END], SH) == ([FIRST_DAY, LAST_DAY], [])
    # 00:00 in Shanghai is 16:00 UTC the day before: in UTC both bounds fall within a day
    assert day_bounds([m(1), m(2)], UTC) == ([date(2024, 4, 30), date(2024, 5, 2)], [
        (datetime(2024, 4, 30, tzinfo=UTC), m(1)), (m(2), datetime(2024, 5, 2, tzinfo=UTC))])
    # a start at 09:30 stands for its day, adding [00:00, 09:30); an end at 18:00 for the next day
    start, end = m(1) + timedelta(hours=9, minutes=30), m(3) + timedelta(hours=18)
    assert day_bounds([start, m(2), m(3), end], SH) == (
        [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3), date(2024, 5, 4)], [(m(1), start), (end, m(4))])
    assert day_bounds([m(1), m(2) + timedelta(hours=1), m(3)], SH) is None  # an inner bound within a day
