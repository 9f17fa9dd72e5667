"""Unit tests of services.intake.importers (no database, no broker).

The real-data tests compare the importer's output with the ground-truth figures of
/work/shared/data/README.md. Every expected value below is copied from that README (section
named in each test), not computed by running the code.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.intake.importers.formats import (
    DEFAULT_TIMEZONE,
    FORMATS,
    UnknownFormat,
    iter_records,
)
from services.intake.schemas import ReportIn, RowError
from tests.conftest import shared_data

NYC_FILE = "nyc311_2018-10-21_sample.csv"  # ships in data/
FUZHOU_FILE = "fuzhou12345_water_complaints_sample.csv"

TENANT = "test-city"


def _parse_file(fmt: str, name: str) -> list[tuple[int, ReportIn | RowError]]:
    """Every row of sample file ``name`` (tests/conftest.py ``shared_data``: skips when absent)."""
    with shared_data(name).open(encoding="utf-8", newline="") as stream:
        return list(iter_records(fmt, stream, TENANT))


@pytest.fixture(scope="module")
def nyc() -> list[ReportIn]:
    rows = _parse_file("nyc311", NYC_FILE)
    rejects = [r for _, r in rows if isinstance(r, RowError)]
    assert rejects == []
    # file lines: the header is line 1 and no NYC row has a line break in a quoted cell
    assert [n for n, _ in rows] == list(range(2, len(rows) + 2))
    return [r for _, r in rows]


@pytest.fixture(scope="module")
def fuzhou() -> list[ReportIn]:
    rows = _parse_file("fuzhou12345", FUZHOU_FILE)
    rejects = [r for _, r in rows if isinstance(r, RowError)]
    assert rejects == []
    return [r for _, r in rows]


def _parse(fmt: str, text: str, **kwargs) -> list[tuple[int, ReportIn | RowError]]:
    return list(iter_records(fmt, io.StringIO(text, newline=""), TENANT, **kwargs))


def _errors(result: ReportIn | RowError) -> dict[str, str]:
    assert isinstance(result, RowError), result
    return {e["field"]: e["problem"] for e in result.errors}


# --- public constants ---------------------------------------------------------------------------


def test_formats_and_default_timezones():
    # the first three formats and their zones (README: NYC local time; Fuzhou and our JSONL China time);
    # the other cities' formats are tested in test_importers_more.py
    assert FORMATS[:3] == ("nyc311", "fuzhou12345", "jsonl")
    assert {k: DEFAULT_TIMEZONE[k] for k in FORMATS[:3]} == {
        "nyc311": "America/New_York",
        "fuzhou12345": "Asia/Shanghai",
        "jsonl": "Asia/Shanghai",
    }


def test_unknown_format_raises():
    with pytest.raises(UnknownFormat, match="csv-ish"):
        iter_records("csv-ish", io.StringIO(""), TENANT)
    assert issubclass(UnknownFormat, ValueError)


def test_unknown_timezone_raises():
    with pytest.raises(ValueError, match="Mars/Olympus"):
        iter_records("jsonl", io.StringIO(""), TENANT, tz="Mars/Olympus")


# --- NYC 311: real file, README "nyc311_2018-10-21_sample.csv" ground-truth figures ---------------


def test_nyc_rows(nyc):
    assert len(nyc) == 4000  # README: rows: 4000
    assert all(r.source == "nyc311" and r.tenant == TENANT for r in nyc)
    assert len({r.source_id for r in nyc}) == 4000  # Unique Key


def test_nyc_count_by_agency(nyc):
    # README: count by Agency (all 17 values)
    assert Counter(r.history.department for r in nyc) == {
        "HPD": 1458, "NYPD": 1406, "DSNY": 419, "DEP": 170, "DPR": 168, "DOT": 143,
        "DOHMH": 73, "DOB": 57, "TLC": 48, "DHS": 30, "DCA": 12, "HRA": 9, "EDC": 3,
        "DOF": 1, "DOE": 1, "DCAS": 1, "DFTA": 1,
    }  # fmt: skip


def test_nyc_count_by_status(nyc):
    # README: count by Status
    assert Counter(r.history.status for r in nyc) == {
        "Open": 2153, "Closed": 1373, "Assigned": 406, "Pending": 62, "Started": 3,
        "Unassigned": 2, "Email Sent": 1,
    }  # fmt: skip


def test_nyc_closed_and_closed_at(nyc):
    # README: share closed (Status == "Closed"): 0.3432 (1373/4000)
    closed = [r for r in nyc if r.history.closed]
    assert len(closed) == 1373
    assert all(r.history.status == "Closed" for r in closed)
    # README: hours from Created Date to Closed Date over Status == "Closed" rows: n=1372 rows
    assert sum(r.history.closed_at is not None for r in closed) == 1372
    # README: rows with a non-empty Closed Date: 1447 -- those not Closed are still open.
    assert all(r.history.closed_at is None for r in nyc if not r.history.closed)


def test_nyc_hours_to_close(nyc):
    # README: median 1.95 h, mean 2.76 h (n=1372 rows; 0 rows with end < start excluded)
    hours = [
        (r.history.closed_at - r.reported_at).total_seconds() / 3600
        for r in nyc
        if r.history.closed and r.history.closed_at is not None
    ]
    assert len(hours) == 1372
    assert min(hours) >= 0
    assert round(statistics.median(hours), 2) == 1.95
    assert round(statistics.fmean(hours), 2) == 2.76


def test_nyc_created_range_in_new_york_time(nyc):
    # README: Created Date range: 2018-10-21 00:00:00 – 2018-10-22 02:41:00
    ny = ZoneInfo("America/New_York")
    assert min(r.reported_at for r in nyc) == datetime(2018, 10, 21, 0, 0, tzinfo=ny)
    assert max(r.reported_at for r in nyc) == datetime(2018, 10, 22, 2, 41, tzinfo=ny)
    assert all(r.reported_at.utcoffset() == timedelta(hours=-4) for r in nyc)  # EDT


def test_nyc_place_codes_are_community_districts(nyc):
    for r in nyc:
        code = r.place_code
        assert code == "0" or code[0] in "12345", code
        assert len(code) in (1, 3), code


# --- NYC 311: inline rows -----------------------------------------------------------------------

NYC_HEADER = [
    "Unique Key", "Created Date", "Closed Date", "Agency", "Complaint Type", "Descriptor",
    "Status", "Due Date", "Community Board", "Borough", "Open Data Channel Type",
]  # fmt: skip


def _nyc_csv(*rows: dict[str, str], header: list[str] = NYC_HEADER, bom: bool = False) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return ("\ufeff" if bom else "") + out.getvalue()


def _nyc_row(**overrides: str) -> dict[str, str]:
    row = {
        "Unique Key": "40613786",
        "Created Date": "10/21/18 21:44",
        "Closed Date": "",
        "Agency": "DOHMH",
        "Complaint Type": "Rodent ",
        "Descriptor": "Rat Sighting",
        "Status": "Pending",
        "Due Date": "",
        "Community Board": "05 QUEENS",
        "Borough": "QUEENS",
        "Open Data Channel Type": "PHONE",
    }
    row.update(overrides)
    return row


def test_nyc_inline_mapping():
    [(n, r)] = _parse("nyc311", _nyc_csv(_nyc_row()))
    assert n == 2  # the file line: header on line 1
    assert isinstance(r, ReportIn)
    assert r.source_id == "40613786"
    assert r.category_code == "Rodent"
    assert r.description == "Rat Sighting"
    assert r.channel == "PHONE"
    assert r.place_code == "405"
    assert r.reported_at == datetime(2018, 10, 21, 21, 44, tzinfo=ZoneInfo("America/New_York"))
    assert r.history.department == "DOHMH"
    assert r.history.status == "Pending"
    assert r.history.closed is False
    assert r.history.transfers == ()


@pytest.mark.parametrize(
    ("board", "borough", "expected"),
    [
        ("05 QUEENS", "QUEENS", "405"),
        ("12 MANHATTAN", "MANHATTAN", "112"),
        ("01 STATEN ISLAND", "STATEN ISLAND", "501"),
        ("Unspecified BROOKLYN", "BROOKLYN", "3"),
        ("0 Unspecified", "Unspecified", "0"),
        ("", "BRONX", "2"),
        ("garbage", "nowhere", "0"),
    ],
)
def test_nyc_place_code(board, borough, expected):
    row = _nyc_row(**{"Community Board": board, "Borough": borough})
    [(_, r)] = _parse("nyc311", _nyc_csv(row))
    assert r.place_code == expected


def test_nyc_closed_only_when_status_closed():
    rows = _parse(
        "nyc311",
        _nyc_csv(
            _nyc_row(**{"Unique Key": "1", "Status": "Open", "Closed Date": "10/21/18 22:00"}),
            _nyc_row(**{"Unique Key": "2", "Status": "Closed", "Closed Date": "10/21/18 23:15"}),
            _nyc_row(**{"Unique Key": "3", "Status": "Closed", "Closed Date": ""}),
        ),
    )
    ny = ZoneInfo("America/New_York")
    (_, still_open), (_, closed), (_, closed_no_time) = rows
    assert (still_open.history.closed, still_open.history.closed_at) == (False, None)
    assert closed.history.closed is True
    assert closed.history.closed_at == datetime(2018, 10, 21, 23, 15, tzinfo=ny)
    assert (closed_no_time.history.closed, closed_no_time.history.closed_at) == (True, None)


def test_nyc_bad_created_date_is_row_error_and_import_goes_on():
    rows = _parse(
        "nyc311",
        _nyc_csv(
            _nyc_row(**{"Unique Key": "1"}),
            _nyc_row(**{"Unique Key": "2", "Created Date": "yesterday"}),
            _nyc_row(**{"Unique Key": "3", "Created Date": ""}),
            _nyc_row(**{"Unique Key": "4"}),
        ),
    )
    assert [n for n, _ in rows] == [2, 3, 4, 5]  # file lines: the header is line 1
    assert isinstance(rows[0][1], ReportIn) and isinstance(rows[3][1], ReportIn)
    for n, result in rows[1:3]:
        assert result.line == n
        assert "Created Date" in _errors(result)


def test_nyc_validation_error_becomes_row_error():
    [(_, r)] = _parse("nyc311", _nyc_csv(_nyc_row(**{"Complaint Type": "   "})))
    assert "category_code" in _errors(r)


def test_nyc_tz_override():
    [(_, r)] = _parse("nyc311", _nyc_csv(_nyc_row()), tz="UTC")
    assert r.reported_at.utcoffset() == timedelta(0)
    assert r.reported_at.hour == 21


def test_nyc_bom_tolerated():
    [(_, r)] = _parse("nyc311", _nyc_csv(_nyc_row(), bom=True))
    assert isinstance(r, ReportIn)
    assert r.source_id == "40613786"


def test_nyc_missing_columns_named():
    header = [c for c in NYC_HEADER if c not in ("Agency", "Status")]
    text = ",".join(header) + "\r\n"
    with pytest.raises(ValueError, match="Agency, Status"):
        iter_records("nyc311", io.StringIO(text), TENANT)


def test_empty_csv_raises():
    with pytest.raises(ValueError, match="empty"):
        iter_records("nyc311", io.StringIO(""), TENANT)


def test_wrong_field_count_is_row_error():
    text = _nyc_csv(_nyc_row()) + "1,2,3\r\n"
    rows = _parse("nyc311", text)
    assert isinstance(rows[0][1], ReportIn)
    assert rows[1][0] == 3  # header line 1, good row line 2
    assert "" in _errors(rows[1][1])


# --- Fuzhou 12345: real file, README "fuzhou12345_water_complaints_sample.csv" figures ------------


def test_fuzhou_rows(fuzhou):
    assert len(fuzhou) == 652  # README: rows: 652
    assert all(r.source == "fuzhou12345" and r.category_code == "200401" for r in fuzhou)
    assert len({r.source_id for r in fuzhou}) == 652
    assert all(r.history.closed and r.history.status == "已回复" for r in fuzhou)


def test_fuzhou_count_by_district(fuzhou):
    # README: count by 区域: 仓山区: 385, 晋安区: 128, 台江区: 100, 鼓楼区: 34, 马尾区: 5
    assert Counter(r.place_code for r in fuzhou) == {
        "350104": 385,  # 仓山区
        "350111": 128,  # 晋安区
        "350103": 100,  # 台江区
        "350102": 34,  # 鼓楼区
        "350105": 5,  # 马尾区
    }


def test_fuzhou_count_by_nature(fuzhou):
    # README: count by 性质
    assert Counter(r.request_type for r in fuzhou) == {
        "投诉": 544, "咨询": 80, "建议": 20, "举报": 7, "求助": 1,
    }  # fmt: skip


def test_fuzhou_count_by_channel(fuzhou):
    # README: count by 信息来源 lists "微信: 20" and "微信 : 1" separately (one value keeps a
    # trailing space); channel is stripped, so they are one value: 20 + 1 = 21.
    assert Counter(r.channel for r in fuzhou) == {
        "网站": 308, "电话": 255, "e福州app": 36, "微信": 21, "12345app": 14, "qq": 7,
        "微博": 6, "短信": 3, "邮件": 2,
    }  # fmt: skip


def test_fuzhou_transfers(fuzhou):
    # README: 转处理次数 distribution 0: 452, 1: 142, 2: 43, 3: 12, 7: 1, 4: 1, 5: 1; mean 0.429
    counts = Counter(len(r.history.transfers) for r in fuzhou)
    assert counts == {0: 452, 1: 142, 2: 43, 3: 12, 7: 1, 4: 1, 5: 1}
    assert round(statistics.fmean(len(r.history.transfers) for r in fuzhou), 3) == 0.429


def test_fuzhou_days_to_final_reply(fuzhou):
    # README: 最终回复-投诉事件: median 5.0, mean 6.67, 90th percentile 14.0 (n=651)
    days = [
        (r.history.closed_at - r.reported_at).total_seconds() / 86400
        for r in fuzhou
        if r.history.closed_at is not None
    ]
    assert len(days) == 651
    assert statistics.median(days) == 5.0
    assert round(statistics.fmean(days), 2) == 6.67
    # pandas' default quantile (linear) is statistics' "inclusive" method
    assert statistics.quantiles(days, n=10, method="inclusive")[8] == 14.0


def test_fuzhou_dates(fuzhou):
    # README: 时间 range: 2016-02-04 – 2020-12-13
    sh = ZoneInfo("Asia/Shanghai")
    assert min(r.reported_at for r in fuzhou) == datetime(2016, 2, 4, tzinfo=sh)
    assert max(r.reported_at for r in fuzhou) == datetime(2020, 12, 13, tzinfo=sh)
    # README: count by year of 时间
    assert Counter(r.reported_at.year for r in fuzhou) == {
        2018: 208, 2017: 175, 2019: 112, 2020: 90, 2016: 67,
    }  # fmt: skip


# --- Fuzhou 12345: inline rows ------------------------------------------------------------------

FUZHOU_HEADER = [
    "区域", "河流", "性质", "信息来源", "标题", "内容长度", "情感打分，0到1，消极到积极",
    "匿名(1)/实名(0)", "时间", "投诉件内容", "利己=0，利他=1", "回复1", "回复长度",
    "转处理次数", "有效回复条数", "最终回复-投诉事件",
]  # fmt: skip


def _fz_row(**overrides: str) -> dict[str, str]:
    row = {
        "区域": "仓山区",
        "河流": "金港河",
        "性质": "投诉",
        "信息来源": "微信 ",
        "标题": "河水发臭",
        "内容长度": "10.0",
        "情感打分，0到1，消极到积极": "0.4",
        "匿名(1)/实名(0)": "1",
        "时间": "2018-03-20",
        "投诉件内容": "金港河水发黑发臭",
        "利己=0，利他=1": "1",
        "回复1": "已处理",
        "回复长度": "3",
        "转处理次数": "2",
        "有效回复条数": "1",
        "最终回复-投诉事件": "3.0",
    }
    row.update(overrides)
    return row


def _fz_csv(*rows: dict[str, str], bom: bool = False) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=FUZHOU_HEADER, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return ("\ufeff" if bom else "") + out.getvalue()


def test_fuzhou_inline_mapping():
    [(n, r)] = _parse("fuzhou12345", _fz_csv(_fz_row()))
    sh = ZoneInfo("Asia/Shanghai")
    assert n == 2 and isinstance(r, ReportIn)
    assert r.place_code == "350104"
    assert r.category_name == "黑臭水体 black and odorous water"
    assert r.channel == "微信"
    assert r.request_type == "投诉"
    assert r.description == "河水发臭\n金港河水发黑发臭"
    assert r.reported_at == datetime(2018, 3, 20, tzinfo=sh)
    assert r.history.department is None
    assert r.history.closed_at == datetime(2018, 3, 23, tzinfo=sh)
    assert len(r.history.transfers) == 2


def test_fuzhou_unknown_district_is_row_error():
    rows = _parse("fuzhou12345", _fz_csv(_fz_row(), _fz_row(区域="闽侯县")))
    assert isinstance(rows[0][1], ReportIn)
    n, err = rows[1]
    assert n == 3 and err.line == 3  # header line 1, first row line 2
    assert "区域" in _errors(err)


def test_fuzhou_bad_transfer_count_and_date_are_row_errors():
    [(_, err)] = _parse("fuzhou12345", _fz_csv(_fz_row(转处理次数="两次", 时间="2018/03/20")))
    assert set(_errors(err)) == {"转处理次数", "时间"}


def test_fuzhou_missing_reply_days_gives_no_closed_at():
    [(_, r)] = _parse("fuzhou12345", _fz_csv(_fz_row(**{"最终回复-投诉事件": ""})))
    assert r.history.closed is True
    assert r.history.closed_at is None


def test_fuzhou_description_truncated():
    [(_, r)] = _parse("fuzhou12345", _fz_csv(_fz_row(投诉件内容="臭" * 5000)))
    assert len(r.description) == 4000


def test_fuzhou_ids_stable_and_distinct_for_identical_rows():
    text = _fz_csv(_fz_row(), _fz_row(), _fz_row(河流="龙津河"), _fz_row())
    first = [r.source_id for _, r in _parse("fuzhou12345", text)]
    second = [r.source_id for _, r in _parse("fuzhou12345", text)]
    assert first == second
    assert len(set(first)) == 4
    prefix = first[0].rsplit("-", 1)[0]
    assert len(prefix) == 16
    assert first[0] == f"{prefix}-0"
    assert first[1] == f"{prefix}-1"
    assert first[3] == f"{prefix}-2"
    assert first[2].endswith("-0") and not first[2].startswith(prefix)


def test_fuzhou_bom_tolerated_and_same_ids():
    plain = [r.source_id for _, r in _parse("fuzhou12345", _fz_csv(_fz_row()))]
    with_bom = _parse("fuzhou12345", _fz_csv(_fz_row(), bom=True))
    assert isinstance(with_bom[0][1], ReportIn)
    assert [r.source_id for _, r in with_bom] == plain


def test_fuzhou_missing_column_named():
    header = [c for c in FUZHOU_HEADER if c != "区域"]
    with pytest.raises(ValueError, match="区域"):
        iter_records("fuzhou12345", io.StringIO(",".join(header) + "\n"), TENANT)


# --- jsonl --------------------------------------------------------------------------------------


def _report(**overrides) -> dict:
    obj = {
        "category_code": "100401",
        "place_code": "350102001001",
        "reported_at": "2024-05-01T08:30:00",
        "channel": "grid_worker",
    }
    obj.update(overrides)
    return obj


def _jsonl(*lines: object) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def test_jsonl_defaults_tenant_and_localises_naive_time():
    [(n, r)] = _parse("jsonl", _jsonl(_report()))
    assert n == 1 and isinstance(r, ReportIn)
    assert r.tenant == TENANT
    assert r.reported_at == datetime(2024, 5, 1, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert r.reported_at.utcoffset() == timedelta(hours=8)


def test_jsonl_aware_time_kept_and_same_tenant_accepted():
    [(_, r)] = _parse("jsonl", _jsonl(_report(tenant=TENANT, reported_at="2024-05-01T00:30:00Z")))
    assert isinstance(r, ReportIn)
    assert r.reported_at.utcoffset() == timedelta(0)


def test_jsonl_tenant_mismatch():
    [(_, err)] = _parse("jsonl", _jsonl(_report(tenant="other-city")))
    assert "tenant" in _errors(err)


def test_jsonl_invalid_json_blank_lines_and_physical_line_numbers():
    text = _jsonl(_report(), "", "{not json", "   ", _report(), "[1, 2]")
    rows = _parse("jsonl", text)
    assert [n for n, _ in rows] == [1, 3, 5, 6]
    assert isinstance(rows[0][1], ReportIn) and isinstance(rows[2][1], ReportIn)
    bad = rows[1][1]
    assert bad.line == 3
    assert _errors(bad)[""].startswith("invalid JSON: ")
    assert "" in _errors(rows[3][1])


def test_jsonl_validation_errors_use_dotted_locations():
    obj = _report(urgency="unknown", history={"closed": "maybe"})
    [(_, err)] = _parse("jsonl", _jsonl(obj))
    fields = _errors(err)
    assert "urgency" in fields
    assert "history.closed" in fields


def test_jsonl_bom_tolerated():
    [(_, r)] = _parse("jsonl", "\ufeff" + _jsonl(_report()))
    assert isinstance(r, ReportIn)


def test_jsonl_history_times_localised():
    obj = _report(history={"closed": True, "closed_at": "2024-05-02T09:00:00"})
    [(_, r)] = _parse("jsonl", _jsonl(obj))
    assert r.history.closed_at == datetime(2024, 5, 2, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
