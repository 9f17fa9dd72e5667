"""services/reporting/kpis/: the pure parts (formulas, working time, periods, exports, summary).

Expected values are worked out by hand from the formula definitions (docs/domain.md §3(e), the
docstrings of services/reporting/kpis/) and from docs/seeds.md block A; none comes from running this code.
The SQL rules are checked against hand-made facts in tests/e2e/test_kpis.py.
"""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.reporting.filters import CaseFilter
from services.reporting.kpis.catalogue import GROUP_BYS, KPIS
from services.reporting.kpis.clock import (
    working_clock,
    working_clock_params,
    working_seconds,
)
from services.reporting.kpis.export import sanitize_cell, to_csv, to_xlsx
from services.reporting.kpis.formulas import (
    accurate_dispatch_rate,
    completion_rate,
    derive,
    on_time_rate,
    overdue_rate,
    overdue_total,
    ratio,
    rework_rate,
    transfer_rate,
)
from services.reporting.kpis.periods import (
    counts_at_period_ends,
    period_bounds,
    period_label,
    sub_period_index,
)
from services.reporting.kpis.rules import EVENT_RULES
from services.reporting.kpis.sql import bind, kpi_sql
from services.reporting.kpis.summary import (
    SummaryWording,
    choose_wording,
    percent,
    period_text,
    summary_paragraph,
)
from shared.domain.workcalendar import STRICT_CALENDAR, working_time_between

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def sh(y, m, d, h=0, minute=0):
    return datetime(y, m, d, h, minute, tzinfo=SH)


# --------------------------------------------------------------------------- rates


def test_completion_rate_seed_a():
    # docs/seeds.md block A: 办结率 = 3644 / 5410 = 67.36 %
    assert round(completion_rate(3644, 5410) * 100, 2) == 67.36


@pytest.mark.parametrize(
    ("fn", "args", "expected"),
    [
        (completion_rate, (4, 7), 4 / 7),
        (on_time_rate, (3, 7), 3 / 7),
        (overdue_rate, (2, 7), 2 / 7),
        (transfer_rate, (1139, 5410), 1139 / 5410),
        (rework_rate, (1, 4), 0.25),
        (accurate_dispatch_rate, (6, 1), 5 / 6),  # 6 dispatches, 1 returned → 5 accurate
        (accurate_dispatch_rate, (10, 0), 1.0),
    ],
)
def test_rates(fn, args, expected):
    assert fn(*args) == pytest.approx(expected)


@pytest.mark.parametrize(
    "fn", [completion_rate, on_time_rate, overdue_rate, transfer_rate, rework_rate,
           accurate_dispatch_rate, ratio],
)
def test_zero_denominator_is_no_rate(fn):
    assert fn(0, 0) is None


def test_overdue_is_open_past_deadline_plus_closed_late():
    assert overdue_total(1, 1) == 2
    assert overdue_total(0, 0) == 0


def test_more_returns_than_dispatches_is_an_error():
    with pytest.raises(ValueError):
        accurate_dispatch_rate(1, 2)


def test_derive_fills_every_kpi():
    # 6 dispatches, 1 of them returned (an inaccurate dispatch: its hold holds the return)
    raw = {"accepted": 7, "filed": 6, "closed": 4, "due": 7, "closed_on_time": 3, "closed_late": 1, "overdue_open": 1,
           "in_progress_own": 4, "in_progress_transferred": 1, "dispatched": 5, "transferred": 1, "dispatches": 6,
           "returned": 1, "inaccurate_dispatches": 1, "disposed": 4, "rework": 1, "supervisions": 2,
           "supervised_cases": 1, "close_n": 4, "close_hours_mean": 108.5}
    row = derive(raw)
    assert list(row) == [k.name for k in KPIS]
    assert row["in_progress"] == 5  # 4 not transferred + 1 transferred
    assert row["overdue"] == 2  # 1 open past deadline + 1 closed late
    assert row["completion_rate"] == pytest.approx(4 / 7)
    assert row["on_time_rate"] == pytest.approx(3 / 7)
    assert row["overdue_rate"] == pytest.approx(2 / 7)
    assert row["transfer_rate"] == pytest.approx(1 / 5)
    assert row["rework_rate"] == pytest.approx(1 / 4)
    assert row["accurate_dispatch_rate"] == pytest.approx(5 / 6)
    assert row["close_hours_mean"] == 108.5 and row["close_hours_median"] is None


