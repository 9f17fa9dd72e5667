"""End to end: the issue-7 import formats through the running services (intake → Kafka → dispatch
→ reporting), checked against /work/shared/data/README.md.

Every expected figure is copied from the README's "Ground-truth figures" of the file's section;
none comes from running this code. Department keys are the README's names through
``department_code`` (the code dispatch records; the tenant file maps it back to the name).

Time to close of the US cities: the README subtracted naive wall-clock times, reporting measures
true elapsed time in UTC. A case whose open period spans a DST change differs by exactly one
hour, so each order statistic and the mean can move by at most one hour: those three figures are
checked within 1 h of the README (``n`` exactly). China has no DST: the Teddy Cup figures are
exact. The generic ``csv`` format is not imported here: intake's import API takes no column
mapping yet (tests/unit/test_importers_more.py covers it).

Recorded deadlines (issue 12 item 7, the last tests): the on-time and overdue figures of
``GET /v1/kpis`` against figures computed here from the CSV file with the csv module and the
source's own rule (closed on time iff closed by the recorded due date), and for Boston against its
own ``OnTime_Status`` column and the README's count of it.
"""

from __future__ import annotations

import csv
from datetime import datetime

import pytest

from gridcase.client import get_kpis, get_stats, import_file, wait_until_counted
from services.intake.importers.codes import department_code
from tests import api
from tests.conftest import shared_data

pytestmark = pytest.mark.e2e

DST_TOLERANCE_H = 1.0 + 0.005  # one hour, plus the README's rounding to 2 decimals


def counts(stats: dict, field: str = "reported") -> dict:
    """``{key: reported}`` (or another count ``field``) of a grouped stats answer, groups with it."""
    return {g["key"]: g[field] for g in stats["groups"] if g[field]}


def codes(readme: dict[str, int]) -> dict[str, int]:
    """README department names -> department codes."""
    return {department_code(name): n for name, n in readme.items()}


def import_only(stack, name: str, fmt: str, tenant: str) -> dict:
    result = import_file(stack.url("intake"), shared_data(name), fmt, tenant)
    assert result["rejected"] == 0, result["rejects"][:3]
    return result


def wait(stack, tenant: str, cases: int) -> None:
    wait_until_counted(stack.url("dispatch"), stack.url("reporting"), tenant, cases, timeout_s=240)


def assert_hours(ttc: dict, n: int, median: float, mean: float, p90: float, tolerance: float) -> None:
    assert ttc["n"] == n
    for got, want in ((ttc["median"], median), (ttc["mean"], mean), (ttc["p90"], p90)):
        assert abs(round(got, 2) - want) <= tolerance, (got, want)


@pytest.fixture(scope="module")
def us_cities(stack) -> dict:
    """Import SF, Baltimore and Boston (each into its own tenant), then wait for all three, so
    that the pipeline works on them together."""
    results = {
        "sf": import_only(stack, "sf311_2008-2016_sample.csv", "sf311", "sf"),
        "baltimore": import_only(stack, "baltimore311_2014-2019_sample.csv", "baltimore311", "baltimore"),
        "boston": import_only(stack, "boston311_2015_sample.csv", "boston311", "boston"),
    }
    for tenant, result in results.items():
        wait(stack, tenant, result["accepted"])
    # SF's figures as imported once: the mapped-CSV test below adds the same file a second time
    # to tenant sf, and may run before test_sf311 (random order)
    url = stack.url("reporting")
    results["sf_stats"] = {by: get_stats(url, "sf", by) for by in ("department", "source_status", "place", "channel")}
    results["sf_stats"]["total"] = get_stats(url, "sf")
    return results


