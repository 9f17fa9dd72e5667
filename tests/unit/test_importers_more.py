"""Unit tests of the import formats added by issue 7 (sf311, baltimore311, boston311, the three
Teddy Cup formats, generic csv) and of the tenant files they import into. No database, no broker.

Every expected figure of the real-data tests is copied from /work/shared/data/README.md (the
"Ground-truth figures" of the section named in each test); none comes from running this code.
Department keys are the README's names passed through ``department_code`` (the tenant files list
the same codes with the README name as ``name_en``).

Time to close: the README subtracted naive wall-clock times (pandas, no zone), so the exact
figures are checked on wall-clock differences; the true elapsed time (what reporting computes in
UTC) differs by at most one hour per case that spans a DST change, which is checked too.
"""

from __future__ import annotations

import io
import math
import statistics
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from services.intake.importers.codes import category_code, department_code
from services.intake.importers.formats import DEFAULT_TIMEZONE, FORMATS, iter_records
from services.intake.importers.mapping import load_mapping, parse_time
from services.intake.importers.sources.mapped import BALTIMORE311_MAPPING, SF311_MAPPING
from services.intake.importers.sources.teddycup import TEDDYCUP_LABELLED_REPORTED_AT
from services.intake.schemas import ReportIn, RowError
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import load_tenant
from tests.conftest import REPO, shared_data

TENANT = "test-city"
TENANTS_DIR = REPO / "deploy" / "tenants"


# --- helpers ------------------------------------------------------------------------------------


def parse(fmt: str, name: str, **kwargs) -> list[ReportIn]:
    """All records of a shared data file; fails on any rejected row."""
    with shared_data(name).open(encoding="utf-8", newline="") as stream:
        rows = list(iter_records(fmt, stream, TENANT, **kwargs))
    rejects = [r for _, r in rows if isinstance(r, RowError)]
    assert rejects == [], rejects[:3]
    # file lines (header = line 1): rising from 2, quoted cells with line breaks take more than one
    lines = [n for n, _ in rows]
    assert lines[0] == 2 and all(a < b for a, b in zip(lines, lines[1:], strict=False)), lines[:5]
    assert lines[-1] <= shared_data(name).read_text(encoding="utf-8").count("\n")
    return [r for _, r in rows]