def test_derive_of_nothing():
    row = derive({})
    assert all(row[k.name] == 0 for k in KPIS if k.unit == "count")
    assert all(row[k.name] is None for k in KPIS if k.unit != "count")


def test_kpi_catalogue_labels():
    names = [k.name for k in KPIS]
    assert len(names) == len(set(names))
    for k in KPIS:
        assert re.search(r"[\u4e00-\u9fff]", k.zh) and re.search(r"[A-Za-z]", k.en)
        assert k.label.startswith(k.zh)  # zh-CN first, English beside
    # every figure docs/domain.md §3(e) asks for (issue 4 item 1)
    for name in ("accepted", "filed", "closed", "due", "completion_rate", "on_time_rate", "in_progress", "overdue",
                 "overdue_rate", "transfer_rate", "rework_rate", "supervisions", "accurate_dispatch_rate",
                 "ack_hours_mean", "ack_hours_median", "ack_hours_p90", "ack_working_hours_mean",
                 "close_hours_mean", "close_hours_median", "close_hours_p90", "close_working_hours_p90"):
        assert name in names


# --------------------------------------------------------------------------- period ends


def test_counts_at_period_ends():
    # (first, stop, count): in the state at the end of sub-periods first ≤ k < stop
    spans = [(0, 3, 2), (1, 2, 1), (2, 5, 1)]
    # k=1: (0,3)×2 + (1,2)×1 = 3; k=2: (0,3)×2 + (2,5) = 3; k=3: (2,5) = 1; k=4: (2,5) = 1
    assert counts_at_period_ends(spans, 4) == [3, 3, 1, 1]
    assert counts_at_period_ends([], 3) == [0, 0, 0]
    assert counts_at_period_ends([(5, 9, 4)], 3) == [0, 0, 0]  # enters after P
    assert counts_at_period_ends([(0, 1, 4)], 3) == [0, 0, 0]  # leaves in the first sub-period


# --------------------------------------------------------------------------- working time


def test_working_seconds_by_hand():
    # Spring Festival 2026: Feb 15-23 off, Sat Feb 28 worked (调休); Sun Mar 1 off.
    # Fri Feb 20 10:00 → Tue Mar 3 10:00: Feb 24, 25, 26, 27, 28, Mar 2 (6 × 24 h) + Mar 3 10 h = 154 h
    assert working_seconds(sh(2026, 2, 20, 10), sh(2026, 3, 3, 10)) == 154 * 3600
    # Fri Mar 20 10:00 → Wed Mar 25 10:00: Fri 14 h, weekend off, Mon 24, Tue 24, Wed 10 = 72 h
    assert working_seconds(sh(2026, 3, 20, 10), sh(2026, 3, 25, 10)) == 72 * 3600
    # workcalendar's own example: Fri 2025-09-26 10:00 + 5 WD = Fri 2025-10-10 10:00 (National Day)
    assert working_seconds(sh(2025, 9, 26, 10), sh(2025, 10, 10, 10)) == 5 * 86400
    # a Saturday is not working time; an interval backwards is none
    assert working_seconds(sh(2026, 3, 21, 9), sh(2026, 3, 21, 17)) == 0
    assert working_seconds(sh(2026, 3, 25), sh(2026, 3, 24)) == 0


