"""services.dispatch.domain.routing.route: tenant rules, taxonomy defaults, mediation ladder, triage."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.dispatch.domain.routing import RouteDecision, mediation_level_for, route
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import load_tenant

SH = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[2]

STREET = "990201001"
COMMUNITY = "990201001001"
GRID = "990201001001001"
OTHER_GRID = "990201001002001"

TENANT = f"""
tenant: rt
name_zh: 路由测试
name_en: Routing test
timezone: Asia/Shanghai
places:
  - {{code: "990201", level: district, name_zh: 测试区, name_en: Test District}}
  - {{code: "{STREET}", level: street, name_zh: 测试街道, name_en: Test Street}}
  - {{code: "{COMMUNITY}", level: community, name_zh: 一社区, name_en: Community 1}}
  - {{code: "{GRID}", level: grid, name_zh: 一网格, name_en: Grid 1}}
  - {{code: "990201001002", level: community, name_zh: 二社区, name_en: Community 2}}
  - {{code: "{OTHER_GRID}", level: grid, name_zh: 二社区一网格, name_en: Grid 2-1}}
routing:
  rules:
{{rules}}
  use_taxonomy_defaults: {{defaults}}
"""


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture
def make_tenant(tmp_path, taxonomy):
    def make(rules: str = "", defaults: bool = True):
        body = textwrap.indent(textwrap.dedent(rules).strip("\n"), "    ") if rules.strip() else "    []"
        text = textwrap.dedent(TENANT).lstrip("\n")
        text = text.replace("{rules}", body).replace("{defaults}", "true" if defaults else "false")
        if not rules.strip():
            text = text.replace("  rules:\n    []", "  rules: []")
        (tmp_path / "rt.yaml").write_text(text, encoding="utf-8")
        return load_tenant("rt", tmp_path, taxonomy)

    return make


def at_local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 3, hour, minute, tzinfo=SH)


def test_first_matching_rule_wins(make_tenant, taxonomy):
    tenant = make_tenant("""
        - {name: first, category: "100110", department: ecology_environment}
        - {name: second, category: "100110", department: health}
    """)
    decision = route("100110", GRID, tenant, taxonomy)
    assert decision == RouteDecision("department", "ecology_environment", "first", None)


def test_more_specific_later_rule_does_not_beat_earlier_match(make_tenant, taxonomy):
    tenant = make_tenant(f"""
        - {{name: broad, category: "100110", department: ecology_environment}}
        - {{name: narrow, category: "100110", place_prefix: "{COMMUNITY}", department: health}}
    """)
    assert route("100110", GRID, tenant, taxonomy).rule == "broad"


def test_place_prefix(make_tenant, taxonomy):
    tenant = make_tenant(f"""
        - {{name: fume-community-1, category: "100110", place_prefix: "{COMMUNITY}", department: ecology_environment}}
    """)
    inside = route("100110", GRID, tenant, taxonomy)
    assert (inside.department, inside.rule) == ("ecology_environment", "fume-community-1")
    community_itself = route("100110", COMMUNITY, tenant, taxonomy)
    assert community_itself.rule == "fume-community-1"
    outside = route("100110", OTHER_GRID, tenant, taxonomy)
    assert (outside.department, outside.rule) == ("urban_management", "taxonomy:100110")
    street = route("100110", STREET, tenant, taxonomy)
    assert street.rule == "taxonomy:100110"


def test_place_only_rule_matches_any_category(make_tenant, taxonomy):
    tenant = make_tenant("""
        - {name: community-2-all, place_prefix: "990201001002", department: civil_affairs}
    """)
    assert route("500101", OTHER_GRID, tenant, taxonomy).rule == "community-2-all"
    assert route("500101", GRID, tenant, taxonomy).rule == "taxonomy:500101"


@pytest.mark.parametrize(
    "hour,minute,matches",
    [(22, 0, True), (23, 30, True), (0, 0, True), (5, 59, True), (6, 0, False), (12, 0, False), (21, 59, False)],
)
def test_time_window_wrapping_midnight(make_tenant, taxonomy, hour, minute, matches):
    tenant = make_tenant("""
        - {name: night-burning, category: "200102", hours: "22:00-06:00", department: ecology_environment}
    """)
    decision = route("200102", GRID, tenant, taxonomy, at=at_local(hour, minute))
    if matches:
        assert (decision.department, decision.rule) == ("ecology_environment", "night-burning")
    else:
        assert (decision.department, decision.rule) == ("urban_management", "taxonomy:200102")


def test_time_window_uses_tenant_local_time(make_tenant, taxonomy):
    tenant = make_tenant("""
        - {name: office-hours, category: "200102", hours: "09:00-17:00", department: ecology_environment}
    """)
    # 02:00 UTC = 10:00 Asia/Shanghai: inside; 10:00 UTC = 18:00 local: outside
    assert route("200102", GRID, tenant, taxonomy, at=datetime(2026, 3, 3, 2, 0, tzinfo=UTC)).rule == "office-hours"
    assert route("200102", GRID, tenant, taxonomy, at=datetime(2026, 3, 3, 10, 0, tzinfo=UTC)).rule == "taxonomy:200102"


def test_time_window_without_time_or_with_naive_time(make_tenant, taxonomy):
    tenant = make_tenant("""
        - {name: night-burning, category: "200102", hours: "22:00-06:00", department: ecology_environment}
    """)
    assert route("200102", GRID, tenant, taxonomy, at=None).rule == "taxonomy:200102"
    with pytest.raises(ValueError, match="timezone-aware"):
        route("200102", GRID, tenant, taxonomy, at=datetime(2026, 3, 3, 23, 0))


def test_tenant_override_of_taxonomy_default(make_tenant, taxonomy):
    plain = make_tenant()
    assert route("100110", GRID, plain, taxonomy) == RouteDecision(
        "department", "urban_management", "taxonomy:100110", None
    )
    override = make_tenant("""
        - {name: fume-to-environment, category: "100110", department: ecology_environment}
    """)
    assert route("100110", GRID, override, taxonomy) == RouteDecision(
        "department", "ecology_environment", "fume-to-environment", None
    )


def test_prior_licence_default_goes_to_licensing_department(make_tenant, taxonomy):
    tenant = make_tenant()
    assert route("800102", GRID, tenant, taxonomy).department == "health"
    assert route("800109", GRID, tenant, taxonomy).department == "emergency_management"


@pytest.mark.parametrize(
    "place,level",
    [(GRID, "grid"), (GRID + "01001", "grid"), (COMMUNITY, "community"), (STREET, "street"), ("990201", "street")],
)
@pytest.mark.parametrize("category", ["300101", "300102"])
def test_dispute_goes_to_mediation_at_lowest_level(make_tenant, taxonomy, place, level, category):
    decision = route(category, place, make_tenant(), taxonomy)
    assert decision == RouteDecision("mediation", "mediation", f"taxonomy:{category}", level)


def test_mediation_level_by_code_length():
    assert mediation_level_for("1" * 15) == "grid"
    assert mediation_level_for("1" * 12) == "community"
    assert mediation_level_for("1" * 9) == "street"
    assert mediation_level_for("405") == "street"


def test_rule_to_mediation_or_triage_sets_target_kind(make_tenant, taxonomy):
    tenant = make_tenant("""
        - {name: noise-to-mediation, category: "100102", department: mediation}
        - {name: fume-to-triage, category: "100110", department: triage}
    """)
    assert route("100102", COMMUNITY, tenant, taxonomy) == RouteDecision(
        "mediation", "mediation", "noise-to-mediation", "community"
    )
    assert route("100110", GRID, tenant, taxonomy) == RouteDecision("triage", "triage", "fume-to-triage", None)


def test_unknown_category_goes_to_triage(make_tenant, taxonomy):
    decision = route("999999", GRID, make_tenant(), taxonomy)
    assert decision == RouteDecision("triage", "triage", "triage:unknown-category", None)
    assert route("HEAT/HOT WATER", "405", make_tenant(), taxonomy).rule == "triage:unknown-category"


def test_tenant_rule_can_route_a_foreign_category(make_tenant, taxonomy):
    tenant = make_tenant("""
        - {name: heat-to-housing, category: "HEAT/HOT WATER", department: housing}
    """)
    assert route("HEAT/HOT WATER", GRID, tenant, taxonomy).rule == "heat-to-housing"


def test_without_taxonomy_defaults_unmatched_goes_to_triage(make_tenant, taxonomy):
    tenant = make_tenant("""
        - {name: only-fume, category: "100110", department: ecology_environment}
    """, defaults=False)
    assert route("100110", GRID, tenant, taxonomy).rule == "only-fume"
    assert route("500101", GRID, tenant, taxonomy) == RouteDecision("triage", "triage", "triage:no-matching-rule", None)
    assert route("999999", GRID, tenant, taxonomy).rule == "triage:unknown-category"


def test_shipped_demo_grid_rules(taxonomy):
    tenant = load_tenant("demo-grid", REPO / "deploy" / "tenants", taxonomy)
    heping_grid, xingfu_grid = "990102001002001", "990102001001001"
    assert route("100110", heping_grid, tenant, taxonomy).department == "ecology_environment"
    assert route("100110", xingfu_grid, tenant, taxonomy).department == "urban_management"
    assert route("200102", xingfu_grid, tenant, taxonomy, at=at_local(23)).rule == "night-burning-to-environment"
    assert route("200102", xingfu_grid, tenant, taxonomy, at=at_local(10)).rule == "taxonomy:200102"
    assert route("300101", xingfu_grid, tenant, taxonomy).mediation_level == "grid"