def parse_text(fmt: str, text: str, **kwargs) -> list[ReportIn | RowError]:
    return [r for _, r in iter_records(fmt, io.StringIO(text, newline=""), TENANT, **kwargs)]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (pandas ``quantile`` default, numpy ``linear``)."""
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def durations(records: list[ReportIn], unit_s: float, wall_clock: bool = True) -> tuple[list[float], int]:
    """Close durations of closed records with both times (``unit_s`` seconds per unit), and the
    number left out because the end is before the start (README "Time to close")."""
    out, excluded = [], 0
    for r in records:
        h = r.history
        if h is None or not h.closed or h.closed_at is None:
            continue
        if wall_clock:
            seconds = (naive(h.closed_at) - naive(r.reported_at)).total_seconds()
        else:
            seconds = (h.closed_at.astimezone(UTC) - r.reported_at.astimezone(UTC)).total_seconds()
        if seconds < 0:
            excluded += 1
        else:
            out.append(seconds / unit_s)
    return out, excluded


def summary(values: list[float]) -> tuple[float, float, float]:
    return (round(statistics.median(values), 2), round(statistics.fmean(values), 2), round(percentile(values, 0.9), 2))


def by_department(records: list[ReportIn]) -> Counter:
    return Counter(r.history.department for r in records)


def codes(counts: dict[str, int]) -> dict[str, int]:
    """README department names -> department codes."""
    return {department_code(name): n for name, n in counts.items()}


def top(counter: Counter, n: int) -> dict:
    return dict(counter.most_common(n))


# --- constants ----------------------------------------------------------------------------------


def test_new_formats_and_their_zones():
    assert set(FORMATS) >= {"sf311", "baltimore311", "boston311", "teddycup_messages",
                            "teddycup_labelled", "teddycup_replies", "csv"}
    assert set(DEFAULT_TIMEZONE) == set(FORMATS)
    assert DEFAULT_TIMEZONE["sf311"] == "America/Los_Angeles"
    assert DEFAULT_TIMEZONE["baltimore311"] == "America/New_York"
    assert DEFAULT_TIMEZONE["boston311"] == "America/New_York"
    for fmt in ("teddycup_messages", "teddycup_labelled", "teddycup_replies"):
        assert DEFAULT_TIMEZONE[fmt] == "Asia/Shanghai"


# --- San Francisco ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sf() -> list[ReportIn]:
    return parse("sf311", "sf311_2008-2016_sample.csv")


def test_sf311_rows_ids_and_range(sf):
    # README sf311: rows 5000; Opened range 2008-07-01 17:09:00 – 2016-01-27 16:03:10
    assert len(sf) == 5000
    assert len({r.source_id for r in sf}) == 5000
    assert {r.source for r in sf} == {"sf311"}
    assert min(naive(r.reported_at) for r in sf) == datetime(2008, 7, 1, 17, 9, 0)
    assert max(naive(r.reported_at) for r in sf) == datetime(2016, 1, 27, 16, 3, 10)
    assert all(r.reported_at.tzinfo == ZoneInfo("America/Los_Angeles") for r in sf)


def test_sf311_departments_are_the_queues(sf):
    counts = by_department(sf)
    # README: distinct Responsible.Agency 124; top 15 … (+109 more categories, 667 rows)
    assert len(counts) == 124
    assert top(counts, 15) == codes({
        "DPW Ops Queue": 2254, "Recology_Abandoned": 421, "DPT Abandoned Vehicles Work Queue": 365,
        "DPW BSM Queue": 256, "DPT Meter_Bike Queue": 195, "PUC Sewer Ops": 163, "311 HA SR Queue": 103,
        "DPW BSSR Queue": 94, "PG and E - Streetlights Queue": 84, "Housing Authority SR Queue": 77,
        "MUNI Work Queue": 75, "PUC Streetlights Queue": 68, "311 Service Request Queue - Hold": 63,
        "311 Supervisor Queue": 59, "PUC - Water - G": 56,
    })
    assert sum(n for _, n in counts.most_common()[15:]) == 667


def test_sf311_status_and_share_closed(sf):
    # README: count by Status: Closed 4762, Open 238; share closed 0.9524
    assert Counter(r.history.status for r in sf) == {"Closed": 4762, "Open": 238}
    closed = sum(r.history.closed for r in sf)
    assert closed == 4762 and round(closed / len(sf), 4) == 0.9524
    assert all(r.history.closed_at is None for r in sf if not r.history.closed)


def test_sf311_time_to_close(sf):
    # README: median 69.47 h, mean 768.82 h, p90 1320.39 h (n=4692; 70 with end < start excluded)
    hours, excluded = durations(sf, 3600)
    assert (len(hours), excluded) == (4692, 70)
    assert summary(hours) == (69.47, 768.82, 1320.39)


def test_sf311_channels_and_districts(sf):
    # README: count by Source; count by Supervisor.District (as SF00–SF11)
    assert Counter(r.channel for r in sf) == {
        "Voice In": 3309, "Open311": 740, "Web Self Service": 676, "Integrated Agency": 189,
        "Twitter": 78, "Other Department": 5, "e-mail In": 3,
    }
    district = {"9": 709, "6": 662, "5": 626, "8": 560, "3": 491, "10": 485, "1": 390, "2": 293,
                "11": 288, "7": 268, "4": 215, "0": 13}
    assert Counter(r.place_code for r in sf) == {f"SF{int(d):02d}": n for d, n in district.items()}


# --- Baltimore ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baltimore() -> list[ReportIn]:
    return parse("baltimore311", "baltimore311_2014-2019_sample.csv")


def test_baltimore311_rows_and_agencies(baltimore):
    # README baltimore311: rows 5000; CreatedDate range 2014-01-02 05:22:35 – 2019-02-13 15:33:54
    assert len(baltimore) == 5000 and len({r.source_id for r in baltimore}) == 5000
    assert min(naive(r.reported_at) for r in baltimore) == datetime(2014, 1, 2, 5, 22, 35)
    assert max(naive(r.reported_at) for r in baltimore) == datetime(2019, 2, 13, 15, 33, 54)
    # README: count by Agency
    assert by_department(baltimore) == codes({
        "Solid Waste": 2406, "Transportation": 836, "Housing": 593, "Water Wastewater": 404,
        "Finance": 179, "BGE": 177, "Health": 155, "Recreation & Parks": 93, "Call Center": 79,
        "Fire Department": 62, "Parking Authority": 7, "Liquor Board": 4, "Public Works": 3,
        "Police Department": 1, "Mayor's Office": 1,
    })


def test_baltimore311_status_closed_and_transfers(baltimore):
    # README: count by SRStatus; share closed (starts with "Closed") 0.9794 (4897/5000)
    assert Counter(r.history.status for r in baltimore) == {
        "Closed": 4786, "Closed (Duplicate)": 100, "Open": 55, "New": 33, "Closed (Transferred)": 11,
        "Pending": 9, "Open (Duplicate)": 4, "New (Duplicate)": 2,
    }
    closed = sum(r.history.closed for r in baltimore)
    assert closed == 4897 and round(closed / 5000, 4) == 0.9794
    # "Closed (Transferred)": one recorded transfer, destination and time unknown (not invented)
    transferred = [r for r in baltimore if r.history.transfers]
    assert len(transferred) == 11
    assert all(r.history.status == "Closed (Transferred)" for r in transferred)
    assert all(t.to_department is None and t.at is None for r in transferred for t in r.history.transfers)


def test_baltimore311_time_to_close(baltimore):
    # README: median 38.47 h, mean 282.15 h, p90 638.42 h (n=4897; 0 excluded)
    hours, excluded = durations(baltimore, 3600)
    assert (len(hours), excluded) == (4897, 0)
    assert summary(hours) == (38.47, 282.15, 638.42)


def test_baltimore311_channels_and_council_districts(baltimore):
    # README: count by MethodReceived; count by CouncilDistrict ((empty) -> the city "BAL")
    assert Counter(r.channel for r in baltimore) == {
        "Phone": 2490, "API": 1294, "Internal": 1088, "Mail": 106, "System": 10, "Other": 7, "Email": 4, "Web": 1,
    }
    council = {"": 445, "13": 442, "1": 438, "9": 437, "7": 428, "12": 422, "11": 357, "10": 343,
               "14": 270, "4": 268, "6": 263, "8": 256, "3": 247, "2": 204, "5": 180}
    assert Counter(r.place_code for r in baltimore) == {
        (f"BAL{int(d):02d}" if d else "BAL"): n for d, n in council.items()
    }


def test_baltimore311_top_types(baltimore):
    # README: top 10 SRType
    assert top(Counter(r.category_code for r in baltimore), 10) == {
        "SW-Rat Rubout Proactive": 840, "SW-Bulk Scheduled": 453, "HCD-Sanitation Property": 366,
        "TRS-Parking Complaint": 184, "SW-Dirty Alley": 176, "BGE-StLight(s) Out": 139, "SW-HGW": 137,
        "SW-Dirty Street": 125, "SW-Dirty Street Proactive": 121, "WW-Water Leak (Exterior)": 103,
    }


# --- Boston -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boston() -> list[ReportIn]:
    return parse("boston311", "boston311_2015_sample.csv")


def test_boston311_rows_and_subjects(boston):
    # README boston311: rows 3500; OPEN_DT range 2015-01-01 12:33:18 – 2015-12-31 14:27:00
    assert len(boston) == 3500 and len({r.source_id for r in boston}) == 3500
    assert min(naive(r.reported_at) for r in boston) == datetime(2015, 1, 1, 12, 33, 18)
    assert max(naive(r.reported_at) for r in boston) == datetime(2015, 12, 31, 14, 27, 0)
    # README: count by SUBJECT (department name)
    assert by_department(boston) == codes({
        "Public Works Department": 1474, "Inspectional Services": 677, "Transportation - Traffic Division": 473,
        "Parks & Recreation Department": 298, "Mayor's 24 Hour Hotline": 218, "Property Management": 117,
        "Animal Control": 101, "Civil Rights": 83, "Disability Department": 34,
        "Boston Water & Sewer Commission": 21, "Youthline": 3, "Boston Police Department": 1,
    })


def test_boston311_status_and_time_to_close(boston):
    # README: CASE_STATUS Closed 2901, Open 599; share closed 0.8289;
    # median 62.07 h, mean 316.45 h, p90 854.38 h (n=2896; 5 with end < start excluded)
    assert Counter(r.history.status for r in boston) == {"Closed": 2901, "Open": 599}
    assert round(sum(r.history.closed for r in boston) / 3500, 4) == 0.8289
    hours, excluded = durations(boston, 3600)
    assert (len(hours), excluded) == (2896, 5)
    assert summary(hours) == (62.07, 316.45, 854.38)


def test_boston311_channels_and_neighbourhoods(boston):
    # README: count by Source; top 10 neighborhood ((empty) -> the city "BOS")
    assert Counter(r.channel for r in boston) == {
        "Constituent Call": 1806, "Citizens Connect App": 531, "Employee Generated": 426, "Self Service": 370,
        "City Worker App": 364, "Maximo Integration": 2, "Twitter": 1,
    }
    boston_tenant = load_tenant("boston", TENANTS_DIR)
    names = Counter(boston_tenant.place(r.place_code).name_en if r.place_code != "BOS" else "(empty)" for r in boston)
    assert top(names, 10) == {
        "Dorchester": 439, "(empty)": 316, "Roxbury": 270, "Allston / Brighton": 244,
        "Downtown / Financial District": 232, "East Boston": 230, "Jamaica Plain": 225,
        "South Boston / South Boston Waterfront": 215, "West Roxbury": 159, "Hyde Park": 146,
    }


def test_us_time_to_close_true_elapsed_within_one_hour_of_wall_clock(sf, baltimore, boston):
    """Reporting computes true elapsed time; DST moves each duration by at most 1 h, hence each
    order statistic and the mean by at most 1 h (the tolerance the e2e tests use)."""
    for records in (sf, baltimore, boston):
        wall, _ = durations(records, 3600)
        utc, _ = durations(records, 3600, wall_clock=False)
        assert len(wall) == len(utc)
        for a, b in zip(summary(wall), summary(utc), strict=True):
            assert abs(a - b) <= 1.0


# --- Teddy Cup ------------------------------------------------------------------------------------


def test_teddycup_messages():
    records = parse("teddycup_messages", "teddycup2020c_fj2_messages_sample.csv")
    # README fj2: rows 300; 留言时间 range 2011-05-24 10:20:22 – 2020-01-07 21:31:53
    assert len(records) == 300 and len({r.source_id for r in records}) == 300
    assert min(naive(r.reported_at) for r in records) == datetime(2011, 5, 24, 10, 20, 22)
    assert max(naive(r.reported_at) for r in records) == datetime(2020, 1, 7, 21, 31, 53)
    # README: count by 一级分类
    assert Counter(r.category_code for r in records) == {
        "城乡建设": 65, "劳动和社会保障": 61, "教育文体": 59, "卫生计生": 40, "交通运输": 30, "商贸旅游": 26, "环境保护": 19,
    }
    # README: count by year of 留言时间
    assert Counter(r.reported_at.year for r in records) == {
        2019: 79, 2018: 45, 2017: 38, 2014: 35, 2015: 34, 2016: 25, 2012: 18, 2013: 14, 2011: 9, 2020: 3,
    }
    # no status or close time: plain reports
    assert all(r.history is None and r.source == "teddycup" and r.place_code == "0" for r in records)


def test_teddycup_labelled():
    records = parse("teddycup_labelled", "teddycup2020c_fj2full_labelled_details_sample.csv")
    # README fj2full: rows 1200; count by 一级标签; mean length of 留言详情 411.2 characters
    assert len(records) == 1200 and len({r.source_id for r in records}) == 1200
    assert Counter(r.category_code for r in records) == {
        "城乡建设": 292, "劳动和社会保障": 246, "教育文体": 221, "商贸旅游": 134, "卫生计生": 116, "环境保护": 116, "交通运输": 75,
    }
    assert round(statistics.fmean(len(r.description) for r in records), 1) == 411.2
    # no time column: the documented fixed moment
    assert {r.reported_at for r in records} == {TEDDYCUP_LABELLED_REPORTED_AT}
    assert TEDDYCUP_LABELLED_REPORTED_AT.isoformat() == "2020-01-01T00:00:00+08:00"
    assert all(r.history is None for r in records)


def test_teddycup_replies():
    records = parse("teddycup_replies", "teddycup2020c_fj4_replies_sample.csv")
    # README fj4: rows 1000; 留言时间 range 2011-04-02 18:00:54 – 2020-01-06 08:31:19; replied 1.0000
    assert len(records) == 1000 and len({r.source_id for r in records}) == 1000
    assert min(naive(r.reported_at) for r in records) == datetime(2011, 4, 2, 18, 0, 54)
    assert max(naive(r.reported_at) for r in records) == datetime(2020, 1, 6, 8, 31, 19)
    assert all(r.history.closed and r.history.closed_at is not None for r in records)
    assert all(r.history.department is None for r in records)
    # README: median 11.94 days, mean 22.82, p90 41.66 (n=1000; 0 excluded); no DST in China
    days, excluded = durations(records, 86400)
    assert (len(days), excluded) == (1000, 0)
    assert summary(days) == (11.94, 22.82, 41.66)
    utc_days, _ = durations(records, 86400, wall_clock=False)
    assert utc_days == days
    # README: share replied within 7 / 15 / 30 days: 0.3400 / 0.5920 / 0.8300
    assert [round(sum(d <= k for d in days) / 1000, 4) for k in (7, 15, 30)] == [0.34, 0.592, 0.83]
    # README: count by year of 留言时间
    assert Counter(r.reported_at.year for r in records) == {
        2019: 317, 2018: 296, 2017: 147, 2016: 80, 2013: 46, 2015: 45, 2014: 37, 2012: 26, 2011: 4, 2020: 2,
    }


# --- tenant files -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,name,tenant", [
    ("sf311", "sf311_2008-2016_sample.csv", "sf"),
    ("baltimore311", "baltimore311_2014-2019_sample.csv", "baltimore"),
    ("boston311", "boston311_2015_sample.csv", "boston"),
    ("teddycup_messages", "teddycup2020c_fj2_messages_sample.csv", "teddycup"),
    ("teddycup_labelled", "teddycup2020c_fj2full_labelled_details_sample.csv", "teddycup"),
    ("teddycup_replies", "teddycup2020c_fj4_replies_sample.csv", "teddycup"),
])
def test_every_place_and_department_is_in_the_tenant_file(fmt, name, tenant):
    config = load_tenant(tenant, TENANTS_DIR)
    assert config.timezone == DEFAULT_TIMEZONE[fmt]
    records = parse(fmt, name)
    assert {r.place_code for r in records} <= {p.code for p in config.places}
    recorded = {r.history.department for r in records if r.history is not None and r.history.department}
    assert recorded <= {d.code for d in config.departments}
    assert {rule.department for rule in config.routing.rules} <= {d.code for d in config.departments}


def test_tenant_department_names_are_the_sources():
    baltimore = load_tenant("baltimore", TENANTS_DIR)
    assert baltimore.department("Solid_Waste").name_en == "Solid Waste"
    assert baltimore.department("Recreation_Parks").name_en == "Recreation & Parks"
    sf = load_tenant("sf", TENANTS_DIR)
    assert sf.department("D311_HA_SR_Queue").name_en == "311 HA SR Queue"
    teddy = load_tenant("teddycup", TENANTS_DIR)
    assert teddy.department("urban_rural_construction").name_zh == "城乡建设"
    assert {r.category for r in teddy.routing.rules} == {
        "城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生",
    }


@pytest.mark.parametrize("tenant,fmt,name,departments", [
    ("nyc", "nyc311", None, False),
    ("sf", "sf311", "sf311_2008-2016_sample.csv", True),
    ("baltimore", "baltimore311", "baltimore311_2014-2019_sample.csv", True),
    ("boston", "boston311", "boston311_2015_sample.csv", True),
])
def test_generated_rules_are_up_to_date(tenant, fmt, name, departments):
    """The rules in the tenant files are what scripts/make_routing_rules.py derives from the data."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_routing_rules", REPO / "scripts" / "make_routing_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = REPO / "data" / "nyc311_2018-10-21_sample.csv" if name is None else shared_data(name)
    path = TENANTS_DIR / f"{tenant}.yaml"
    text = path.read_text(encoding="utf-8")
    assert module.splice(text, module.generate(tenant, fmt, data, departments)) == text