def test_sf311(us_cities):
    assert us_cities["sf"]["rows_read"] == 5000 and us_cities["sf"]["accepted"] == 5000
    stats = us_cities["sf_stats"]
    by_queue = counts(stats["department"])
    # README sf311: distinct Responsible.Agency 124; top 15 … (+109 more categories, 667 rows)
    assert len(by_queue) == 124
    top15 = dict(sorted(by_queue.items(), key=lambda kv: -kv[1])[:15])
    assert top15 == codes({
        "DPW Ops Queue": 2254, "Recology_Abandoned": 421, "DPT Abandoned Vehicles Work Queue": 365,
        "DPW BSM Queue": 256, "DPT Meter_Bike Queue": 195, "PUC Sewer Ops": 163, "311 HA SR Queue": 103,
        "DPW BSSR Queue": 94, "PG and E - Streetlights Queue": 84, "Housing Authority SR Queue": 77,
        "MUNI Work Queue": 75, "PUC Streetlights Queue": 68, "311 Service Request Queue - Hold": 63,
        "311 Supervisor Queue": 59, "PUC - Water - G": 56,
    })
    assert sum(by_queue.values()) - sum(top15.values()) == 667
    # README: count by Status; share closed 0.9524
    assert counts(stats["source_status"]) == {"Closed": 4762, "Open": 238}
    total = stats["total"]["total"]
    assert (total["reported"], total["closed"]) == (5000, 4762)
    assert round(total["closure_rate"], 4) == 0.9524
    # README: median 69.47 h, mean 768.82 h, p90 1320.39 h (n=4692; 70 excluded)
    assert_hours(total["time_to_close_hours"], 4692, 69.47, 768.82, 1320.39, DST_TOLERANCE_H)
    # README: count by Supervisor.District (SF00–SF11)
    assert counts(stats["place"]) == {
        "SF09": 709, "SF06": 662, "SF05": 626, "SF08": 560, "SF03": 491, "SF10": 485, "SF01": 390,
        "SF02": 293, "SF11": 288, "SF07": 268, "SF04": 215, "SF00": 13,
    }
    # README: count by Source
    assert counts(stats["channel"]) == {
        "Voice In": 3309, "Open311": 740, "Web Self Service": 676, "Integrated Agency": 189,
        "Twitter": 78, "Other Department": 5, "e-mail In": 3,
    }


def test_baltimore311(stack, us_cities):
    assert us_cities["baltimore"]["accepted"] == 5000
    url = stack.url("reporting")
    # README baltimore311: count by Agency
    assert counts(get_stats(url, "baltimore", "department")) == codes({
        "Solid Waste": 2406, "Transportation": 836, "Housing": 593, "Water Wastewater": 404,
        "Finance": 179, "BGE": 177, "Health": 155, "Recreation & Parks": 93, "Call Center": 79,
        "Fire Department": 62, "Parking Authority": 7, "Liquor Board": 4, "Public Works": 3,
        "Police Department": 1, "Mayor's Office": 1,
    })
    # README: count by SRStatus
    assert counts(get_stats(url, "baltimore", "source_status")) == {
        "Closed": 4786, "Closed (Duplicate)": 100, "Open": 55, "New": 33, "Closed (Transferred)": 11,
        "Pending": 9, "Open (Duplicate)": 4, "New (Duplicate)": 2,
    }
    total = get_stats(url, "baltimore")["total"]
    # README: share closed (starts with "Closed") 0.9794 (4897/5000); "Closed (Transferred)": 11
    assert (total["reported"], total["closed"], total["transferred"]) == (5000, 4897, 11)
    assert round(total["closure_rate"], 4) == 0.9794
    # README: median 38.47 h, mean 282.15 h, p90 638.42 h (n=4897)
    assert_hours(total["time_to_close_hours"], 4897, 38.47, 282.15, 638.42, DST_TOLERANCE_H)
    # README: count by MethodReceived
    assert counts(get_stats(url, "baltimore", "channel")) == {
        "Phone": 2490, "API": 1294, "Internal": 1088, "Mail": 106, "System": 10, "Other": 7, "Email": 4, "Web": 1,
    }


