"""End to end: inspection rounds (docs/seeds.md block B) and a case's view on intake."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from gridcase.seeds import generate_seed_b
from tests import api

pytestmark = pytest.mark.e2e


def _seed_b_period() -> dict:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from gridcase.seeds import SEED_B_DAYS, SEED_B_START

    tz = ZoneInfo("Asia/Shanghai")
    start = datetime(SEED_B_START.year, SEED_B_START.month, SEED_B_START.day, tzinfo=tz)
    return {"start": start.isoformat(), "end": (start + timedelta(days=SEED_B_DAYS + 1)).isoformat()}


SEED_B_PERIOD = _seed_b_period()


def test_seed_b_patrol_figures(stack):
    intake, reporting = stack.url("intake"), stack.url("reporting")
    for body in generate_seed_b():
        resp = api.post(f"{intake}/v1/patrols", json=body, timeout=10)
        assert resp.status_code == 202, resp.text
    # a retried POST with the same source id is not counted twice
    again = api.post(f"{intake}/v1/patrols", json=next(iter(generate_seed_b())), timeout=10)
    assert again.json()["duplicate"] is True
    deadline = time.monotonic() + 60
    while True:
        # seed B's own period: other tests record patrols in demo-grid too, at other times
        stats = api.get(f"{reporting}/v1/patrols", params={"tenant": "demo-grid", **SEED_B_PERIOD}, timeout=10).json()
        if stats["points"] >= 865 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # docs/seeds.md block B: 865 points; night 4 rounds 36 points; heavy-pollution 2 rounds 66 points;
    # weekend duty 4 days 58 points.
    assert stats["points"] == 865
    kinds = stats["by_kind"]
    assert (kinds["night"]["rounds"], kinds["night"]["points"]) == (4, 36)
    assert (kinds["heavy_pollution"]["rounds"], kinds["heavy_pollution"]["points"]) == (2, 66)
    assert (kinds["weekend_duty"]["rounds"], kinds["weekend_duty"]["points"]) == (4, 58)


def test_case_view_shows_state_and_history(stack):
    intake = stack.url("intake")
    body = {
        "tenant": "demo-grid", "category_code": "100401", "place_code": "990102001001001",
        "description": "下水道堵塞，联系电话13912345678", "channel": "grid_worker",
        "reported_at": datetime.now(UTC).isoformat(),
    }
    case_id = api.post(f"{intake}/v1/reports", json=body, timeout=10).json()["case_id"]
    deadline = time.monotonic() + 30
    while True:
        view = api.get(f"{intake}/v1/cases/{case_id}", timeout=10).json()
        if len(view["history"]) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert view["report"]["description"] == "下水道堵塞，联系电话[电话]"  # masked (shared/domain/pii.py)
    assert view["department"] == "housing"  # taxonomy: 100401 下水道堵塞 → 住建/水务 (docs/domain.md §3(b))
    assert view["state"] == "dispatched"
    # a grid worker's report is accepted and filed by the system, then dispatched (services/dispatch/domain/reports.py)
    assert [e.get("action", e["event_type"]) for e in view["history"]] == ["accept", "file", "case.dispatched"]
    assert view["deadline"] is not None  # 一般: 5 working days (docs/domain.md §3(d)3)
    missing = api.get(f"{intake}/v1/cases/00000000-0000-0000-0000-000000000000", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