# --- helpers: department codes, category codes, times ----------------------------------------------


def test_department_code():
    assert department_code("HPD") == "HPD"
    assert department_code("Recology_Abandoned") == "Recology_Abandoned"
    assert department_code(" Solid Waste ") == "Solid_Waste"
    assert department_code("Recreation & Parks") == "Recreation_Parks"
    assert department_code("Mayor's Office") == "Mayor_s_Office"
    assert department_code("PG and E - Streetlights Queue") == "PG_and_E_Streetlights_Queue"
    assert department_code("311 HA SR Queue") == "D311_HA_SR_Queue"
    chinese = department_code("市城管局")
    assert chinese.startswith("D_") and len(chinese) == 10 and chinese != department_code("市水务局")
    long = department_code("Queue " * 20)
    assert len(long) <= 64 and long != department_code("Queue " * 21)
    with pytest.raises(ValueError):
        department_code("  ")


def test_category_code_keeps_long_types_distinct():
    short = "SW-Dirty Alley"
    assert category_code(f"  {short} ") == short
    a, b = category_code("x" * 65), category_code("x" * 66)
    assert len(a) == len(b) == 64 and a != b and a.startswith("x" * 55 + "~")


def test_parse_time_mixed_and_us_formats():
    zone = ZoneInfo("Asia/Shanghai")
    assert parse_time("2020/1/6 12:09:38", "mixed", zone) == datetime(2020, 1, 6, 12, 9, 38, tzinfo=zone)
    assert parse_time("2017-06-08 17:31:20", "mixed", zone) == datetime(2017, 6, 8, 17, 31, 20, tzinfo=zone)
    assert parse_time("2019/5/10 9:05", "mixed", zone) == datetime(2019, 5, 10, 9, 5, tzinfo=zone)
    assert parse_time("2019-05-10", "mixed", zone) == datetime(2019, 5, 10, tzinfo=zone)
    assert parse_time("2019-05-10T01:02:03+00:00", "mixed", zone).utcoffset().total_seconds() == 0
    assert parse_time("2019/13/10 9:05", "mixed", zone) is None
    assert parse_time("", "mixed", zone) is None
    ny = ZoneInfo("America/New_York")
    assert parse_time("12/23/2012 01:05:01 PM", "%m/%d/%Y %I:%M:%S %p", ny) == datetime(2012, 12, 23, 13, 5, 1, tzinfo=ny)
    assert parse_time("2012-12-23 13:05", "%m/%d/%Y %I:%M:%S %p", ny) is None


