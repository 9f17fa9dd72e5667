"""在办 is two figures: the statistics' ``in_progress`` (``GET /v1/stats``, the demo's table) counts
open cases never transferred, the KPI table's ``in_progress`` (``GET /v1/kpis``, the work summary)
counts every open case, transferred or not (docs/kpis.md §3.3, §5). A reader sees both, so each
label says which it is: 在办·未转办 and 在办（含转办）.

Figures by hand from docs/seeds.md block A: 627 open never transferred (正在办理), 1139 open
transferred (转办), so 在办（含转办） = 627 + 1139 = 1766."""

from __future__ import annotations

from gridcase.demo import kpi_table
from services.reporting.kpis.catalogue import KPI_BY_NAME
from services.reporting.kpis.document import (
    Part,
    SummaryFigures,
    build_document,
    to_markdown,
)
from services.reporting.kpis.formulas import derive
from shared.domain.tenants import AssessmentWeights

OWN, TRANSFERRED = 627, 1139


def test_the_demo_says_its_在办_is_the_not_transferred_part():
    stats = {"total": {"reported": 5410, "closed": 3644, "in_progress": OWN, "transferred": TRANSFERRED,
                       "open": OWN + TRANSFERRED, "closure_rate": 3644 / 5410,
                       "time_to_close_hours": {"n": 0, "median": None, "mean": None, "p90": None}}}
    lines = [line.strip() for line in kpi_table("A", stats, {}).splitlines()]
    (open_line,) = [line for line in lines if line.startswith("在办")]
    assert open_line.startswith("在办·未转办 in progress (not transferred) ")
    assert open_line.endswith(" 627")


def test_the_summary_says_its_在办_includes_the_transferred():
    t = derive({"accepted": 5410, "closed": 3644, "due": 5410, "in_progress_own": OWN,
                "in_progress_transferred": TRANSFERRED}, AssessmentWeights())
    f = SummaryFigures(
        tenant_name="示范市场监管局", place_name="全域", period="2026年3月2日至2026年5月31日", previous_period="",
        unit="户", paragraph="（统计段落）", total=t, previous={}, parts_level="街道", parts=[Part("甲街道", t)],
        by_category=[], by_department=[], previous_by_category={}, patrols=None)
    md = to_markdown(build_document(f))
    assert "| 街道 | 受理 | 办结 | 在办（含转办） | 办结率 |" in md  # 一、基本情况's table of the parts
    assert "| 甲街道 | 5410 | 3644 | 1766 |" in md
    assert "| 在办（含转办） | 1766 | — |" in md  # 三's （一）总体情况, no previous period
    assert "| 在办 |" not in md


def test_no_two_kpis_share_a_label():
    zh = [k.zh for k in KPI_BY_NAME.values()]
    assert len(zh) == len(set(zh))
    assert KPI_BY_NAME["in_progress"].label == "在办（含转办） in progress incl. transferred (open at end)"


def test_the_status_breakdown_says_its_在办_is_the_not_transferred_part():
    """/v1/stats?group_by=status (the demo's 按状态 block): its in_progress status is open and never
    transferred (stats.STATUS_EXPR puts transferred cases in their own status, 已转办), so its label
    names the not-transferred part, as the catalogue's in_progress_own does."""
    from services.reporting.kpis.catalogue import KPI_BY_NAME  # noqa: PLC0415
    from services.reporting.labels import STATUS_LABELS  # noqa: PLC0415

    assert STATUS_LABELS["in_progress"].startswith(KPI_BY_NAME["in_progress_own"].zh + " ")
    assert not any(label.split(" ")[0] == "在办" for label in STATUS_LABELS.values())
