"""End to end: a case's life through the running services (issue 3).

Actions go to intake (``POST /v1/cases/{id}/actions``), dispatch applies them, intake's case view
and reporting follow. Expected paths come from docs/domain.md §3(c) and docs/seeds.md block C and E.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from tests import api

pytestmark = pytest.mark.e2e

TENANT = "demo-grid"
GRID = "990102001001001"  # a grid of demo-grid (15 digits)
COMMUNITY = "990102001001"  # its community (12 digits)


def report(stack, category: str, place: str, channel: str = "phone", **extra) -> str:
    body = {"tenant": TENANT, "category_code": category, "place_code": place, "channel": channel,
            "description": f"lifecycle test {category}", "reported_at": datetime.now(UTC).isoformat(), **extra}
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
    # illegal: a department cannot acknowledge a case nobody accepted yet → dispatch refuses it;
    # waiting for its decision (Prefer: wait) the caller gets 409 with the reason; nothing changes
    resp = api.post(f"{stack.url('intake')}/v1/cases/{case}/actions", headers={"Prefer": "wait=10"},
                    json={"action": "acknowledge", "actor_role": "department_staff"}, timeout=20)
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert body["error"] == "action_refused" and body["status"] == "refused" and body["state"] == "reported"
    assert set(body["allowed_actions"]) == {"accept", "reject", "cancel", "merge_duplicate"}  # merge: issue 12
    assert body["reason"] and body["action_id"]
    assert view(stack, case)["state"] == "reported"
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
    # dispatch's refusal of the early acknowledge is in the history, and changed nothing
    assert [(e["action"], e["state"]) for e in v["history"] if e["event_type"] == "case.action_rejected"] == [
        ("acknowledge", "reported")]
    actions = [e.get("action", e["event_type"]) for e in v["history"] if e["event_type"] != "case.action_rejected"]
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


def test_prefer_wait_answers_with_dispatchs_decision_and_the_action_keeps_it(stack):
    """Issue 12 item 6: dispatch alone decides; ``Prefer: wait=N`` (RFC 7240) on the POST answers
    with its decision (200 applied, 409 refused with dispatch's reason), ``Location`` names the
    action, ``GET /v1/cases/{id}/actions/{action_id}`` tells it later; without the preference the
    answer is 202 pending; an Idempotency-Key names the same action again."""
    intake = stack.url("intake")
    case = report(stack, "100102", GRID)
    wait_for(stack, case, lambda v: v["state"] == "reported")
    url = f"{intake}/v1/cases/{case}/actions"
    # applied: 200 with the new state
    resp = api.post(url, json={"action": "accept"}, headers={"Prefer": "wait=10"}, timeout=20)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["status"], body["state"], body["action"], body["case_id"]) == ("applied", "accepted", "accept", case)
    assert resp.headers["preference-applied"] == "wait=10"
    assert resp.headers["location"] == f"/v1/cases/{case}/actions/{body['action_id']}"
    got = api.get(f"{intake}{resp.headers['location']}", timeout=10)
    assert got.status_code == 200 and got.json()["status"] == "applied" and got.json()["state"] == "accepted"
    # refused by dispatch: 409 with its reason, the state and the allowed actions
    resp = api.post(url, json={"action": "verify_pass"}, headers={"Prefer": "wait=10"}, timeout=20)
    assert resp.status_code == 409, resp.text
    refused = resp.json()
    assert (refused["error"], refused["status"], refused["state"]) == ("action_refused", "refused", "accepted")
    assert "verify_pass" in refused["reason"] and "file" in refused["allowed_actions"]
    got = api.get(f"{intake}/v1/cases/{case}/actions/{refused['action_id']}", timeout=10).json()
    assert (got["status"], got["reason"], got["state"]) == ("refused", refused["reason"], "accepted")
    # no preference: 202 pending at once; GET with Prefer: wait tells the decision
    resp = api.post(url, json={"action": "file"}, headers={"Idempotency-Key": "lifecycle-file"}, timeout=10)
    assert resp.status_code == 202 and resp.json()["status"] == "pending" and "preference-applied" not in resp.headers
    action_id = resp.json()["action_id"]
    got = api.get(f"{intake}/v1/cases/{case}/actions/{action_id}", headers={"Prefer": "wait=10"}, timeout=20)
    assert got.status_code == 200 and got.json()["status"] == "applied", got.text
    # the same Idempotency-Key again: the same action, already applied, nothing new requested
    again = api.post(url, json={"action": "file"}, headers={"Idempotency-Key": "lifecycle-file", "Prefer": "wait=5"},
                     timeout=20)
    assert again.status_code == 200 and again.json()["action_id"] == action_id and again.json()["duplicate"] is True
    v = wait_for(stack, case, lambda v: v["state"] == "dispatched")
    assert [e.get("action") for e in v["history"]].count("file") == 1
    # another case's action, or none: 404
    other = report(stack, "100102", GRID)
    assert api.get(f"{intake}/v1/cases/{other}/actions/{action_id}", timeout=10).status_code == 404
    assert api.get(f"{intake}/v1/cases/{case}/actions/{uuid.uuid4()}", timeout=10).status_code == 404


def decide(stack, case_id: str, action: str, **extra) -> dict:
    """Ask for ``action`` and wait for dispatch's decision (Prefer: wait); it must be applied."""
    resp = api.post(f"{stack.url('intake')}/v1/cases/{case_id}/actions", json={"action": action, **extra},
                    headers={"Prefer": "wait=15"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def open311_record(stack, case_id: str) -> dict:
    resp = api.get(f"{stack.url('intake')}/open311/v2/requests/{case_id}.json", params={"jurisdiction_id": TENANT},
                   timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()[0]


def test_case_view_and_open311_show_outcome_callback_and_reopen(stack):
    """Issue 12 items 1, 2 and 6: the case view shows the outcome (with its zh-CN label), the
    newest callback's rating and the reopen count; Open311's status_notes names the outcome of a
    closed case; a reopened case is open again."""
    case = report(stack, "100102", GRID, channel="grid_worker")  # accepted, filed, dispatched by the system
    wait_for(stack, case, lambda v: v["state"] == "dispatched")
    decide(stack, case, "acknowledge")
    decide(stack, case, "start")
    assert decide(stack, case, "resolve", outcome="resolved")["state"] == "checking"
    assert decide(stack, case, "verify_pass")["state"] == "closed"
    v = wait_for(stack, case, lambda v: v["state"] == "closed")
    assert (v["closed"], v["outcome"], v["outcome_label"], v["reopen_count"]) == (True, "resolved", "已解决", 0)
    assert v["category_code"] == "100102" and v["satisfaction"] is None
    record = open311_record(stack, case)
    assert (record["status"], record["status_notes"]) == ("closed", "已结案 closed: 已解决 resolved")
    # 回访: the resident is not satisfied and says it is not fixed
    assert decide(stack, case, "callback", satisfaction="dissatisfied", resident_resolved=False)["state"] == "closed"
    v = wait_for(stack, case, lambda v: v["satisfaction"] is not None)
    assert (v["satisfaction"], v["satisfaction_label"], v["resident_resolved"]) == ("dissatisfied", "不满意", False)
    # 重办: back to the department that closed it, open again, no outcome until it closes again
    assert decide(stack, case, "reopen", note="居民反映仍未解决")["state"] == "dispatched"
    v = wait_for(stack, case, lambda v: v["state"] == "dispatched")
    assert (v["closed"], v["outcome"], v["reopen_count"], v["department"]) == (False, None, 1, "urban_management")
    assert open311_record(stack, case)["status"] == "open"


def test_seed_c_sewer_case_climbs_grid_community_street_then_urban_management_closes(stack):
    # docs/seeds.md block C: a sewer blockage crossing the boundary with a neighbouring village was
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
    # docs/seeds.md block E: courtyard → community → town (street) mediation centre.
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
    # 紧急: dispose within 24 natural hours (docs/domain.md §3(d)3): yellow at 80 % (19.2 h), red at 24 h
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