# --- row-level behaviour -------------------------------------------------------------------------

BALTIMORE_HEADER = ("SRRecordID,ServiceRequestNum,SRType,MethodReceived,CreatedDate,SRStatus,CloseDate,"
                    "Agency,Outcome,CouncilDistrict,DueDate\n")


def test_baltimore_row_errors_and_places():
    text = BALTIMORE_HEADER + (
        "1,A-1,SW-HGW,Phone,02/21/2017 07:41:00 PM,Closed,02/22/2017 08:13:23 AM,Solid Waste,,7,\n"
        "2,,SW-HGW,Phone,not a date,Open,,Solid Waste,,,\n"
        "3,A-3,SW-HGW,Phone,02/21/2017 07:41:00 PM,Open (Duplicate),,Solid Waste,,99,\n"
        "4,A-4,SW-HGW,Phone,02/21/2017 07:41:00 PM,Closed,garbage,,,,\n"
    )
    ok, bad, dup, no_time = parse_text("baltimore311", text)
    assert ok.place_code == "BAL07" and ok.history.closed and ok.history.department == "Solid_Waste"
    assert ok.history.closed_at == datetime(2017, 2, 22, 8, 13, 23, tzinfo=ZoneInfo("America/New_York"))
    assert isinstance(bad, RowError)
    assert {e["field"] for e in bad.errors} == {"ServiceRequestNum", "CreatedDate"}
    assert dup.place_code == "BAL" and not dup.history.closed and dup.history.status == "Open (Duplicate)"
    # closed per the status; an unparseable close time is left out, not invented
    assert no_time.history.closed and no_time.history.closed_at is None and no_time.history.department is None