def test_boston311(stack, us_cities):
    assert us_cities["boston"]["accepted"] == 3500
    url = stack.url("reporting")
    # README boston311: count by SUBJECT (department name)
    assert counts(get_stats(url, "boston", "department")) == codes({
        "Public Works Department": 1474, "Inspectional Services": 677, "Transportation - Traffic Division": 473,
        "Parks & Recreation Department": 298, "Mayor's 24 Hour Hotline": 218, "Property Management": 117,
        "Animal Control": 101, "Civil Rights": 83, "Disability Department": 34,
        "Boston Water & Sewer Commission": 21, "Youthline": 3, "Boston Police Department": 1,
    })
    # README: count by CASE_STATUS; share closed 0.8289
    assert counts(get_stats(url, "boston", "source_status")) == {"Closed": 2901, "Open": 599}
    total = get_stats(url, "boston")["total"]
    assert (total["reported"], total["closed"]) == (3500, 2901)
    assert round(total["closure_rate"], 4) == 0.8289
    # README: median 62.07 h, mean 316.45 h, p90 854.38 h (n=2896; 5 with end < start excluded)
    assert_hours(total["time_to_close_hours"], 2896, 62.07, 316.45, 854.38, DST_TOLERANCE_H)
    # README: count by Source
    assert counts(get_stats(url, "boston", "channel")) == {
        "Constituent Call": 1806, "Citizens Connect App": 531, "Employee Generated": 426, "Self Service": 370,
        "City Worker App": 364, "Maximo Integration": 2, "Twitter": 1,
    }
    # README: top 10 neighborhood ((empty) -> "BOS"; codes in deploy/tenants/boston.yaml)
    by_place = counts(get_stats(url, "boston", "place"))
    assert {k: by_place[k] for k in ("BOS08", "BOS", "BOS18", "BOS02", "BOS09", "BOS10", "BOS14", "BOS20", "BOS22", "BOS13")} == {
        "BOS08": 439, "BOS": 316, "BOS18": 270, "BOS02": 244, "BOS09": 232, "BOS10": 230, "BOS14": 225,
        "BOS20": 215, "BOS22": 159, "BOS13": 146,
    }  # Dorchester, (empty), Roxbury, Allston / Brighton, Downtown, East Boston, Jamaica Plain, South Boston / Waterfront, West Roxbury, Hyde Park


#: README fj2 "count by 一级分类" and fj2full "count by 一级标签" (the category codes).
FJ2 = {"城乡建设": 65, "劳动和社会保障": 61, "教育文体": 59, "卫生计生": 40, "交通运输": 30, "商贸旅游": 26, "环境保护": 19}
FJ2FULL = {"城乡建设": 292, "劳动和社会保障": 246, "教育文体": 221, "商贸旅游": 134, "卫生计生": 116, "环境保护": 116,
           "交通运输": 75}


@pytest.fixture(scope="module")
def teddycup(stack) -> dict:
    """The three Teddy Cup files into tenant ``teddycup``, one after the other; the statistics
    are read after each, so each step's figures are the README's (sums where they add up)."""
    url = stack.url("reporting")
    snapshots = {}
    cases = 0
    for step, (name, fmt) in {
        "messages": ("teddycup2020c_fj2_messages_sample.csv", "teddycup_messages"),
        "labelled": ("teddycup2020c_fj2full_labelled_details_sample.csv", "teddycup_labelled"),
        "replies": ("teddycup2020c_fj4_replies_sample.csv", "teddycup_replies"),
    }.items():
        result = import_only(stack, name, fmt, "teddycup")
        cases += result["accepted"]
        wait(stack, "teddycup", cases)
        by_category, by_status = get_stats(url, "teddycup", "category"), get_stats(url, "teddycup", "status")
        snapshots[step] = {
            "result": result,
            "total": get_stats(url, "teddycup")["total"],
            "category": counts(by_category),
            "awaiting": counts(by_category, "awaiting_acceptance"),
            "status": counts(by_status),
            "status_awaiting": counts(by_status, "awaiting_acceptance"),
            "department": counts(get_stats(url, "teddycup", "department")),
        }
    return snapshots


