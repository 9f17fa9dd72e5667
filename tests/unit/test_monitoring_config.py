"""Monitoring as code (docs/architecture.md §4): Prometheus config and alert rules, Grafana provisioning
and dashboards.

promtool (Debian/Ubuntu: ``apt-get install prometheus``; ``.ci/run`` installs it) checks the config
and the rules and runs the rules' unit tests in ``deploy/prometheus/alerts_test.yml``; those tests
skip when promtool is not on PATH. The other tests need nothing but the files: every metric the
alerts and dashboards query is one the services export, every rule is labelled and annotated in
both languages, and the dashboards are well-formed Grafana JSON on the provisioned data source.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus; .ci/run installs it)",
)

SERVICES = ("intake", "dispatch", "reporting")

# The metrics the services export (shared/platform/telemetry.py, shared/platform/stream.py, services/*/app.py and
# FastStream's Prometheus middleware with metrics_prefix="faststream").
EXPORTED = {
    *(f"{s}_http_requests_total" for s in SERVICES),
    *(f"{s}_http_request_duration_seconds" for s in SERVICES),
    "faststream_received_messages_total",
    "faststream_received_processed_messages_total",
    "faststream_received_processed_messages_duration_seconds",
    "faststream_received_processed_messages_exceptions_total",
    "intake_reports_accepted_total",
    "intake_reports_rejected_total",
    "intake_outbox_published_total",
    "intake_outbox_publish_errors_total",
    "intake_outbox_pending_messages",
    "dispatch_cases_dispatched_total",
    "dispatch_outbox_published_total",
    "dispatch_outbox_pending_messages",
    *(
        f"{s}_{m}"
        for s in ("dispatch", "reporting")
        for m in (
            "events_applied_total",
            "events_duplicate_total",
            "dead_letters_total",
            "batch_rewinds_total",
            "consumer_lag_messages",
        )
    ),
    "reporting_cases_open",
    "reporting_cases_overdue",
}
HISTOGRAMS = {n for n in EXPORTED if n.endswith("_seconds")}
METRIC_RE = re.compile(r"\b((?:intake|dispatch|reporting|faststream|process)_[a-z0-9_]+)\b")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")
PROVISIONED_DS_UID = "gridcase-prometheus"


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules() -> list[dict]:
    return [rule for group in _yaml(PROM / "alerts.yml")["groups"] for rule in group["rules"]]


def _dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside collapsed rows
    return out


def _metric_names(expr: str) -> set[str]:
    names = set()
    for name in METRIC_RE.findall(expr):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name.removesuffix(suffix)
            if base != name and base in HISTOGRAMS:
                name = base
        names.add(name)
    return names


def _exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        exprs.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return exprs


def _promtool(*args: str) -> str:
    proc = subprocess.run([PROMTOOL, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


# ---------------------------------------------------------------------------------- promtool


@needs_promtool
def test_promtool_check_config():
    # Also loads and checks the rule files the config names.
    output = _promtool("check", "config", "deploy/prometheus/prometheus.yml")
    assert "SUCCESS" in output


@needs_promtool
def test_promtool_check_rules():
    output = _promtool("check", "rules", "deploy/prometheus/alerts.yml")
    assert f"SUCCESS: {len(_rules())} rules found" in output


@needs_promtool
def test_promtool_alert_unit_tests_pass():
    output = _promtool("test", "rules", "deploy/prometheus/alerts_test.yml")
    assert "SUCCESS" in output


# ---------------------------------------------------------------------------------- rules


def test_config_loads_the_alert_rules():
    config = _yaml(PROM / "prometheus.yml")
    assert [(PROM / f).resolve() for f in config["rule_files"]] == [(PROM / "alerts.yml").resolve()]


def test_alert_rules_cover_the_pipeline_risks():
    assert {r["alert"] for r in _rules()} == {
        "GridcaseServiceDown",
        "GridcaseConsumerLagGrowing",
        "GridcaseDeadLetters",
        "GridcaseOutboxBacklogStuck",
        "GridcaseOverdueSurge",
    }
    by_name = {r["alert"]: r for r in _rules()}
    assert "deriv(" in by_name["GridcaseConsumerLagGrowing"]["expr"] and "> 1000" in by_name["GridcaseConsumerLagGrowing"]["expr"]
    assert "increase(" in by_name["GridcaseDeadLetters"]["expr"] and "[5m]" in by_name["GridcaseDeadLetters"]["expr"]
    assert by_name["GridcaseServiceDown"]["expr"].replace(" ", "").endswith("==0")
    assert by_name["GridcaseServiceDown"]["for"] == "1m"
    assert "intake_outbox_pending_messages" in by_name["GridcaseOutboxBacklogStuck"]["expr"]
    assert "[10m]" in by_name["GridcaseOutboxBacklogStuck"]["expr"]
    assert "reporting_cases_overdue" in by_name["GridcaseOverdueSurge"]["expr"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_alert_rule_is_labelled_and_annotated_in_both_languages(rule):
    assert rule["labels"]["severity"] in {"critical", "warning"}
    notes = rule["annotations"]
    for key in ("summary", "description"):
        assert notes[key].strip() and not CJK_RE.search(notes[key]), f"{key} should be English"
        assert CJK_RE.search(notes[f"{key}_zh"]), f"{key}_zh should be Chinese (zh-CN)"


def test_alert_service_names_are_the_scrape_jobs():
    jobs = {job["job_name"] for job in _yaml(PROM / "prometheus.yml")["scrape_configs"]}
    expr = next(r["expr"] for r in _rules() if r["alert"] == "GridcaseServiceDown")
    regex = re.search(r'job=~"([^"]+)"', expr).group(1)
    assert set(regex.split("|")) == set(SERVICES) <= jobs


def test_alert_unit_tests_prove_dead_letter_and_service_down_alerts_fire():
    fired, quiet = set(), set()
    for case in _yaml(PROM / "alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert {"GridcaseDeadLetters", "GridcaseServiceDown"} <= fired
    assert {"GridcaseDeadLetters", "GridcaseServiceDown"} <= quiet  # and stay quiet when they should
    assert {r["alert"] for r in _rules()} <= fired


def test_alerts_query_only_exported_metrics():
    for rule in _rules():
        names = _metric_names(rule["expr"])
        assert names <= EXPORTED, f"{rule['alert']} queries unknown metrics {names - EXPORTED}"


# ---------------------------------------------------------------------------------- Grafana


def test_grafana_datasource_is_the_compose_prometheus():
    sources = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    (source,) = sources
    assert source["type"] == "prometheus"
    assert source["uid"] == PROVISIONED_DS_UID
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def test_grafana_dashboard_provider_reads_files():
    (provider,) = _yaml(GRAFANA / "provisioning" / "dashboards" / "provider.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def test_dashboards_exist():
    assert set(_dashboards()) == {"pipeline-health.json", "city-kpis.json"}


@pytest.mark.parametrize("name", ["pipeline-health.json", "city-kpis.json"])
def test_dashboard_is_valid_grafana_json(name):
    dashboard = _dashboards()[name]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    zh, _, en = dashboard["title"].partition(" · ")
    assert CJK_RE.search(zh) and en and not CJK_RE.search(en), "title: zh-CN first, then English"
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        pos = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(pos) and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        zh, _, en = panel["title"].partition("·")
        assert CJK_RE.search(zh) and en, f"panel title {panel['title']!r}: zh-CN first, then English"
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "bargauge", "gauge", "table", "piechart"}
        assert panel["datasource"]["uid"] == PROVISIONED_DS_UID
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target.get("datasource", panel["datasource"])["uid"] == PROVISIONED_DS_UID
    uids = [d["uid"] for d in _dashboards().values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", ["pipeline-health.json", "city-kpis.json"])
def test_dashboard_queries_only_exported_metrics(name):
    used = set().union(*map(_metric_names, _exprs(_dashboards()[name])))
    assert used <= EXPORTED, f"unknown metrics {used - EXPORTED}"


def test_pipeline_health_shows_red_kafka_backlog_and_reliability():
    used = set().union(*map(_metric_names, _exprs(_dashboards()["pipeline-health.json"])))
    required = {
        *(f"{s}_http_requests_total" for s in SERVICES),
        *(f"{s}_http_request_duration_seconds" for s in SERVICES),
        "faststream_received_processed_messages_total",
        "faststream_received_processed_messages_exceptions_total",
        "dispatch_consumer_lag_messages",
        "reporting_consumer_lag_messages",
        "intake_outbox_pending_messages",
        "dispatch_outbox_pending_messages",
        "dispatch_dead_letters_total",
        "reporting_dead_letters_total",
        "dispatch_batch_rewinds_total",
        "reporting_batch_rewinds_total",
    }
    assert required <= used, f"missing {required - used}"


def test_city_kpis_show_reports_dispatch_open_and_overdue_per_tenant():
    dashboard = _dashboards()["city-kpis.json"]
    exprs = _exprs(dashboard)
    used = set().union(*map(_metric_names, exprs))
    assert {
        "intake_reports_accepted_total",
        "dispatch_cases_dispatched_total",
        "reporting_cases_open",
        "reporting_cases_overdue",
    } <= used
    assert any("by (tenant)" in e and "intake_reports_accepted_total" in e for e in exprs)
    assert any("target_kind" in e and "dispatch_cases_dispatched_total" in e for e in exprs)
    assert any("by (tenant)" in e and "reporting_cases_open" in e for e in exprs)
    assert any("by (tenant)" in e and "reporting_cases_overdue" in e for e in exprs)
    assert "tenant" in {v["name"] for v in dashboard["templating"]["list"]}