@pytest.mark.parametrize("tz", [SH, NY, UTC])
def test_working_seconds_equals_workcalendar(tz):
    rng = random.Random(7)
    base = datetime(2024, 1, 1, tzinfo=tz)
    for _ in range(300):
        a = base + timedelta(minutes=rng.randrange(0, 3 * 365 * 24 * 60))
        b = a + timedelta(minutes=rng.randrange(0, 40 * 24 * 60))
        assert working_seconds(a, b, tz) == working_time_between(a, b, tz).total_seconds(), (a, b)


def test_working_seconds_beyond_the_holiday_data():
    # the services' calendar counts Monday-Friday in a year without holiday data (workcalendar)
    assert working_seconds(sh(2027, 1, 8, 12), sh(2027, 1, 11, 12)) == 24 * 3600  # Fri 12 h + Mon 12 h
    # a strict calendar's clock ends with the holiday data: unknown, never guessed
    strict = working_clock(STRICT_CALENDAR)
    assert working_seconds(sh(2027, 1, 8), sh(2027, 1, 11), clock=strict) is None
    assert working_seconds(sh(2200, 1, 5), sh(2200, 1, 6)) is None  # beyond any clock
    with pytest.raises(ValueError):
        working_seconds(datetime(2026, 3, 2), sh(2026, 3, 3))


def test_sql_clock_parameters_match_the_clock():
    clock = working_clock()
    p = working_clock_params(SH)
    # China has kept +08:00 since its last summer time ended on 1991-09-15 (tz database): the
    # first local midnight on +08:00 for good is 1991-09-16
    assert p["off"] == 8 * 3600 and p["tz"] == "Asia/Shanghai"
    assert p["fixed_from"] == datetime(1991, 9, 16, tzinfo=SH)
    ny = working_clock_params(NY)  # summer time every year: AT TIME ZONE until the clock's last change
    assert ny["fixed_from"] > datetime(2026, 11, 29, tzinfo=NY)
    assert len(p["cum"]) == len(p["wk"]) == len(clock.cum) - 1
    assert all(c + w * 86400 == nxt for c, w, nxt in zip(p["cum"], p["wk"], clock.cum[1:], strict=True))
    day = lambda d: (d - clock.d0).days  # noqa: E731
    assert p["wk"][day(datetime(2026, 2, 28).date())] == 1  # Saturday 调休 working day
    assert p["wk"][day(datetime(2026, 2, 17).date())] == 0  # Spring Festival
    assert p["day0"] == (clock.d0 - datetime(1970, 1, 1).date()).days


# --------------------------------------------------------------------------- periods