def test_teddycup_messages_by_class(teddycup):
    snap = teddycup["messages"]
    assert snap["result"]["accepted"] == 300  # README fj2: rows 300
    # no outcome: live citizen messages, waiting for 受理 (not auto-filed, not closed): outside
    # every figure but their own status 待受理 (issue 12: they made this tenant's 办结率 37.1 %)
    assert snap["awaiting"] == FJ2            # README fj2: count by 一级分类
    assert snap["total"]["reported"] == 0 and snap["total"]["closed"] == 0
    assert snap["total"]["awaiting_acceptance"] == 300
    assert snap["status"] == {} and snap["status_awaiting"] == {"awaiting_acceptance": 300}


def test_teddycup_labelled_adds_its_classes(teddycup):
    snap = teddycup["labelled"]
    assert snap["result"]["accepted"] == 1200  # README fj2full: rows 1200
    assert snap["awaiting"] == {k: FJ2[k] + FJ2FULL[k] for k in FJ2}
    assert snap["total"]["reported"] == 0 and snap["total"]["awaiting_acceptance"] == 1500


def test_teddycup_replies_time_to_reply(teddycup):
    snap = teddycup["replies"]
    assert snap["result"]["accepted"] == 1000  # README fj4: rows 1000, every row replied
    total = snap["total"]
    # the replies are history (closed at the reply): counted; the 1500 messages still wait
    assert (total["reported"], total["closed"], total["awaiting_acceptance"]) == (1000, 1000, 1500)
    # history without department or category: the tenant's rules send them to triage
    assert snap["department"]["triage"] == 1000 and snap["category"]["未分类"] == 1000
    # README fj4: median 11.94 days, mean 22.82, p90 41.66 (n=1000); exact (no DST in China)
    ttc = total["time_to_close_hours"]
    assert ttc["n"] == 1000
    assert round(ttc["median"] / 24, 2) == 11.94
    assert round(ttc["mean"] / 24, 2) == 22.82
    assert round(ttc["p90"] / 24, 2) == 41.66


def test_generic_csv_with_a_yaml_mapping_through_intake(stack, us_cities, tmp_path):
    """Issue 7 item 3: a generic CSV with a column mapping in a small YAML file, over HTTP (multipart
    parts ``file`` and ``mapping``). The mapping reproduces the built-in sf311 one under another source
    name, so the SF sample lands a second time as 5000 new cases of source ``sf-generic``."""
    import yaml

    from services.intake.importers.sources.mapped import SF311_MAPPING

    mapping = dict(SF311_MAPPING, source="sf-generic")
    path = tmp_path / "sf-generic.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    result = import_file(stack.url("intake"), shared_data("sf311_2008-2016_sample.csv"), "csv", "sf", mapping=path)
    assert (result["rows_read"], result["accepted"], result["duplicates"], result["rejected"]) == (5000, 5000, 0, 0)
    wait(stack, "sf", 10000)
    by_source = counts(get_stats(stack.url("reporting"), "sf", "source"))
    assert by_source == {"sf311": 5000, "sf-generic": 5000}  # README sf311: 5000 rows
    missing = api.post(f"{stack.url('intake')}/v1/imports", params={"format": "csv", "tenant": "sf"},
                         content=b"a,b\n1,2\n", timeout=30)
    assert missing.status_code == 422 and missing.json()["error"] == "missing_mapping"


# --- recorded deadlines: on-time and overdue figures of imported history (issue 12 item 7) --------

#: README date formats ("How the ground-truth figures were computed"): NYC, and Baltimore / Boston.
NYC_FMT = "%m/%d/%y %H:%M"
US_FMT = "%m/%d/%Y %I:%M:%S %p"


