"""services/reporting/dashboard.py ``opening_tenant``: the tenant the dashboard opens on."""

from __future__ import annotations

from datetime import UTC, datetime

from services.reporting.dashboard import opening_tenant

OLD = datetime(2018, 10, 21, tzinfo=UTC)
NEW = datetime(2026, 11, 29, tzinfo=UTC)


def test_the_tenant_with_the_most_recent_case():
    # "baltimore" comes first by name but has no case; nyc's latest case is older than demo-grid's
    latest = {"baltimore": None, "demo-grid": NEW, "nyc": OLD}
    assert opening_tenant(["baltimore", "demo-grid", "nyc"], latest) == "demo-grid"


def test_a_configured_opening_wins_when_the_caller_sees_it():
    latest = {"demo-grid": NEW, "nyc": OLD}
    assert opening_tenant(["demo-grid", "nyc"], latest, "nyc") == "nyc"
    assert opening_tenant(["demo-grid"], latest, "nyc") == "demo-grid"  # not the caller's: ignored


def test_no_cases_anywhere_opens_on_the_first_by_name_and_nothing_visible_on_none():
    assert opening_tenant(["nyc", "boston"], {}) == "boston"
    assert opening_tenant([], {"nyc": NEW}) is None


def test_ties_go_to_the_first_by_name():
    assert opening_tenant(["sf", "boston"], {"sf": NEW, "boston": NEW}) == "boston"
