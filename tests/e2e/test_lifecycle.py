"""End to end: a case's life through the running services (issue 3).

Actions go to intake (``POST /v1/cases/{id}/actions``), dispatch applies them, intake's case view
and reporting follow. Expected paths come from domain.md §3(c) and seed-figures.md C and E.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest
from tests import api

pytestmark = pytest.mark.e2e

TENANT = "demo-grid"
GRID = "990102001001001"  # a grid of demo-grid (15 digits)
COMMUNITY = "990102001001"  # its community (12 digits)


def report(stack, category: str, place: str, channel: str = "phone", **extra) -> str:
    body = {"tenant": TENANT, "category_code": category, "place_code": place, "channel": channel,
            "description": f"lifecycle test {category}", "reported_at": datetime.now(timezone.utc).isoformat(), **extra}
    resp = api.post(f"{stack.url('intake')}/v1/reports", json=body, timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()["case_id"]


def view(stack, case_id: str) -> dict:
    return api.get(f"{stack.url('intake')}/v1/cases/{case_id}", timeout=10).json()


def wait_for(stack, case_id: str, pred, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        v = view(stack, case_id)
        if pred(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"case {case_id} never reached the expected view; last: state={v['state']} "
                                 f"history={[e.get('action', e['event_type']) for e in v['history']]}")
        time.sleep(0.3)


def act(stack, case_id: str, action: str, role: str, expect_state: str | None = None, **extra) -> dict:
    """Ask for ``action``; wait until the case view shows ``expect_state`` (the new state)."""
    before = len(view(stack, case_id)["history"])
    resp = api.post(f"{stack.url('intake')}/v1/cases/{case_id}/actions",
                      json={"action": action, "actor_role": role, **extra}, timeout=10)
    assert resp.status_code == 202, resp.text
    return wait_for(stack, case_id, lambda v: len(v["history"]) > before and (expect_state is None or v["state"] == expect_state))


def test_closed_loop_with_rework_and_an_illegal_action(stack):
    case = report(stack, "100102", GRID)  # 垃圾扰民 → urban_management (taxonomy default)
    v = wait_for(stack, case, lambda v: v["state"] == "reported")
    # illegal: a department cannot acknowledge a case nobody accepted yet → 409, nothing changes
    resp = api.post(f"{stack.url('intake')}/v1/cases/{case}/actions",
                      json={"action": "acknowledge", "actor_role": "department_staff"}, timeout=10)
    assert resp.status_code == 409
    body = resp.json()
    assert body["error"] == "illegal_action" and body["state"] == "reported"
    assert set(body["allowed_actions"]) == {"accept", "reject", "cancel", "merge"}  # merge: issue 12
    act(stack, case, "accept", "intake_clerk", "accepted")
    v = act(stack, case, "file", "shift_lead", "dispatched")  # filing dispatches by the routing table
    assert v["department"] == "urban_management" and v["deadline"]
    act(stack, case, "acknowledge", "department_staff", "acknowledged")
    act(stack, case, "start", "department_staff", "in_progress")
    act(stack, case, "resolve", "department_staff", "checking")  # resolved, then on-site check
    v = act(stack, case, "verify_fail", "grid_worker", "in_progress")  # 返工: same department
    assert v["rework_count"] == 1 and v["department"] == "urban_management"
    act(stack, case, "resolve", "department_staff", "checking")
    v = act(stack, case, "verify_pass", "grid_worker", "closed")
    assert v["closed"] is True
    actions = [e.get("action", e["event_type"]) for e in v["history"]]
    assert actions == ["accept", "file", "case.dispatched", "acknowledge", "start", "resolve", "begin_check",
                       "verify_fail", "resolve", "begin_check", "verify_pass"]
    # and reporting counted the rework
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = api.get(f"{stack.url('reporting')}/v1/stats", params={"tenant": TENANT, "group_by": "status"}).json()
        if stats["total"]["closed"] >= 1:
            break
        time.sleep(0.5)
    assert stats["total"]["closed"] >= 1


def test_seed_c_sewer_case_climbs_grid_community_street_then_urban_management_closes(stack):
    # seed-figures.md C: a sewer blockage crossing the boundary with a neighbouring village was
    # reported to the contradiction-resolution platform, then the street office and urban
    # management repaired it: a case that escalated beyond the grid (能处则处, 逐级上报: block E).
    case = report(stack, "100401", GRID, channel="platform")
    act(stack, case, "accept", "grid_worker", "accepted")
    v = act(stack, case, "escalate", "grid_worker", "accepted")
    v = act(stack, case, "escalate", "community_staff", "accepted")
    levels = [e.get("reason", "") for e in v["history"] if e.get("action") == "escalate"]
    assert len(levels) == 2
    v = act(stack, case, "file", "street_staff", "dispatched", target_department="urban_management")
    assert v["department"] == "urban_management"
    act(stack, case, "acknowledge", "department_staff", "acknowledged")
    act(stack, case, "start", "department_staff", "in_progress")
    act(stack, case, "resolve", "department_staff", "checking")
    v = act(stack, case, "verify_pass", "street_staff", "closed")
    assert v["department"] == "urban_management" and v["closed"]


def test_family_dispute_fails_at_community_and_is_settled_by_the_street_centre(stack):
    # seed-figures.md E: courtyard → community → town (street) mediation centre.
    case = report(stack, "300101", COMMUNITY, channel="grid_worker")  # auto-filed, mediation at the community
    v = wait_for(stack, case, lambda v: v["state"] == "mediating")
    assert v["target_kind"] == "mediation"
    v = act(stack, case, "mediation_failed", "mediator", "mediating")
    assert "street" in " ".join(str(e.get("mediation_level")) for e in v["history"])
    v = act(stack, case, "mediation_agreement", "mediator", "closed")
    assert v["closed"]


def test_violence_flag_forks_to_the_police(stack):
    case = report(stack, "300102", GRID, channel="grid_worker", flags=["violence"])
    v = wait_for(stack, case, lambda v: v["state"] == "dispatched")
    assert v["department"] == "police" and v["target_kind"] == "department"


def test_deadline_alerts_fire_with_a_controllable_clock(stack):
    # 紧急: dispose within 24 natural hours (domain.md §3(d)3): yellow at 80 % (19.2 h), red at 24 h
    # with 督办 level 1, 提级督办 level 2 five working days later (§3(d)4).
    case = report(stack, "400101", GRID, channel="grid_worker", urgency="紧急")
    v = wait_for(stack, case, lambda v: v["state"] == "dispatched")
    advance = f"{stack.url('dispatch')}/v1/test/clock/advance"
    api.post(advance, params={"seconds": 20 * 3600}, timeout=10).raise_for_status()
    v = wait_for(stack, case, lambda v: any(e["event_type"] == "case.supervised" for e in v["history"]))
    alerts = [e["alert"] for e in v["history"] if e["event_type"] == "case.supervised"]
    assert alerts == ["yellow"] and v["supervision_level"] == 0
    api.post(advance, params={"seconds": 5 * 3600}, timeout=10).raise_for_status()
    v = wait_for(stack, case, lambda v: v["supervision_level"] == 1)
    assert [e["alert"] for e in v["history"] if e["event_type"] == "case.supervised"] == ["yellow", "red"]
    api.post(advance, params={"seconds": 9 * 86400}, timeout=10).raise_for_status()
    v = wait_for(stack, case, lambda v: v["supervision_level"] == 2)
    assert [e["alert"] for e in v["history"] if e["event_type"] == "case.supervised"] == ["yellow", "red", "higher"]


def test_timers_fire_once_with_two_dispatch_instances(stack):
    """Timers live in the database and are claimed with SKIP LOCKED: with two dispatch instances
    (both clocks moved past the deadlines) every alert of every case fires exactly once."""
    cases = [report(stack, "400102", GRID, channel="grid_worker", urgency="紧急") for _ in range(6)]
    for case in cases:
        wait_for(stack, case, lambda v: v["state"] == "dispatched")
    stack.start_service("dispatch-2", "dispatch")
    stack.wait_healthy("dispatch-2")
    try:
        time.sleep(6)  # the group rebalances with two members
        for name in ("dispatch", "dispatch-2"):
            api.post(f"{stack.url(name)}/v1/test/clock/advance", params={"seconds": 30 * 86400}, timeout=10).raise_for_status()
        for case in cases:
            v = wait_for(stack, case, lambda v: v["supervision_level"] == 2)
            time.sleep(0.5)
            v = view(stack, case)
            alerts = [e["alert"] for e in v["history"] if e["event_type"] == "case.supervised"]
            assert sorted(alerts) == ["higher", "red", "yellow"], alerts
        fired = 0.0
        for name in ("dispatch", "dispatch-2"):
            text = api.get(f"{stack.url(name)}/metrics", timeout=10).text
            fired += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith("dispatch_supervisions_total "))
        assert fired >= 3 * len(cases)
    finally:
        stack.stop_service("dispatch-2")
        del stack.services["dispatch-2"]