def test_missing_columns_refused_before_reading():
    with pytest.raises(ValueError, match="CASE_ENQUIRY_ID"):
        iter_records("boston311", io.StringIO("OPEN_DT,TYPE\n"), TENANT)
    with pytest.raises(ValueError, match="一级标签"):
        iter_records("teddycup_labelled", io.StringIO("留言详情\n"), TENANT)


def test_teddycup_labelled_same_text_same_id():
    text = "留言详情,label_id,一级标签\n小区垃圾无人清理,0,城乡建设\n小区垃圾无人清理,0,城乡建设\n,1,环境保护\n"
    a, b, empty = parse_text("teddycup_labelled", text)
    assert a.source_id == b.source_id and a.source_id.startswith("fj2full-")
    assert isinstance(empty, RowError)


# --- generic csv ----------------------------------------------------------------------------------


def test_csv_requires_a_mapping_and_only_csv_takes_one():
    with pytest.raises(ValueError, match="mapping is required"):
        iter_records("csv", io.StringIO("a\n"), TENANT)
    with pytest.raises(ValueError, match="only taken by the csv format"):
        iter_records("sf311", io.StringIO("a\n"), TENANT, mapping=SF311_MAPPING)


def test_csv_mapping_reproduces_the_built_in_sf311(tmp_path):
    path = tmp_path / "sf.yaml"
    path.write_text(yaml.safe_dump(SF311_MAPPING, allow_unicode=True), encoding="utf-8")
    mapping = load_mapping(path)
    records = parse("csv", "sf311_2008-2016_sample.csv", mapping=mapping, tz="America/Los_Angeles")
    built_in = parse("sf311", "sf311_2008-2016_sample.csv")
    assert records == built_in
    # README sf311: share closed 0.9524
    assert round(sum(r.history.closed for r in records) / len(records), 4) == 0.9524


