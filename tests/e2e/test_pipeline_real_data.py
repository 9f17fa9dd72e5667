"""End to end: real files through the running services (intake → Kafka → dispatch → reporting).

Every expected figure is copied from ../shared/data/README.md ("Ground-truth figures") or
docs/seeds.md (block A); none comes from running this code.
"""

from __future__ import annotations

import pytest

from gridcase.client import get_stats, import_file, wait_until_counted
from gridcase.demo import REPO
from gridcase.seeds import write_seed_a
from tests.conftest import shared_data

pytestmark = pytest.mark.e2e


def counts(stats: dict) -> dict:
    """``{key: reported}`` of a grouped stats answer."""
    return {g["key"]: g["reported"] for g in stats["groups"]}


def run_import(stack, path, fmt, tenant) -> dict:
    result = import_file(stack.url("intake"), path, fmt, tenant)
    assert result["rejected"] == 0, result["rejects"][:3]
    wait_until_counted(stack.url("dispatch"), stack.url("reporting"), tenant, result["accepted"], timeout_s=240)
    return result


@pytest.fixture(scope="module")
def nyc(stack):
    # The demo's copy in data/ is the handout file (NYC Open Data terms allow carrying it).
    return run_import(stack, REPO / "data" / "nyc311_2018-10-21_sample.csv", "nyc311", "nyc")


def test_nyc311_counts_by_agency_and_status(stack, nyc):
    assert nyc["rows_read"] == 4000 and nyc["accepted"] == 4000
    url = stack.url("reporting")
    # README, nyc311 "count by Agency"
    assert counts(get_stats(url, "nyc", "department")) == {
        "HPD": 1458, "NYPD": 1406, "DSNY": 419, "DEP": 170, "DPR": 168, "DOT": 143, "DOHMH": 73, "DOB": 57,
        "TLC": 48, "DHS": 30, "DCA": 12, "HRA": 9, "EDC": 3, "DOF": 1, "DOE": 1, "DCAS": 1, "DFTA": 1,
    }
    # README, nyc311 "count by Status"
    assert counts(get_stats(url, "nyc", "source_status")) == {
        "Open": 2153, "Closed": 1373, "Assigned": 406, "Pending": 62, "Started": 3, "Unassigned": 2, "Email Sent": 1,
    }


def test_nyc311_share_closed_and_time_to_close(stack, nyc):
    total = get_stats(stack.url("reporting"), "nyc")["total"]
    assert total["reported"] == 4000
    assert total["closed"] == 1373
    assert round(total["closure_rate"], 4) == 0.3432  # README: share closed 0.3432 (1373/4000)
    ttc = total["time_to_close_hours"]
    assert ttc["n"] == 1372  # README: n=1372 rows
    assert round(ttc["median"], 2) == 1.95
    assert round(ttc["mean"], 2) == 2.76
    assert round(ttc["p90"], 2) == 5.97


def test_fuzhou12345_through_the_services(stack):
    path = shared_data("fuzhou12345_water_complaints_sample.csv")
    result = run_import(stack, path, "fuzhou12345", "fuzhou")
    assert result["rows_read"] == 652
    url = stack.url("reporting")
    # README, fuzhou12345 "count by 区域" (districts as GB/T 2260 codes)
    assert counts(get_stats(url, "fuzhou", "place")) == {
        "350104": 385, "350111": 128, "350103": 100, "350102": 34, "350105": 5,  # 仓山 晋安 台江 鼓楼 马尾
    }
    # README "count by 性质"
    assert counts(get_stats(url, "fuzhou", "request_type")) == {"投诉": 544, "咨询": 80, "建议": 20, "举报": 7, "求助": 1}
    # README "count by 信息来源"; channels are stored stripped, so "微信" (20) and "微信 " (1) are one: 21
    assert counts(get_stats(url, "fuzhou", "channel")) == {
        "网站": 308, "电话": 255, "e福州app": 36, "微信": 21, "12345app": 14, "qq": 7, "微博": 6, "短信": 3, "邮件": 2,
    }
    total = get_stats(url, "fuzhou")["total"]
    # README "最终回复-投诉事件": median 5.0 days, mean 6.67, p90 14.0 (n=651)
    ttc = total["time_to_close_hours"]
    assert ttc["n"] == 651
    assert ttc["median"] == pytest.approx(5.0 * 24)
    assert round(ttc["mean"] / 24, 2) == 6.67
    assert ttc["p90"] == pytest.approx(14.0 * 24)
    # README "转处理次数": share with ≥1 transfer 0.3067 of 652 rows
    assert total["transferred"] == 142 + 43 + 12 + 1 + 1 + 1
    assert round(total["transferred"] / 652, 4) == 0.3067


def test_seed_scenario_a(stack, tmp_path):
    path = tmp_path / "seed_a.jsonl"
    write_seed_a(path)
    result = run_import(stack, path, "jsonl", "demo-market")
    total = get_stats(stack.url("reporting"), "demo-market")["total"]
    # docs/seeds.md block A: 5410 found, 3644 closed, 627 in progress, 1139 transferred, 67.36 %
    assert result["accepted"] == 5410
    assert (total["reported"], total["closed"], total["in_progress"], total["transferred"]) == (5410, 3644, 627, 1139)
    assert round(total["closure_rate"] * 100, 2) == 67.36
    by_dept = counts(get_stats(stack.url("reporting"), "demo-market", "department"))
    # the 1139 transferred cases left market regulation for the licensing departments
    assert by_dept["market_regulation"] == 3644 + 627
    assert sum(v for k, v in by_dept.items() if k != "market_regulation") == 1139


def test_reimport_creates_no_second_case(stack, nyc):
    again = import_file(stack.url("intake"), REPO / "data" / "nyc311_2018-10-21_sample.csv", "nyc311", "nyc")
    assert again["duplicates"] == 4000
    wait_until_counted(stack.url("dispatch"), stack.url("reporting"), "nyc", 4000)
    assert get_stats(stack.url("reporting"), "nyc")["total"]["reported"] == 4000


def test_demo_tables_render(stack, nyc):
    from gridcase.demo import kpi_table

    url = stack.url("reporting")
    table = kpi_table("NYC", get_stats(url, "nyc"), {"by department": get_stats(url, "nyc", "department")})
    assert "34.33 %" in table and "受理量 reported" in table and "HPD" in table
    hpd = [line for line in table.splitlines() if line.strip().startswith("HPD ")]
    assert len(hpd) == 1 and " 1458 " in hpd[0]  # README: HPD 1458
    # README: 1373 closed, 1 of them without a Closed Date, so the time to close counts 1372
    assert "(n=1372 of 1373 closed; 1 无办结时间 without a close time left out)" in table
