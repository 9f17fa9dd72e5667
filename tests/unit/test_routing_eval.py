"""Unit tests of gridcase/routing_eval.py (routing against history, issue 3 item 8).

Real-data expectations are the README's routing ceilings (/work/shared/data/README.md, each
city's "routing ceiling" line): the shipped rules are the most frequent recorded department per
category, so on the sample they reach exactly that ceiling.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from gridcase.cli import app
from gridcase.routing_eval import evaluate_file, evaluate_records, format_evaluation
from services.intake.schemas import ReportIn, RowError
from shared.domain.tenants import load_tenant
from tests.conftest import REPO, shared_data

TENANT_YAML = """
tenant: t1
name_zh: 测试
name_en: Test
timezone: Asia/Shanghai
levels: [city]
places:
  - {code: "C", level: city, name_zh: 城, name_en: City}
departments:
  - {code: ROADS, name_en: Roads}
  - {code: PARKS, name_en: Parks}
routing:
  rules:
    - {name: potholes, category: pothole, department: ROADS}
    - {name: trees, category: tree, department: PARKS}
  use_taxonomy_defaults: true
"""


@pytest.fixture
def tenant(tmp_path):
    (tmp_path / "t1.yaml").write_text(TENANT_YAML, encoding="utf-8")
    return load_tenant("t1", tmp_path)


def report(category: str, department: str | None, history: bool = True) -> ReportIn:
    return ReportIn(
        tenant="t1", category_code=category, place_code="C",
        reported_at=datetime(2024, 1, 1, tzinfo=UTC),
        history={"department": department} if history else None,
    )


def test_accuracy_confusions_and_uncounted_rows(tenant):
    records = [
        report("pothole", "ROADS"), report("pothole", "ROADS"), report("pothole", "PARKS"),
        report("tree", "PARKS"), report("tree", "ROADS"), report("tree", "ROADS"),
        report("graffiti", "ROADS"),                      # no rule, not in the taxonomy -> triage
        report("tree", None), report("tree", None, history=False),
        RowError(line=9, errors=[{"field": "x", "problem": "y"}]),
    ]
    ev = evaluate_records(records, tenant, top=2)
    assert (ev.rows, ev.rejected, ev.unrecorded, ev.evaluated, ev.correct) == (10, 1, 2, 7, 3)
    assert ev.accuracy == pytest.approx(3 / 7)
    # most frequent first, ties by recorded then routed department; cut to top=2
    assert ev.confusions == (("ROADS", "PARKS", 2), ("PARKS", "ROADS", 1))
    assert dict(ev.by_rule) == {"potholes": 3, "trees": 3, "triage:unknown-category": 1}
    text = format_evaluation(ev, tenant)
    assert "42.86%" in text and "3 of 7" in text and "ROADS (Roads) -> PARKS (Parks): 2" in text


def test_nothing_to_compare(tenant):
    ev = evaluate_records([report("tree", None)], tenant)
    assert ev.accuracy is None and ev.evaluated == 0 and ev.unrecorded == 1
    assert "n/a" in format_evaluation(ev)


@pytest.mark.parametrize("tenant_name,fmt,name,ceiling", [
    ("baltimore", "baltimore311", "baltimore311_2014-2019_sample.csv", 0.9944),  # README: 99.44%
    ("boston", "boston311", "boston311_2015_sample.csv", 1.0),                   # README: SUBJECT 100.00%
])
def test_shipped_rules_reach_the_readme_ceiling(tenant_name, fmt, name, ceiling):
    ev = evaluate_file(shared_data(name), fmt, tenant_name)
    assert ev.evaluated == ev.rows and ev.rejected == 0
    assert round(ev.accuracy, 4) == ceiling


def test_nyc_rules_reach_the_readme_ceiling():
    # README nyc311: "reproduces Agency for 100.00% of rows"
    ev = evaluate_file(REPO / "data" / "nyc311_2018-10-21_sample.csv", "nyc311", "nyc")
    assert ev.evaluated == 4000 and ev.accuracy == 1.0 and ev.confusions == ()


def test_sf_rules_reach_the_readme_ceiling():
    # README sf311: per Request.Type 83.44%. The 23 rows with an empty Request.Type take their
    # Category as category code (a finer key), which can only add up to 23 rows of 5000.
    ev = evaluate_file(shared_data("sf311_2008-2016_sample.csv"), "sf311", "sf")
    assert ev.evaluated == 5000
    assert 0.8344 <= round(ev.accuracy, 4) <= 0.8344 + 23 / 5000
    assert len(ev.confusions) == 10


def test_teddycup_replies_have_nothing_recorded():
    ev = evaluate_file(shared_data("teddycup2020c_fj4_replies_sample.csv"), "teddycup_replies", "teddycup")
    assert (ev.rows, ev.unrecorded, ev.evaluated) == (1000, 1000, 0)


def test_cli_route_prints_accuracy_and_confusions():
    path = shared_data("baltimore311_2014-2019_sample.csv")
    result = CliRunner().invoke(app, ["import", str(path), "--format", "baltimore311", "--tenant", "baltimore", "--route"])
    assert result.exit_code == 0, result.output
    assert "准确派遣率 routing accuracy: 99.44%" in result.output  # README: 99.44%
    assert "confusions" in result.output


def test_cli_csv_through_intake_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", str(path), "--format", "csv", "--tenant", "nyc"])
    assert result.exit_code == 2 and "mapping" in result.output


def test_cli_rejects_file_from_intake_answer(tmp_path, monkeypatch):
    import json

    import gridcase.client

    answer = {"format": "nyc311", "tenant": "nyc", "rows_read": 150, "accepted": 30, "duplicates": 0,
              "rejected": 120, "rejects": [{"line": n, "errors": [{"field": "f", "problem": "p"}]} for n in range(1, 101)]}
    monkeypatch.setattr(gridcase.client, "import_file", lambda *a, **k: answer)
    src = tmp_path / "in.csv"
    src.write_text("x\n", encoding="utf-8")
    out = tmp_path / "rejects.jsonl"
    result = CliRunner().invoke(app, ["import", str(src), "-f", "nyc311", "-t", "nyc", "--rejects", str(out)])
    assert result.exit_code == 3, result.output  # rows were rejected (gridcase/importcmd.py EXIT_REJECTS)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 100 and lines[0] == {"line": 1, "errors": [{"field": "f", "problem": "p"}]}
    assert "20 more rejected rows are not listed" in result.output
    allowed = CliRunner().invoke(app, ["import", str(src), "-f", "nyc311", "-t", "nyc", "--allow-rejects"])
    assert allowed.exit_code == 0, allowed.output


def test_cli_import_exits_0_when_nothing_was_rejected(tmp_path, monkeypatch):
    import gridcase.client

    answer = {"format": "jsonl", "tenant": "nyc", "rows_read": 2, "accepted": 2, "duplicates": 0, "rejected": 0,
              "rejects": []}
    monkeypatch.setattr(gridcase.client, "import_file", lambda *a, **k: answer)
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n{}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", str(src), "-f", "jsonl", "-t", "nyc"])
    assert result.exit_code == 0, result.output
    assert "rows read 2" in result.output


def test_cli_import_help_is_plain_text():
    result = CliRunner().invoke(app, ["import", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "``" not in result.output  # no raw reStructuredText
    for option in ("--rejects", "--allow-rejects", "--route", "Exit code 3"):
        assert option in result.output