def test_csv_mapping_features(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        """
source: mycity
source_id: id
category: [type, group]
category_name: [group, type]
description: [title, body]
channel: {value: phone}
date_format: "%Y-%m-%d %H:%M"
reported_at: opened
closed_at: {column: closed, format: mixed}
status: state
closed: {in: [done, "done (dup)"]}
transferred: {startswith: "done (moved"}
department: unit
place: {column: district, prefix: D, width: 2, default: "D"}
""",
        encoding="utf-8",
    )
    mapping = load_mapping(path)
    text = (
        "id,type,group,title,body,opened,closed,state,unit,district\n"
        "1,pothole,roads,Hole,Deep hole,2024-03-01 08:00,2024/3/2 8:00,done,Road Works,3\n"
        "2,,parks,,,2024-03-01 08:00,,open,,\n"
        "3,tree,parks,,,2024-03-01 08:00,,done (moved to x),,x y\n"
        "4,tree,parks,,,yesterday,,open,,\n"
    )
    one, two, three, four = parse_text("csv", text, mapping=mapping, tz="Asia/Shanghai")
    assert one.source == "mycity" and one.category_code == "pothole" and one.category_name == "roads / pothole"
    assert one.description == "Hole\nDeep hole" and one.channel == "phone" and one.place_code == "D03"
    assert one.history.closed and one.history.department == "Road_Works"
    assert one.history.closed_at - one.reported_at == (datetime(2024, 3, 2, 8) - datetime(2024, 3, 1, 8))
    assert two.category_code == "parks" and two.place_code == "D" and not two.history.closed
    assert two.history.status == "open" and two.history.department is None
    assert three.history.transfers and not three.history.closed and three.place_code == "D"
    assert isinstance(four, RowError) and four.errors[0]["field"] == "opened"