def read_rows(name: str) -> list[dict[str, str]]:
    with shared_data(name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def wall(text: str, fmt: str) -> datetime | None:
    """A source time as the naive wall-clock time of the file (None when empty)."""
    return datetime.strptime(text.strip(), fmt) if text.strip() else None


def closed_on_time_split(rows, is_closed, created, closed, due, fmt) -> tuple[int, int]:
    """``(closed on time, closed late)`` of the closed rows by the source's rule: on time iff
    closed by the recorded due date (no due date: on time). A closed row without a close time
    counts as closed when reported, and a close time before the report as the report time
    (docs/kpis.md §4, "Recorded deadlines of history"). Wall-clock comparison: no sample row
    straddles a DST change within the hour that would differ in UTC."""
    on_time = late = 0
    for r in rows:
        if not is_closed(r):
            continue
        opened = wall(r[created], fmt)
        close_t = max(wall(r[closed], fmt) or opened, opened)
        deadline = wall(r[due], fmt)
        if deadline is None or close_t <= deadline:
            on_time += 1
        else:
            late += 1
    return on_time, late


def kpi_total(stack, tenant: str, start: str | None = None, end: str | None = None) -> dict:
    return get_kpis(stack.url("reporting"), tenant, start, end)["total"]


#: Boston's snapshot: the README gives no export time, but the file bounds it: the latest
#: CLOSED_DT is 01/12/2016 04:13:03 PM, and OnTime_Status marks every open case whose TARGET_DT is
#: up to 01/10/2016 04:02:05 PM OVERDUE and every one from 01/13/2016 08:30:00 AM on ONTIME. P for
#: the KPIs: [2015-01-01, 2016-01-13) Boston time (every OPEN_DT is in 2015).
BOSTON_SNAPSHOT = datetime(2016, 1, 13)
BOSTON_P = ("2015-01-01T00:00:00-05:00", "2016-01-13T00:00:00-05:00")


def test_boston_on_time_share_is_its_own_ontime_status(stack, us_cities):
    rows = read_rows("boston311_2015_sample.csv")
    labels = [r["OnTime_Status"] for r in rows]
    # README boston311: count by OnTime_Status: ONTIME 2638, OVERDUE 855, (empty) 7; share ONTIME 0.7537
    assert (labels.count("ONTIME"), labels.count("OVERDUE"), labels.count("")) == (2638, 855, 7)

    # Boston's rule, checked on every labelled row: a closed case is OVERDUE iff CLOSED_DT is after
    # TARGET_DT, an open one iff TARGET_DT passed before the snapshot; no TARGET_DT: ONTIME.
    def late(r) -> bool:
        target, closed = wall(r["TARGET_DT"], US_FMT), wall(r["CLOSED_DT"], US_FMT)
        if target is None:
            return False
        return closed > target if r["CASE_STATUS"] == "Closed" else target < BOSTON_SNAPSHOT

    assert all(late(r) == (r["OnTime_Status"] == "OVERDUE") for r in rows if r["OnTime_Status"])
    # the 7 unlabelled rows are late by that rule (docs/kpis.md §4: counted overdue)
    assert all(late(r) for r in rows if not r["OnTime_Status"])

    def count(status: str, label: str | None) -> int:
        return sum(1 for r in rows if r["CASE_STATUS"] == status
                   and (r["OnTime_Status"] == label if label is not None else not r["OnTime_Status"]))

    k = kpi_total(stack, "boston", *BOSTON_P)
    assert (k["accepted"], k["closed"]) == (3500, 2901)  # README: rows 3500, CASE_STATUS Closed 2901
    assert k["closed_on_time"] == count("Closed", "ONTIME")                       # 2371
    assert k["closed_late"] == count("Closed", "OVERDUE") + count("Closed", None)  # 527 + 3
    assert k["overdue_open"] == count("Open", "OVERDUE") + count("Open", None)     # 328 + 4
    # on time = every case not overdue = the README's ONTIME count and share
    assert k["accepted"] - k["overdue"] == 2638
    assert round((k["accepted"] - k["overdue"]) / k["accepted"], 4) == 0.7537
    # among closed cases, the share on time is Boston's ONTIME share of its closed rows
    assert k["closed_on_time"] / k["closed"] == count("Closed", "ONTIME") / 2901


def test_baltimore_closed_on_time_by_its_due_date(stack, us_cities):
    rows = read_rows("baltimore311_2014-2019_sample.csv")
    # README baltimore311: closed iff SRStatus starts with "Closed" (4897); on time iff CloseDate <= DueDate
    on_time, late = closed_on_time_split(rows, lambda r: r["SRStatus"].startswith("Closed"),
                                         "CreatedDate", "CloseDate", "DueDate", US_FMT)
    assert on_time + late == 4897
    k = kpi_total(stack, "baltimore")
    assert (k["closed"], k["closed_on_time"], k["closed_late"]) == (4897, on_time, late)  # 4095, 802


#: NYC's snapshot P (gridcase/demo.py NYC_PERIOD): the sample's day up to its last recorded moment,
#: Closed Date 10/22/18 2:47 (the latest time in the file; Created Date ends at 2:41).
NYC_P = ("2018-10-21T00:00:00-04:00", "2018-10-22T02:48:00-04:00")
NYC_END = datetime(2018, 10, 22, 2, 48)


@pytest.fixture(scope="module")
def nyc(stack) -> dict:
    result = import_only(stack, "nyc311_2018-10-21_sample.csv", "nyc311", "nyc")
    wait(stack, "nyc", result["accepted"])
    return result


def test_nyc_time_to_close_says_why_n_differs_from_closed(stack, nyc):
    rows = read_rows("nyc311_2018-10-21_sample.csv")
    closed = [r for r in rows if r["Status"] == "Closed"]
    no_time = sum(1 for r in closed if not r["Closed Date"].strip())
    before = sum(1 for r in closed if r["Closed Date"].strip()
                 and wall(r["Closed Date"], NYC_FMT) < wall(r["Created Date"], NYC_FMT))
    assert (len(closed), no_time, before) == (1373, 1, 0)  # README: 1 closed row has no Closed Date
    ttc = get_stats(stack.url("reporting"), "nyc")["total"]["time_to_close_hours"]
    assert (ttc["n"], ttc["no_close_time"], ttc["closed_before_report"]) == (len(closed) - no_time - before, no_time, before)


def test_nyc_on_time_and_overdue_as_of_the_snapshot(stack, nyc):
    rows = read_rows("nyc311_2018-10-21_sample.csv")
    is_closed = lambda r: r["Status"] == "Closed"  # noqa: E731  (README: share closed)
    on_time, late = closed_on_time_split(rows, is_closed, "Created Date", "Closed Date", "Due Date", NYC_FMT)
    open_rows = [r for r in rows if not is_closed(r)]
    open_past_due = sum(1 for r in open_rows if r["Due Date"] and wall(r["Due Date"], NYC_FMT) < NYC_END)
    open_no_due = sum(1 for r in open_rows if not r["Due Date"])
    closed = len(rows) - len(open_rows)
    # 应办结 (docs/kpis.md §3.2): closed in P, plus open ones due in P (deadline in P, or none)
    due = closed + open_past_due + open_no_due
    assert (closed, on_time, late, open_past_due, due) == (1373, 1302, 71, 21, 3494)  # README expected demo output

    k = kpi_total(stack, "nyc", *NYC_P)
    assert (k["accepted"], k["closed"], k["due"]) == (4000, closed, due)
    assert (k["closed_on_time"], k["closed_late"], k["overdue_open"]) == (on_time, late, open_past_due)
    assert k["overdue"] == late + open_past_due
    assert k["on_time_rate"] == pytest.approx(on_time / due)
    assert f"{k['on_time_rate'] * 100:.2f}" == "37.26"
