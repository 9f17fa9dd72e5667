"""The contributions of one case to the KPI rollups (services/reporting/kpis/cells.py), worked out by
hand from the rules of services/reporting/kpis/rules.py (docs/kpis.md). Asia/Shanghai (UTC+8, no
summer time); 2026-03-02 is a Monday and 2–4 March 2026 are working days (no holiday)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.reporting.kpis.cells import (
    OPEN_DAY,
    CellKey,
    SpanKey,
    case_cells,
    deltas,
    is_local_midnight,
    local_day,
)

TZ = ZoneInfo("Asia/Shanghai")
H = 3_600_000_000  # microseconds per hour
DIMS = ("990102001001001", "100401", "housing", "phone")


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def fact(**kw) -> dict:
    row = {"tenant": "t", "place_code": DIMS[0], "category_code": DIMS[1], "department": DIMS[2], "channel": DIMS[3],
           "reported_at": at(3, 2, 9, 30), "accepted_at": at(3, 2, 9, 30), "state": "dispatched", "closed": False,
           "closed_at": None, "final_closed_at": None, "deadline": None, "dispatched_at": None, "target_kind": None,
           "acknowledged_at": None, "resolved_at": None, "transfer_count": 0, "rework_count": 0,
           "supervision_level": 0, "outcome": None, "request_type": ""}
    return row | kw


def cell(day: date, lo: date | None = None, hi: date | None = None) -> CellKey:
    return CellKey("t", day, lo, hi, *DIMS)


# Case A: reported Mon 3/2 09:30, dispatched to housing 10:00 (deadline Wed 3/4 18:00), acknowledged
# 12:00, closed Wed 3/4 12:00 (resolved).
CASE_A = fact(dispatched_at=at(3, 2, 10), target_kind="department", deadline=at(3, 4, 18), acknowledged_at=at(3, 2, 12),
              closed=True, closed_at=at(3, 4, 12), state="closed", outcome="resolved")


def test_a_case_closed_on_time():
    cells, spans = case_cells(CASE_A, TZ)
    # report day: 受理, 立案 (dispatched), first dispatch, acknowledged after 2 h (all working time)
    assert cells[cell(date(2026, 3, 2))] == {"accepted": 1, "filed": 1, "dispatched": 1, "ack_n": 1, "ack_us": 2 * H,
                                             "ack_wn": 1, "ack_wus": 2 * H}
    # close day: 办结 resolved, on time (12:00 ≤ 18:00), disposed at the closure (no resolution
    # recorded), first and final close after 2 days 2.5 h = 50.5 h (Mon–Wed all working)
    closing = {"n": 1, "us": int(50.5 * H), "wn": 1, "wus": int(50.5 * H)}
    assert cells[cell(date(2026, 3, 4))] == {
        "closed": 1, "resolved": 1, "closed_on_time": 1, "disposed": 1,
        **{f"close_{k}": v for k, v in closing.items()}, **{f"final_close_{k}": v for k, v in closing.items()}}
    assert len(cells) == 2  # supervision level 0: nothing on the deadline day
    # 在办 from 3/2 to 3/4; 应办结 (open part) due on 3/4, closed on 3/4; no overdue span (closed on
    # the day its deadline passes)
    assert spans == {SpanKey("t", date(2026, 3, 2), None, date(2026, 3, 4), *DIMS): {"open_own": 1},
                     SpanKey("t", date(2026, 3, 4), None, date(2026, 3, 4), *DIMS): {"due_open": 1}}


def test_an_open_case_past_a_deadline_before_its_report():
    # reported 2026-03-01 17:00 UTC = 3/2 01:00 local; a history deadline of 2/28 10:00 (before the
    # report), queued for triage, transferred once, 提级督办 (level 2); open.
    row = fact(reported_at=datetime(2026, 3, 1, 17, tzinfo=UTC), accepted_at=datetime(2026, 3, 1, 17, tzinfo=UTC),
               dispatched_at=at(3, 2, 1, 5), target_kind="triage", deadline=at(2, 28, 10), transfer_count=1,
               supervision_level=2)
    cells, spans = case_cells(row, TZ)
    # local report day 3/2: 受理, 立案; triage is no dispatch to a handler
    assert cells[cell(date(2026, 3, 2))] == {"accepted": 1, "filed": 1}
    # 督办 on the deadline day, counted only if the report falls before P's end (hi = 3/2)
    assert cells[cell(date(2026, 2, 28), hi=date(2026, 3, 2))] == {"supervisions": 2, "supervised_cases": 1}
    assert len(cells) == 2
    # 在办 (transferred) and overdue from the later of deadline and report (3/2), open; due on 2/28,
    # reported 3/2
    assert spans == {SpanKey("t", date(2026, 3, 2), None, OPEN_DAY, *DIMS): {"open_transferred": 1, "overdue": 1},
                     SpanKey("t", date(2026, 2, 28), date(2026, 3, 2), OPEN_DAY, *DIMS): {"due_open": 1}}


def test_shelved_rejected_and_unaccepted_cases():
    shelved, spans = case_cells(fact(state="shelved", deadline=at(3, 1, 9)), TZ)
    # shelved: counted (受理, 在办) but its clock is paused: never overdue and not due while shelved
    assert shelved == {cell(date(2026, 3, 2)): {"accepted": 1}}
    assert spans == {SpanKey("t", date(2026, 3, 2), None, OPEN_DAY, *DIMS): {"open_own": 1}}
    assert case_cells(fact(state="rejected"), TZ) == ({}, {})
    assert case_cells(fact(accepted_at=None), TZ) == ({}, {})


def test_a_closure_before_the_deadline_day_and_a_late_one():
    early = fact(closed=True, closed_at=at(3, 3, 8), final_closed_at=at(3, 3, 8), deadline=at(3, 5, 9),
                 supervision_level=1, state="closed")
    cells, _ = case_cells(early, TZ)
    # 督办 on 3/5 after the close on 3/3: counted only if the case was not closed before P (lo = 3/3)
    assert cells[cell(date(2026, 3, 5), lo=date(2026, 3, 3))] == {"supervisions": 1, "supervised_cases": 1}
    late = fact(closed=True, closed_at=at(3, 6, 9), deadline=at(3, 5, 9), state="closed")
    cells, spans = case_cells(late, TZ)
    # closed 3/6 09:00 after its deadline 3/5 09:00: late, outcome not recorded; overdue (and due)
    # from 3/5 to 3/6, 在办 from 3/2
    assert cells[cell(date(2026, 3, 6))]["closed_late"] == 1
    assert cells[cell(date(2026, 3, 6))]["outcome_unrecorded"] == 1
    assert spans == {SpanKey("t", date(2026, 3, 2), None, date(2026, 3, 6), *DIMS): {"open_own": 1},
                     SpanKey("t", date(2026, 3, 5), None, date(2026, 3, 6), *DIMS): {"overdue": 1, "due_open": 1}}


def test_deltas_retract_the_old_row():
    opened = {k: v for k, v in CASE_A.items()} | {"closed": False, "closed_at": None, "state": "acknowledged",
                                                    "outcome": None}
    cells, spans = deltas([(opened, CASE_A)], lambda tenant: TZ)
    # closing adds the close figures on 3/4 (the report day is unchanged) and ends the spans on 3/4;
    # open, the case was overdue from 3/4 on (deadline 18:00), closed that day it never is
    assert cell(date(2026, 3, 2)) not in cells
    assert cells[cell(date(2026, 3, 4))]["closed"] == 1
    assert spans == {SpanKey("t", date(2026, 3, 2), None, OPEN_DAY, *DIMS): {"open_own": -1},
                     SpanKey("t", date(2026, 3, 2), None, date(2026, 3, 4), *DIMS): {"open_own": 1},
                     SpanKey("t", date(2026, 3, 4), None, OPEN_DAY, *DIMS): {"due_open": -1, "overdue": -1},
                     SpanKey("t", date(2026, 3, 4), None, date(2026, 3, 4), *DIMS): {"due_open": 1}}
    assert deltas([(CASE_A, CASE_A), (None, CASE_A), (CASE_A, None)], lambda tenant: TZ) == ({}, {})


def test_local_days_and_midnights():
    assert local_day(datetime(2026, 3, 1, 15, 59, tzinfo=UTC), TZ) == date(2026, 3, 1)
    assert local_day(datetime(2026, 3, 1, 16, 0, tzinfo=UTC), TZ) == date(2026, 3, 2)
    assert is_local_midnight(datetime(2026, 3, 1, 16, 0, tzinfo=UTC), TZ)
    assert not is_local_midnight(datetime(2026, 3, 2, 0, 0, tzinfo=UTC), TZ)
    ny = ZoneInfo("America/New_York")  # 2026-03-08: clocks go forward at 02:00, midnight exists
    assert is_local_midnight(datetime(2026, 3, 8, 0, 0, tzinfo=ny), ny)
    assert local_day(datetime(2026, 3, 8, 3, 0, tzinfo=ny), ny) == date(2026, 3, 8)


def test_a_merged_duplicate_counts_apart_on_its_report_day():
    # Case A dispatched, then merged onto another case (merge_duplicate: cancelled, outcome
    # duplicate) on 3/3 at 08:00: outside every counted figure (docs/kpis.md §2 "Duplicates"), one
    # merged_duplicates on its report day 3/2, no spans.
    merged = CASE_A | {"state": "cancelled", "outcome": "duplicate", "closed": True, "closed_at": at(3, 3, 8)}
    assert case_cells(merged, TZ) == ({cell(date(2026, 3, 2)): {"merged_duplicates": 1}}, {})
    # a case cancelled for another reason counts nowhere
    assert case_cells(CASE_A | {"state": "cancelled", "outcome": None}, TZ) == ({}, {})