def test_csv_mapping_without_outcome_is_a_plain_report():
    mapping = {"source_id": "id", "category": "type", "reported_at": "at", "place": {"default": "X1"}}
    (record,) = parse_text("csv", "id,type,at\n7,noise,2024-01-02T03:04:05\n", mapping=mapping)
    assert record.history is None and record.place_code == "X1" and record.source == "csv"
    assert record.reported_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize("mapping,problem", [
    ({"category": "t", "reported_at": "a"}, "source_id is required"),
    ({"source_id": "i", "reported_at": "a"}, "category is required"),
    ({"source_id": "i", "category": "t"}, "reported_at is required"),
    ({"source_id": "i", "category": "t", "reported_at": "a", "colour": "c"}, "unknown key"),
    ({"source_id": "i", "category": "t", "reported_at": "a", "closed": {"equals": "x"}}, "name a column"),
    ({"source_id": "i", "category": "t", "reported_at": "a", "status": "s", "closed": {"equals": "x", "in": ["y"]}},
     "exactly one"),
    ({"source_id": "i", "category": "t", "reported_at": "a", "place": {"column": "p", "default": "a b"}},
     "place.default"),
    ({"source_id": "i", "category": "t", "reported_at": "a", "status": "s", "history": False}, "history: false"),
    ({"source_id": "i", "category": "t", "reported_at": "a", "source": "x" * 33}, "source"),
])
def test_invalid_mappings(mapping, problem):
    with pytest.raises(ValueError, match=problem):
        iter_records("csv", io.StringIO("i,t,a\n"), TENANT, mapping=mapping)


def test_mapping_column_missing_from_header():
    with pytest.raises(ValueError, match="lacks required column"):
        iter_records("csv", io.StringIO("id,type\n"), TENANT,
                     mapping={"source_id": "id", "category": "type", "reported_at": "when"})


def test_load_mapping_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("source_id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_mapping(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n", encoding="utf-8")
    with pytest.raises(ValueError, match="YAML mapping"):
        load_mapping(listy)
    assert load_mapping(_write(tmp_path, BALTIMORE311_MAPPING))["source"] == "baltimore311"


def _write(tmp_path: Path, mapping: dict) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    return path


def test_taxonomy_has_no_clash_with_tenant_departments():
    taxonomy = load_taxonomy()
    for tenant in ("sf", "baltimore", "boston", "teddycup"):
        config = load_tenant(tenant, TENANTS_DIR, taxonomy)
        assert not any(taxonomy.has_department(d.code) for d in config.departments)