def test_period_bounds_days_weeks_months():
    assert period_bounds(sh(2026, 3, 1, 5), sh(2026, 3, 3), "day", SH) == [sh(2026, 3, 1, 5), sh(2026, 3, 2), sh(2026, 3, 3)]
    # March 2026 in ISO weeks: Sun Mar 1 alone, then Mondays 2, 9, 16, 23, 30
    weeks = period_bounds(sh(2026, 3, 1), sh(2026, 4, 1), "week", SH)
    assert weeks == [sh(2026, 3, 1), sh(2026, 3, 2), sh(2026, 3, 9), sh(2026, 3, 16), sh(2026, 3, 23), sh(2026, 3, 30),
                     sh(2026, 4, 1)]
    months = period_bounds(sh(2025, 11, 15), sh(2026, 2, 1), "month", SH)
    assert months == [sh(2025, 11, 15), sh(2025, 12, 1), sh(2026, 1, 1), sh(2026, 2, 1)]
    # local midnights of the tenant's zone, whatever the zone of start/end
    utc_start = datetime(2026, 3, 1, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert period_bounds(utc_start, sh(2026, 3, 3), "day", SH)[1] == sh(2026, 3, 2)


def test_period_bounds_errors():
    with pytest.raises(ValueError):
        period_bounds(sh(2026, 3, 1), sh(2026, 3, 1), "day", SH)
    with pytest.raises(ValueError):
        period_bounds(sh(2026, 3, 1), sh(2026, 4, 1), "hour", SH)
    with pytest.raises(ValueError):
        period_bounds(datetime(2026, 3, 1), sh(2026, 4, 1), "day", SH)
    with pytest.raises(ValueError, match="sub-periods"):
        period_bounds(sh(2020, 1, 1), sh(2026, 1, 1), "day", SH)  # > MAX_BUCKETS days


def test_period_labels():
    assert period_label(sh(2026, 3, 2), "day", SH) == ("2026-03-02", "2026年3月2日 2026-03-02")
    assert period_label(sh(2026, 3, 2), "week", SH) == ("2026-W10", "2026年第10周 2026-W10")
    assert period_label(sh(2026, 3, 2), "month", SH) == ("2026-03", "2026年3月 2026-03")


def test_sub_period_index_is_width_bucket():
    bounds = [sh(2026, 3, 1), sh(2026, 3, 2), sh(2026, 3, 3)]
    assert sub_period_index(bounds, sh(2026, 2, 28)) == 0
    assert sub_period_index(bounds, sh(2026, 3, 1)) == 1
    assert sub_period_index(bounds, sh(2026, 3, 2, 23)) == 2
    assert sub_period_index(bounds, sh(2026, 3, 3)) == 3


def test_filter_needs_aware_times():
    with pytest.raises(ValueError):
        CaseFilter("t", datetime(2026, 3, 1))
    with pytest.raises(ValueError):
        CaseFilter("t", sh(2026, 3, 2), sh(2026, 3, 1))


# --------------------------------------------------------------------------- SQL assembly


def test_bind_sends_each_name_once_and_keeps_casts():
    sql, args = bind("SELECT :a::int + :b, :a, 'x'::text, now()::date", {"a": 1, "b": 2})
    assert sql == "SELECT $1::int + $2, $1, 'x'::text, now()::date"
    assert args == (1, 2)
    with pytest.raises(KeyError):
        bind("SELECT :missing", {})


def test_kpi_sql_shapes():
    grouped = kpi_sql("grid")
    assert "GROUPING SETS ((c.key), ())" in grouped and "left(cf.place_code, 15)" in grouped
    for name in EVENT_RULES:
        assert f"AS {name}" in grouped
    periods = kpi_sql(None, periods=True)
    assert "MATERIALIZED" in periods and "json_agg" in periods
    with pytest.raises(ValueError):
        kpi_sql("planet")
    assert set(GROUP_BYS) == {"period:day", "period:week", "period:month", "street", "community", "grid",
                                   "category", "department", "channel"}


# --------------------------------------------------------------------------- exports


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x","y")'])
def test_sanitize_cell_neutralises_formula_starts(text):
    assert sanitize_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["市场监管 Market regulation", "a=b", "", None, 5, -5, 2.5])
def test_sanitize_cell_leaves_the_rest(value):
    assert sanitize_cell(value) == value


def _result(key: str) -> dict:
    row = {"key": key, "label": key, **derive({"accepted": 2, "closed": 1, "due": 2})}
    total = {"key": None, "label": "合计 total", **derive({"accepted": 2, "closed": 1, "due": 2})}
    return {"tenant": "demo-grid", "group_by": "category", "start": None, "end": None, "timezone": "Asia/Shanghai",
            "total": total, "rows": [row]}


def test_csv_export_has_bom_chinese_headers_and_no_formulas():
    data = to_csv(_result("=cmd|' /C calc'!A0"))
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["分组 group", "名称 label", "受理量 intake (accepted)"]
    assert "办结率 completion rate (%)" in rows[0]
    assert rows[1][0] == "'=cmd|' /C calc'!A0" and rows[1][1] == "'=cmd|' /C calc'!A0"
    rate = rows[0].index("办结率 completion rate (%)")
    assert rows[1][rate] == "50.0" and rows[2][0] == "合计 total"  # per cent in exports


