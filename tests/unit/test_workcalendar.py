"""shared.domain.workcalendar: Chinese working days, limits, deadlines, alert levels and pauses.

Holiday facts are copied from the State Council General Office's notices (国务院办公厅):

- 2025: 《国务院办公厅关于2025年部分节假日安排的通知》(国办发明电〔2024〕12号, 2024-11-12):
  国庆节、中秋节 10月1日(周三)至8日(周三)放假调休,共8天; 9月28日(周日)、10月11日(周六)上班.
- 2026: 《国务院办公厅关于2026年部分节假日安排的通知》(2025-11-04, Xinhua; gov.cn
  zhengce/content/202511/content_7047090.htm): 春节 2月15日(周日)至23日(周一)放假调休,共9天,
  2月14日(周六)、2月28日(周六)上班; 中秋节 9月25日(周五)至27日(周日); 国庆节 10月1日(周四)至
  7日(周三)放假调休,共7天, 9月20日(周日)、10月10日(周六)上班.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.workcalendar import (
    DEFAULT_TZ,
    URGENCY_LIMITS,
    CalendarRangeError,
    Limit,
    WorkCalendar,
    add_working_days,
    alert_level,
    dispose_deadline,
    elapsed_fraction,
    higher_supervision_at,
    is_working_day,
    limits_for,
    paused_time,
    red_at,
    resume,
    working_time_between,
    yellow_at,
)
from tests.hypothesis_profiles import examples

SH = DEFAULT_TZ


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


# --------------------------------------------------------------------------- calendar facts


def test_national_day_2025_holidays_and_adjusted_working_days():
    for d in days(date(2025, 10, 1), date(2025, 10, 8)):
        assert not is_working_day(d), d
    assert is_working_day(date(2025, 9, 28))  # Sunday, 调休 working day
    assert is_working_day(date(2025, 10, 11))  # Saturday, 调休 working day
    assert not is_working_day(date(2025, 9, 27))  # ordinary Saturday
    assert is_working_day(date(2025, 9, 30))
    assert is_working_day(date(2025, 10, 9))
    assert not is_working_day(date(2025, 10, 12))  # ordinary Sunday


def test_spring_festival_2026_per_official_notice():
    for d in days(date(2026, 2, 15), date(2026, 2, 23)):
        assert not is_working_day(d), d
    assert is_working_day(date(2026, 2, 14))  # Saturday, 调休
    assert is_working_day(date(2026, 2, 28))  # Saturday, 调休
    assert is_working_day(date(2026, 2, 13))
    assert is_working_day(date(2026, 2, 24))


def test_mid_autumn_and_national_day_2026_per_official_notice():
    for d in days(date(2026, 9, 25), date(2026, 9, 27)):
        assert not is_working_day(d), d
    for d in days(date(2026, 10, 1), date(2026, 10, 7)):
        assert not is_working_day(d), d
    assert is_working_day(date(2026, 9, 20))  # Sunday, 调休
    assert is_working_day(date(2026, 10, 10))  # Saturday, 调休
    assert is_working_day(date(2026, 10, 8))
    assert not is_working_day(date(2026, 10, 11))


def test_year_without_data_raises_instead_of_guessing():
    from shared.domain.workcalendar import STRICT_CALENDAR

    with pytest.raises(CalendarRangeError):
        is_working_day(date(2027, 3, 3), calendar=STRICT_CALENDAR)
    with pytest.raises(CalendarRangeError):
        add_working_days(at(2026, 12, 28, 9), 10, calendar=STRICT_CALENDAR)


def test_services_default_calendar_does_not_stall_beyond_the_data():
    # The default (lenient) calendar counts Monday-Friday in years the package does not cover, so a
    # deadline reaching into the next year cannot stop dispatch before the package is upgraded.
    assert is_working_day(date(2027, 3, 3))  # a Wednesday
    assert not is_working_day(date(2027, 3, 6))  # a Saturday


def test_extra_dates_override_and_extend_the_calendar():
    cal = WorkCalendar(holidays=[date(2025, 3, 5)], workdays=[date(2025, 3, 8)])
    assert not cal.is_working_day(date(2025, 3, 5))
    assert cal.is_working_day(date(2025, 3, 8))
    # a caller that supplies a later year's official dates may enable that year
    later = WorkCalendar(extra_years=[2027])
    assert later.is_working_day(date(2027, 3, 3))  # a Wednesday
    with pytest.raises(ValueError):
        WorkCalendar(holidays=[date(2025, 3, 5)], workdays=[date(2025, 3, 5)])


# --------------------------------------------------------------------------- adding working days


def test_five_working_days_from_a_friday_keep_the_clock_time():
    assert add_working_days(at(2025, 3, 7, 9, 30), 5) == at(2025, 3, 14, 9, 30)


def test_five_working_days_from_a_friday_across_national_day_2025():
    # Fri 26 (from 10:00), Sun 28 (调休), Mon 29, Tue 30, Thu Oct 9, Fri Oct 10 until 10:00
    assert add_working_days(at(2025, 9, 26, 10), 5) == at(2025, 10, 10, 10)


def test_start_inside_a_holiday_counts_from_the_next_working_day_midnight():
    start = at(2025, 10, 4, 15)  # Saturday inside the National Day holiday
    assert add_working_days(start, 1) == at(2025, 10, 10)  # the whole of Thu Oct 9
    # Oct 9, Oct 10, Sat Oct 11 (调休), Mon 13, Tue 14
    assert add_working_days(start, 5) == at(2025, 10, 15)


def test_spring_festival_2026_adjusted_saturday_counts():
    assert add_working_days(at(2026, 2, 13, 16), 1) == at(2026, 2, 14, 16)
    assert add_working_days(at(2026, 2, 13, 16), 2) == at(2026, 2, 24, 16)


def test_zero_days_and_errors():
    assert add_working_days(at(2025, 10, 3, 12), 0) == at(2025, 10, 3, 12)
    with pytest.raises(ValueError):
        add_working_days(at(2025, 3, 3), -1)
    with pytest.raises(ValueError):
        add_working_days(datetime(2025, 3, 3, 9), 1)  # naive


def test_result_is_in_the_requested_zone():
    utc_start = datetime(2025, 3, 7, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    result = add_working_days(utc_start, 5)
    assert result == at(2025, 3, 14, 9, 30) and result.tzinfo == SH


def test_working_time_between_skips_holidays():
    assert working_time_between(at(2025, 9, 30, 12), at(2025, 10, 9, 12)) == timedelta(hours=24)
    assert working_time_between(at(2025, 3, 8), at(2025, 3, 10)) == timedelta(0)  # a weekend
    assert working_time_between(at(2025, 3, 10), at(2025, 3, 8)) == timedelta(0)


# --------------------------------------------------------------------------- limits and alerts


def test_urgency_table_of_domain_md():
    assert URGENCY_LIMITS["特急"].respond == Limit(0.5, "hours")
    assert URGENCY_LIMITS["特急"].dispose == Limit(2, "hours")
    assert URGENCY_LIMITS["紧急"].respond == Limit(2, "hours")
    assert URGENCY_LIMITS["紧急"].dispose == Limit(24, "hours")
    assert URGENCY_LIMITS["一般"].respond == Limit(1, "working_days")
    assert URGENCY_LIMITS["一般"].dispose == Limit(5, "working_days")
    assert URGENCY_LIMITS["复杂"].dispose == Limit(15, "working_days")


def test_category_overrides_apply_to_routine_urgencies_only():
    overrides = {"100102": Limit.of_hours(4), "100401": Limit.of_working_days(3)}
    assert limits_for("一般", "100102", overrides).dispose == Limit(4, "hours")
    assert limits_for("复杂", "100401", overrides).dispose == Limit(3, "working_days")
    assert limits_for("一般", "300101", overrides).dispose == Limit(5, "working_days")
    assert limits_for("特急", "100102", overrides).dispose == Limit(2, "hours")
    with pytest.raises(ValueError):
        limits_for("urgent")


@pytest.mark.parametrize("value, unit", [(0, "hours"), (-1, "working_days"), (1, "days"),
                                         (float("nan"), "hours"), (True, "hours")])
def test_bad_limits_are_rejected(value, unit):
    with pytest.raises(ValueError):
        Limit(value, unit)


def test_hour_limits_are_natural_hours_even_on_holidays():
    start = at(2025, 10, 1, 8)  # National Day
    assert dispose_deadline(start, Limit.of_hours(2)) == at(2025, 10, 1, 10)
    assert yellow_at(start, Limit.of_hours(2)) == at(2025, 10, 1, 9, 36)
    assert dispose_deadline(at(2025, 3, 8, 20), Limit.of_hours(24)) == at(2025, 3, 9, 20)
    assert elapsed_fraction(start, at(2025, 10, 1, 9), Limit.of_hours(2)) == pytest.approx(0.5)


def test_yellow_at_80_percent_and_red_at_100_percent_of_working_days():
    start, limit = at(2025, 3, 3, 10), Limit.of_working_days(5)  # Monday
    yellow, red = yellow_at(start, limit), red_at(start, limit)
    assert yellow == at(2025, 3, 7, 10)  # 4 WD
    assert red == dispose_deadline(start, limit) == at(2025, 3, 10, 10)
    assert elapsed_fraction(start, yellow, limit) == pytest.approx(0.8)
    assert elapsed_fraction(start, red, limit) == pytest.approx(1.0)
    assert alert_level(elapsed_fraction(start, yellow - timedelta(minutes=1), limit)) == "green"
    assert alert_level(elapsed_fraction(start, yellow, limit)) == "yellow"
    assert alert_level(elapsed_fraction(start, red - timedelta(minutes=1), limit)) == "yellow"
    assert alert_level(elapsed_fraction(start, red, limit)) == "red"
    # the weekend does not count
    assert elapsed_fraction(start, at(2025, 3, 8, 12), limit) == elapsed_fraction(
        start, at(2025, 3, 8), limit)
    assert elapsed_fraction(start, start - timedelta(hours=1), limit) == 0.0


def test_alert_level_thresholds():
    assert alert_level(0.0) == "green"
    assert alert_level(0.7999) == "green"
    assert alert_level(0.8) == "yellow"
    assert alert_level(0.9999) == "yellow"
    assert alert_level(1.0) == "red"
    assert alert_level(3.0) == "red"


def test_higher_supervision_five_working_days_after_red():
    assert higher_supervision_at(at(2025, 3, 10, 10)) == at(2025, 3, 17, 10)
    # red on Tue 2025-09-30 10:00: Sep 30, Oct 9, 10, 11 (Sat 调休), 13, until Tue 14 10:00
    assert higher_supervision_at(at(2025, 9, 30, 10)) == at(2025, 10, 14, 10)


# --------------------------------------------------------------------------- pauses (挂账)


def test_pause_shifts_the_deadline_by_the_paused_working_time():
    limit = Limit.of_working_days(5)
    deadline = at(2025, 3, 10, 10)
    # Tue 12:00 → next Mon 12:00 = 12 h + 3 days + 12 h = 4 WD of working time
    paused_from, resumed_at = at(2025, 3, 4, 12), at(2025, 3, 10, 12)
    assert paused_time(paused_from, resumed_at, limit) == timedelta(days=4)
    assert resume(deadline, paused_from, resumed_at, limit) == at(2025, 3, 14, 10)


def test_pause_over_a_holiday_costs_only_its_working_time():
    limit = Limit.of_working_days(5)
    paused_from, resumed_at = at(2025, 9, 30, 12), at(2025, 10, 9, 12)
    assert paused_time(paused_from, resumed_at, limit) == timedelta(days=1)
    assert resume(at(2025, 10, 10, 10), paused_from, resumed_at, limit) == at(2025, 10, 11, 10)


def test_pause_of_an_hour_limit_is_natural_time_and_counts_in_elapsed_fraction():
    limit = Limit.of_hours(24)
    assert resume(at(2025, 3, 9, 20), at(2025, 3, 9, 8), at(2025, 3, 9, 11), limit) == at(2025, 3, 9, 23)
    start = at(2025, 3, 8, 20)
    assert elapsed_fraction(start, at(2025, 3, 9, 20), limit,
                            paused_seconds=6 * 3600) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        resume(at(2025, 3, 9, 20), at(2025, 3, 9, 11), at(2025, 3, 9, 8), limit)


def test_elapsed_fraction_of_working_days_minus_pause():
    start, limit = at(2025, 3, 3, 10), Limit.of_working_days(5)
    pause = paused_time(at(2025, 3, 4, 10), at(2025, 3, 5, 10), limit).total_seconds()
    assert elapsed_fraction(start, at(2025, 3, 7, 10), limit, pause) == pytest.approx(0.6)


# --------------------------------------------------------------------------- properties

starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 6, 30),
                      timezones=st.just(SH))
minutes = st.integers(min_value=0, max_value=20 * 24 * 60)


@settings(max_examples=examples(200), deadline=None)
@given(start=starts, amount=minutes)
def test_property_add_then_measure_round_trips(start, amount):
    delta = timedelta(minutes=amount)
    end = add_working_days(start, delta / timedelta(days=1))
    assert abs(working_time_between(start, end) - delta) < timedelta(milliseconds=1)
    assert end >= start


@settings(max_examples=examples(200), deadline=None)
@given(start=starts, a=minutes, b=minutes)
def test_property_adding_is_monotone_and_lands_on_working_days(start, a, b):
    lo, hi = sorted((a, b))
    t_lo = add_working_days(start, lo / (24 * 60))
    t_hi = add_working_days(start, hi / (24 * 60))
    assert t_lo <= t_hi
    if hi > 0:
        # the earliest instant: just before it there is less working time
        assert is_working_day((t_hi - timedelta(microseconds=1)).date())


@settings(max_examples=examples(150), deadline=None)
@given(start=starts, n=st.integers(1, 15), pause_at=minutes, pause_len=minutes)
def test_property_resume_shifts_by_exactly_the_paused_working_time(start, n, pause_at, pause_len):
    limit = Limit.of_working_days(n)
    deadline = dispose_deadline(start, limit)
    paused_from = start + timedelta(minutes=pause_at)
    resumed_at = paused_from + timedelta(minutes=pause_len)
    new = resume(deadline, paused_from, resumed_at, limit)
    assert working_time_between(deadline, new) == working_time_between(paused_from, resumed_at)
    assert new >= deadline