def test_xlsx_export_stores_text_not_formulas():
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(to_xlsx(_result('=HYPERLINK("http://x","y")'))))
    ws = wb["KPI 指标"]
    assert ws["A1"].value == "分组 group" and ws["C1"].value == "受理量 intake (accepted)"
    assert ws["A2"].value == "'=HYPERLINK(\"http://x\",\"y\")" and ws["A2"].data_type == "s"
    assert ws["C2"].value == 2 and ws["A3"].value == "合计 total"
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)


# --------------------------------------------------------------------------- work summary


def test_wording_by_the_tenants_data():
    # seed A: every case a sweep finding (排查) of an illegal-business category
    assert choose_wording(5410, 5410, 5410) == SummaryWording("排查梳理", "非法经营领域矛盾问题", "户")
    assert choose_wording(10, 2, 0) == SummaryWording("受理", "案件", "件")  # hotline, imports
    assert choose_wording(10, 5, 0) == SummaryWording("排查梳理", "问题", "件")  # half by sweeps
    assert choose_wording(10, 0, 10) == SummaryWording("受理", "非法经营领域矛盾问题", "户")
    assert choose_wording(0, 0, 0) == SummaryWording("受理", "案件", "件")


def test_seed_a_paragraph():
    # docs/seeds.md block A: 5410 found, 3644 closed, 627 in progress, 1139 transferred, 67.36 %
    total = derive({"accepted": 5410, "closed": 3644, "due": 5410, "in_progress_own": 627,
                         "in_progress_transferred": 1139})
    text = summary_paragraph(total, choose_wording(5410, 5410, 5410),
                                  transfer_departments=["卫生健康", "文化和旅游", "交通运输"])
    assert text == ("共排查梳理非法经营领域矛盾问题5410户，已办结3644户，正在办理627户，"
                    "转办卫生健康、文化和旅游等部门1139户，办结率67.4%。")


def test_paragraph_for_a_hotline_tenant():
    total = derive({"accepted": 7, "closed": 4, "due": 7, "in_progress_own": 3, "close_n": 4,
                         "close_hours_mean": 108.5, "close_working_hours_mean": 69.0, "closed_late": 1,
                         "supervisions": 2})
    text = summary_paragraph(total, choose_wording(7, 0, 0), period="2026年3月1日至2026年3月31日")
    assert text == ("2026年3月1日至2026年3月31日，共受理案件7件，已办结4件，正在办理3件，办结率57.1%。"
                    "已办结案件平均办理时长108.5小时（工作日时长69.0小时），超期1件，超期率14.3%，督办2次。")


def test_paragraph_names_merged_duplicates_beside_accepted():
    # 3 issues accepted, 1 closed; 2 more reports merged into them as duplicates (outside 受理量):
    # 办结率 = 1 / 3 = 33.3 %
    total = derive({"accepted": 3, "closed": 1, "due": 3, "in_progress_own": 2, "merged_duplicates": 2})
    text = summary_paragraph(total, choose_wording(3, 0, 0))
    assert text == "共受理案件3件（另合并重复件2件），已办结1件，正在办理2件，办结率33.3%。"


def test_percent_rounds_half_up():
    assert percent(3644 / 5410) == "67.4%"
    assert percent(0.0005) == "0.1%"  # 0.05 % → 0.1 %, as a reader rounds
    assert percent(1.0) == "100.0%"
    assert percent(None) == "—"


def test_period_text():
    assert period_text(sh(2026, 3, 2), sh(2026, 6, 1), SH) == "2026年3月2日至2026年5月31日"
    assert period_text(sh(2026, 3, 2), sh(2026, 6, 1, 12), SH) == "2026年3月2日至2026年6月1日"
    assert period_text(None, None, SH) == ""
    assert period_text(sh(2026, 3, 2), None, SH) == "2026年3月2日以来"
    assert period_text(None, sh(2026, 6, 1), SH) == "截至2026年5月31日"
