"""End to end: the closed loop of issue 12 through the running services, one test per scenario.

Each scenario is acted out through intake (``POST /v1/reports``, ``POST /v1/cases/{id}/actions``
with ``Prefer: wait``: dispatch decides), and the figures are read where a user reads them:
reporting's ``GET /v1/kpis`` and ``GET /v1/stats``, intake's case view and Open311. Every expected
figure is worked out by hand from the scenario and the definitions of docs/kpis.md, in the
comments beside it; none was taken from a run.

Isolation: each test reports at places of its own, building codes under a grid of demo-grid that
no other test uses (:func:`fresh_place`), and reads every figure with that ``place_prefix`` over
all time, so the tests pass alone, together and in any order. Times: dispatch runs on the test
clock (``DISPATCH_TEST_CLOCK``, tests/conftest.py); where a duration is asserted the test moves
that clock forward by whole hours and allows for the seconds the services take
(:data:`SLACK_H`). Another test may have moved the clock before (its offset from real time is
read at the start, :func:`dispatch_offset_h`): reports carry the real time, dispatch's steps the
clock's.

Reports, the case view and Open311 records are read with the helpers of tests/e2e/test_lifecycle.py.
README's shell blocks are run in tests/e2e/test_readme.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.domain.workcalendar import URGENCY_LIMITS, dispose_deadline
from tests import api
from tests.api import advance_clock, dispatch_offset_h
from tests.e2e.test_lifecycle import (  # the case view, as there
    open311_record,
    report,
    view,
    wait_for,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TENANT = "demo-grid"
GRID = "990102001001001"  # 幸福社区第1网格 (Xingfu community, grid 1): no place-scoped routing rule
COMMUNITY = GRID[:12]  # 幸福社区 990102001001
STREET = GRID[:9]  # 示范街道 990102001
#: Allowance for the real time the services take between two clock moves, in hours (6 minutes).
SLACK_H = 0.1


# --------------------------------------------------------------------------- helpers


def fresh_place() -> str:
    """A building code under :data:`GRID` that no other test uses (21 characters: a grid's
    15 and six more); the tenant owns it through the grid, so it routes, rungs and units like
    the grid itself (shared/domain/tenants.py ``owner``)."""
    return f"{GRID}{uuid.uuid4().int % 10**6:06d}"


def ask(stack, case_id: str, action: str, **fields) -> httpx.Response:
    """``POST /v1/cases/{id}/actions`` waiting for dispatch's decision (``Prefer: wait=20``)."""
    return api.post(f"{stack.url('intake')}/v1/cases/{case_id}/actions", json={"action": action, **fields},
                    headers={"Prefer": "wait=20"}, timeout=40)


def do(stack, case_id: str, action: str, expect_state: str, **fields) -> dict:
    """Ask for ``action``; dispatch must apply it, leaving the case in ``expect_state``."""
    resp = ask(stack, case_id, action, **fields)
    assert resp.status_code == 200, (action, resp.status_code, resp.text)
    body = resp.json()
    assert (body["status"], body["state"]) == ("applied", expect_state), body
    return body


def close_case(stack, case_id: str, outcome: str = "resolved", hours: float = 0, note: str = "") -> None:
    """The department's path to closure: acknowledge, start, (dispatch's clock moves ``hours``),
    resolve with ``outcome``, the check passes."""
    do(stack, case_id, "acknowledge", "acknowledged")
    do(stack, case_id, "start", "in_progress")
    if hours:
        advance_clock(stack, hours)
    do(stack, case_id, "resolve", "checking", outcome=outcome, note=note)
    do(stack, case_id, "verify_pass", "closed")


def eventually(check, timeout_s: float = 90):
    """``check()``'s answer once it stops failing (reporting folds the events a moment after
    dispatch publishes them); its last failure after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def matches(got: dict, expected: dict) -> None:
    """Every key of ``expected`` has its value in ``got`` (floats to 1e-9; ``pytest.approx``
    values as given)."""
    wrong = {}
    for key, want in expected.items():
        if isinstance(want, float):
            want = pytest.approx(want, rel=1e-9, abs=1e-9)
        if key not in got or got[key] != want:
            wrong[key] = (got.get(key, "<missing>"), want)
    assert not wrong, f"(got, expected): {wrong}"


def figures(stack, path: str, place: str, group_by: str | None = None) -> dict:
    """Reporting's ``path`` (``/v1/kpis``, ``/v1/stats``) for the place prefix, all time."""
    params = {"tenant": TENANT, "place_prefix": place, **({"group_by": group_by} if group_by else {})}
    resp = api.get(f"{stack.url('reporting')}{path}", params=params, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def kpis(stack, place: str, group_by: str | None = None) -> dict:
    return figures(stack, "/v1/kpis", place, group_by)


def stats(stack, place: str, group_by: str | None = None) -> dict:
    return figures(stack, "/v1/stats", place, group_by)


def rows_by_key(table: dict) -> dict:
    return {r["key"]: r for r in table["rows"]}


# --------------------------------------------------------------------------- 1. closure outcomes


def test_unresolved_closure_counts_as_closed_not_as_resolved(stack):
    """Issue 12 item 1. Two grid-worker reports of 下水道堵塞 100401 (→ housing, 一般: 5 WD);
    housing closes U as ``unresolved`` ("无法处理 not fixed") and R as ``resolved``; the checks
    pass (the check confirms what the department reported)."""
    place = fresh_place()
    u = report(stack, "100401", place, channel="grid_worker")
    r = report(stack, "100401", place, channel="grid_worker")
    for case in (u, r):
        assert wait_for(stack, case, lambda v: v["state"] == "dispatched")["department"] == "housing"
    close_case(stack, r, "resolved")
    do(stack, u, "acknowledge", "acknowledged")
    do(stack, u, "start", "in_progress")
    # unresolved needs its reason: without a note dispatch refuses it, nothing changes
    refused = ask(stack, u, "resolve", outcome="unresolved")
    assert refused.status_code == 409 and refused.json()["state"] == "in_progress", refused.text
    do(stack, u, "resolve", "checking", outcome="unresolved", note="无法处理 not fixed")
    do(stack, u, "verify_pass", "closed")

    v = view(stack, u)
    assert (v["closed"], v["outcome"], v["outcome_label"]) == (True, "unresolved", "未解决")
    assert open311_record(stack, u)["status_notes"] == "已结案 closed: 未解决 unresolved"
    v = view(stack, r)
    assert (v["outcome"], v["outcome_label"]) == ("resolved", "已解决")
    assert open311_record(stack, r)["status_notes"] == "已结案 closed: 已解决 resolved"

    # By hand (P = all time): both cases accepted and closed (办结 2); 解决量 counts only R's
    # outcome resolved (1); the breakdown: resolved 1, unresolved 1, every other outcome 0, none
    # unrecorded (1 + 1 = 2 = 办结). Both were due (closed in P): 应办结 2, 办结率 2/2 = 1.0; closed
    # seconds after dispatch, within 5 WD: 按期 2. Nothing open: 在办 0. Two dispatches, neither
    # returned: 准确派遣率 2/2 = 1.0. Each dispatch acknowledged at once (一般 responds within
    # 1 WD): 响应率 2/2 = 1.0. No callback: 满意率 and 解决率 have no denominator (null), so no
    # composite score; no reopen: 重办率 0/2 = 0.0.
    expected = {
        "accepted": 2, "closed": 2, "resolved": 1, "unresolved": 1, "partly_resolved": 0, "unfounded": 0,
        "duplicate": 0, "not_remit": 0, "outcome_unrecorded": 0, "due": 2, "completion_rate": 1.0,
        "closed_on_time": 2, "in_progress": 0, "disposed": 2, "dispatches": 2, "inaccurate_dispatches": 0,
        "accurate_dispatch_rate": 1.0, "handovers": 2, "responded": 2, "response_rate": 1.0, "callbacks": 0,
        "satisfaction_rate": None, "resolution_rate": None, "assessment_score": None, "reopened": 0,
        "reopen_rate": 0.0, "close_n": 2, "final_close_n": 2,
    }
    eventually(lambda: matches(kpis(stack, place)["total"], expected))
    # by department: both closures count against housing, the department that closed them
    housing = rows_by_key(kpis(stack, place, "department"))["housing"]
    matches(housing, {"closed": 2, "resolved": 1, "unresolved": 1})
    # /v1/stats: 2 reported (accepted), 2 closed, share closed 2/2
    matches(stats(stack, place)["total"], {"reported": 2, "closed": 2, "open": 0, "closure_rate": 1.0})


# --------------------------------------------------------------------------- 2. who is counted


def test_unaccepted_rejected_and_cancelled_reports_are_outside_the_figures(stack):
    """Issue 12 item 5. Four phone reports (public: they wait for the clerk) of 100401 at one
    place: W is never accepted; K is accepted and filed (→ dispatched to housing); C is accepted,
    filed and then cancelled (作废); J is rejected (不予受理)."""
    place = fresh_place()
    w, k, c, j = (report(stack, "100401", place, channel="phone") for _ in range(4))
    for case in (w, k, c, j):
        wait_for(stack, case, lambda v: v["state"] == "reported")
    for case in (k, c):
        do(stack, case, "accept", "accepted")
        do(stack, case, "file", "dispatched")
    do(stack, c, "cancel", "cancelled", note="重复上报")
    do(stack, j, "reject", "rejected", note="不属实")

    # the ended cases carry their outcome (default unfounded 不属实) in the case view and Open311
    for case, state, notes in ((c, "cancelled", "已作废 cancelled"), (j, "rejected", "不予受理 rejected")):
        v = view(stack, case)
        assert (v["state"], v["outcome"], v["outcome_label"]) == (state, "unfounded", "不属实")
        record = open311_record(stack, case)
        assert (record["status"], record["status_notes"]) == ("closed", f"{notes}: 不属实 unfounded")
    assert open311_record(stack, w)["status"] == "open" and view(stack, w)["state"] == "reported"

    # /v1/stats by status, by hand: K is the only counted case (accepted, dispatched, open):
    # 在办 in_progress with reported 1; W waits in 待受理 (awaiting_acceptance 1, reported 0); C is
    # 已作废 (cancelled 1) and J 不予受理 (rejected 1), each in its own group only: no other
    # group (待派遣 reported, in progress) holds them. Total: reported 1, closed 0, open 1,
    # in_progress 1, awaiting_acceptance 1, rejected 1, cancelled 1.
    def by_status():
        body = stats(stack, place, "status")
        groups = {g["key"]: g for g in body["groups"]}
        assert set(groups) == {"in_progress", "awaiting_acceptance", "cancelled", "rejected"}, groups
        matches(groups["in_progress"], {"reported": 1, "in_progress": 1, "awaiting_acceptance": 0, "rejected": 0,
                                        "cancelled": 0})
        matches(groups["awaiting_acceptance"], {"reported": 0, "closed": 0, "in_progress": 0, "awaiting_acceptance": 1,
                                                "label": "待受理 awaiting acceptance"})
        matches(groups["cancelled"], {"reported": 0, "in_progress": 0, "cancelled": 1, "label": "已作废 cancelled"})
        matches(groups["rejected"], {"reported": 0, "in_progress": 0, "rejected": 1, "label": "不予受理 rejected"})
        matches(body["total"], {"reported": 1, "closed": 0, "open": 1, "in_progress": 1, "transferred": 0,
                                "awaiting_acceptance": 1, "rejected": 1, "cancelled": 1})

    eventually(by_status)
    # /v1/kpis, by hand (P = all time): 受理量 1 (K; W never accepted, J rejected, C cancelled);
    # 立案 1; K's deadline (5 WD after its dispatch) lies in P and K is open: 应办结 1, 办结 0,
    # 办结率 0/1 = 0.0; 在办 1 (K, never transferred); one case dispatched, one dispatch (C's
    # is outside with C), one hand-over, not acknowledged: responded 0; nothing overdue.
    matches(kpis(stack, place)["total"], {
        "accepted": 1, "filed": 1, "due": 1, "closed": 0, "completion_rate": 0.0, "in_progress": 1,
        "in_progress_own": 1, "in_progress_transferred": 0, "dispatched": 1, "dispatches": 1, "handovers": 1,
        "responded": 0, "overdue": 0, "unfounded": 0,
    })


# --------------------------------------------------------------------------- 3. callback and reopen


def test_reopen_after_a_dissatisfied_callback_then_a_satisfied_one(stack):
    """Issue 12 item 2. A grid worker's report of 100401 (→ housing, 一般: 5 WD, respond within
    1 WD). Dispatch's clock (offset O hours from real time at the report):

    - +0 h: dispatched, acknowledged, started; +2 h: resolved, checked: first closure;
    - callback: 不满意 dissatisfied, the resident says not resolved;
    - +3 h: 重办 reopened (reason given): back to housing, a new 5 WD deadline from the reopen;
      acknowledged, started; +1 h: resolved, checked: final closure;
    - callback: 满意 satisfied, resolved; a second callback on the same closure is refused.
    """
    place = fresh_place()
    offset = dispatch_offset_h(stack)
    case = report(stack, "100401", place, channel="grid_worker")
    v = wait_for(stack, case, lambda v: v["state"] == "dispatched")
    first_deadline = datetime.fromisoformat(v["deadline"])
    close_case(stack, case, hours=2)
    do(stack, case, "callback", "closed", satisfaction="dissatisfied", resident_resolved=False)
    advance_clock(stack, 3)
    do(stack, case, "reopen", "dispatched", note="居民反映污水仍外溢 still overflowing")

    v = wait_for(stack, case, lambda v: v["state"] == "dispatched")
    # back to the department that closed it, open again, no outcome until it closes again
    assert (v["department"], v["closed"], v["outcome"], v["reopen_count"]) == ("housing", False, None, 1)
    reopen = next(e for e in v["history"] if e.get("action") == "reopen")
    reopened_at, new_deadline = (datetime.fromisoformat(reopen[k]) for k in ("occurred_at", "deadline"))
    # the new deadline is the full limit (5 WD) counted from the reopen, not from the first
    # dispatch: at least 5 days after the reopen, and not before the first deadline
    limit = URGENCY_LIMITS["一般"].dispose
    assert new_deadline == dispose_deadline(reopened_at, limit)
    assert new_deadline - reopened_at >= timedelta(days=5) and new_deadline >= first_deadline
    assert datetime.fromisoformat(v["deadline"]) == new_deadline

    close_case(stack, case, hours=1)
    do(stack, case, "callback", "closed", satisfaction="satisfied", resident_resolved=True)
    again = ask(stack, case, "callback", satisfaction="basically_satisfied")
    assert again.status_code == 409 and "已回访" in again.json()["reason"], again.text
    v = wait_for(stack, case, lambda v: v["satisfaction"] == "satisfied")
    assert (v["closed"], v["outcome"], v["satisfaction_label"], v["resident_resolved"], v["reopen_count"]) == (
        True, "resolved", "满意", True, 1)
    assert open311_record(stack, case)["status_notes"] == "已结案 closed: 已解决 resolved"

    # By hand (P = all time):
    # - 办结 1: the case counts once, at its final closure (resolved: 解决量 1); 应办结 1.
    # - 回访 2 (both reached the resident), 满意及基本满意 1 → 满意率 1/2 = 0.5; both rated the
    #   resolution, one "resolved" → 解决率 1/2 = 0.5.
    # - 重办 1 against 1 closure → 重办率 1/1 = 1.0.
    # - hand-overs to housing 2 (the dispatch and the reopen), each acknowledged within seconds
    #   (limit 1 WD) → 响应率 2/2 = 1.0.
    # - composite score (demo-grid has no assessment_weights: 0.30/0.35/0.35, [P23]):
    #   100 × (0.30 × 1.0 + 0.35 × 0.5 + 0.35 × 0.5) = 65.0.
    # - time to first close: report (real time) → first closure (clock): O + 2 h; to final close:
    #   O + 2 + 3 + 1 = O + 6 h; one case in each, both positive.
    expected = {
        "accepted": 1, "closed": 1, "resolved": 1, "due": 1, "completion_rate": 1.0, "in_progress": 0,
        "callbacks": 2, "callbacks_unreachable": 0, "callbacks_satisfied": 1, "satisfaction_rate": 0.5,
        "callbacks_rated": 2, "callbacks_resolved": 1, "resolution_rate": 0.5,
        "reopened": 1, "reopen_rate": 1.0, "handovers": 2, "responded": 2, "response_rate": 1.0,
        "assessment_score": 65.0,
        "close_n": 1, "close_hours_mean": pytest.approx(offset + 2, abs=SLACK_H),
        "final_close_n": 1, "final_close_hours_mean": pytest.approx(offset + 6, abs=SLACK_H),
    }
    def settled() -> dict:
        total = kpis(stack, place)["total"]
        matches(total, expected)
        return total

    total = eventually(settled)
    assert 0 < total["close_hours_mean"] < total["final_close_hours_mean"]
    # by department: the callbacks and the reopen count against housing, which closed the case
    matches(rows_by_key(kpis(stack, place, "department"))["housing"],
            {"callbacks": 2, "reopened": 1, "closed": 1, "handovers": 2, "assessment_score": 65.0})
    # /v1/stats: time to close to the first closure, O + 2 h
    s = stats(stack, place)["total"]
    matches(s, {"reported": 1, "closed": 1})
    matches(s["time_to_close_hours"], {"n": 1, "mean": pytest.approx(offset + 2, abs=SLACK_H)})


# --------------------------------------------------------------------------- 4. correction and attribution


def test_wrong_category_corrected_on_return_and_by_the_centre(stack):
    """Issue 12 item 3. Two grid-worker reports at one place, both with the wrong category:

    - A as 下水道堵塞 100401 (→ housing); housing returns it with the right category 黑臭水体
      200401, which routes to water: return, recategorize, dispatch to water.
    - B as 无照经营(店铺) 500101 (→ market_regulation); market_regulation acknowledges it, then
      the centre recategorizes it to 无照经营(游商) 100501, which routes to urban_management:
      recategorize (leaves market_regulation), dispatch to urban_management.

    All four categories have the 一般 limit (5 WD): the deadline, counted from the first
    dispatch as if the category had been right, is unchanged (docs/domain.md §3(d)3).
    """
    place = fresh_place()
    a = report(stack, "100401", place, channel="grid_worker")
    b = report(stack, "500101", place, channel="grid_worker")
    va = wait_for(stack, a, lambda v: v["state"] == "dispatched")
    vb = wait_for(stack, b, lambda v: v["state"] == "dispatched")
    assert (va["department"], vb["department"]) == ("housing", "market_regulation")
    do(stack, b, "acknowledge", "acknowledged")
    # before the corrections: two dispatches, none undone → 准确派遣率 2/2 = 1.0
    eventually(lambda: matches(kpis(stack, place)["total"], {"dispatches": 2, "accurate_dispatch_rate": 1.0}))

    do(stack, a, "return", "dispatched", category_code="200401", note="应为黑臭水体 not a sewer")
    do(stack, b, "recategorize", "dispatched", category_code="100501", note="流动摊贩 a street vendor")
    a_after = wait_for(stack, a, lambda v: v["department"] == "water")
    b_after = wait_for(stack, b, lambda v: v["department"] == "urban_management")
    assert (a_after["category_code"], a_after["return_count"], a_after["recategorize_count"]) == ("200401", 1, 1)
    assert (b_after["category_code"], b_after["return_count"], b_after["recategorize_count"]) == ("100501", 0, 1)
    # the return, the correction and the re-dispatch (published as case.dispatched) in one decision
    steps = [e.get("action") or e["event_type"] for e in a_after["history"]]
    assert steps[-3:] == ["return", "recategorize", "case.dispatched"], steps
    assert (a_after["deadline"], b_after["deadline"]) == (va["deadline"], vb["deadline"])

    # By hand (P = all time), each event against the department it happened to:
    # - housing: received A's first dispatch (1), returned it (退回 1): that dispatch's hold holds
    #   the return → inaccurate 1 → 准确派遣率 0/1 = 0.0; A's hand-over to it not acknowledged.
    # - water: received A's second dispatch (1), accurate → 1.0; A is its case now (受理 1, 在办 1).
    # - market_regulation: received B's first dispatch (1), acknowledged it (responded 1), and the
    #   centre's recategorization was made while it had the case (改类 1), which undoes the
    #   dispatch → 0/1 = 0.0.
    # - urban_management: received B's second dispatch (1), accurate → 1.0; B is its case now.
    # - triage: A's correction came with the return, when A had just gone back to the triage queue
    #   (the department before that step): 改类 1 there.
    # - total: dispatches 4, inaccurate 2 → 准确派遣率 (4 − 2)/4 = 0.5 (it fell from 1.0); 退回 1;
    #   改类 2; cases dispatched 2 (each case's first dispatch), accepted 2, in progress 2.
    eventually(lambda: matches(kpis(stack, place)["total"], {
        "accepted": 2, "in_progress": 2, "dispatched": 2, "dispatches": 4, "inaccurate_dispatches": 2,
        "accurate_dispatch_rate": 0.5, "returned": 1, "recategorized": 2, "transfers_out": 0}))
    rows = rows_by_key(kpis(stack, place, "department"))
    matches(rows["housing"], {"dispatches": 1, "inaccurate_dispatches": 1, "accurate_dispatch_rate": 0.0,
                              "returned": 1, "recategorized": 0, "handovers": 1, "responded": 0, "accepted": 0})
    matches(rows["water"], {"dispatches": 1, "inaccurate_dispatches": 0, "accurate_dispatch_rate": 1.0,
                            "returned": 0, "accepted": 1, "in_progress": 1})
    matches(rows["market_regulation"], {"dispatches": 1, "inaccurate_dispatches": 1, "accurate_dispatch_rate": 0.0,
                                        "returned": 0, "recategorized": 1, "handovers": 1, "responded": 1,
                                        "accepted": 0})
    matches(rows["urban_management"], {"dispatches": 1, "inaccurate_dispatches": 0, "accurate_dispatch_rate": 1.0,
                                       "accepted": 1, "in_progress": 1})
    matches(rows["triage"], {"recategorized": 1, "dispatches": 0, "accepted": 0})
    # the case figures follow the corrected category: one case each of 200401 and 100501
    by_category = rows_by_key(kpis(stack, place, "category"))
    assert {key: r["accepted"] for key, r in by_category.items()} == {"200401": 1, "100501": 1}


# --------------------------------------------------------------------------- 5. mediation ladder


def test_mediation_ladder_figures_per_rung(stack):
    """Issue 12 item 4. Two grid-worker reports of disputes at a building of grid 1 (people's
    mediation from the grid rung), the clock moved one or two hours on each rung:

    - M1 家庭纠纷 300101: grid (1 h) → mediation_failed → community (2 h) → agreement: closed.
    - M2 邻里纠纷 300102, after M1: grid (1 h) → community (1 h) → street (1 h) → linked (1 h) →
      mediation_failed at the last rung: handed to the police (dispatched), open.
    """
    place = fresh_place()
    m1 = report(stack, "300101", place, channel="grid_worker")
    v = wait_for(stack, m1, lambda v: v["state"] == "mediating")
    assert (v["department"], v["mediation_level"]) == ("mediation", "grid")
    advance_clock(stack, 1)
    do(stack, m1, "mediation_failed", "mediating", note="调解不成")
    v = wait_for(stack, m1, lambda v: v["mediation_level"] == "community")
    assert v["unit"] == COMMUNITY  # the case view shows the rung and its unit: 幸福社区
    advance_clock(stack, 2)
    do(stack, m1, "mediation_agreement", "closed", note="达成调解协议")

    m2 = report(stack, "300102", place, channel="grid_worker")
    wait_for(stack, m2, lambda v: v["state"] == "mediating")
    for rung, unit in (("community", COMMUNITY), ("street", STREET), ("linked", STREET)):
        advance_clock(stack, 1)
        do(stack, m2, "mediation_failed", "mediating", note="调解不成")
        v = wait_for(stack, m2, lambda v, rung=rung: v["mediation_level"] == rung)
        assert v["unit"] == unit, (rung, v["unit"])
    advance_clock(stack, 1)
    do(stack, m2, "mediation_failed", "dispatched", note="联动调解不成")
    v = wait_for(stack, m2, lambda v: v["department"] == "police")
    assert (v["state"], v["target_kind"], v["mediation_level"]) == ("dispatched", "department", None)
    assert view(stack, m1)["outcome"] == "resolved"  # an agreement resolves the dispute

    # By hand (P = all time), per rung:
    # - mediated (cases entering the rung, each once): grid M1 M2 = 2, community M1 M2 = 2,
    #   street M2 = 1, linked M2 = 1; in all 2 cases.
    # - agreements: M1 at community = 1.
    # - escalations (mediation_failed to the next rung, at the rung left): grid M1 M2 = 2,
    #   community M2 = 1, street M2 = 1, linked 0; in all 4.
    # - hand-offs: M2 from linked to the police = 1.
    # - 调解成功率 = agreements ÷ (agreements + hand-offs): all 1/(1 + 1) = 0.5; community
    #   1/(1 + 0) = 1.0; linked 0/(0 + 1) = 0.0; grid and street 0/0: null.
    # - hours on the rung: grid (1 + 1)/2 = 1.0, community (2 + 1)/2 = 1.5, street 1.0, linked
    #   1.0; all six stays (1 + 2 + 1 + 1 + 1 + 1)/6 = 7/6 h.
    # - cases: 受理 2, 办结 1 (M1, resolved), 在办 1 (M2 with the police); dispatches 2 (both to
    #   mediation, neither undone); the hand-off to the police is a hand-over (1), not acknowledged.
    h = lambda hours: pytest.approx(hours, abs=SLACK_H)  # noqa: E731
    expected = {
        "accepted": 2, "closed": 1, "resolved": 1, "in_progress": 1, "dispatches": 2, "accurate_dispatch_rate": 1.0,
        "handovers": 1, "responded": 0,
        "mediated": 2, "mediated_grid": 2, "mediated_community": 2, "mediated_street": 1, "mediated_linked": 1,
        "mediation_agreements": 1, "mediation_agreements_grid": 0, "mediation_agreements_community": 1,
        "mediation_agreements_street": 0, "mediation_agreements_linked": 0,
        "mediation_escalations": 4, "mediation_escalations_grid": 2, "mediation_escalations_community": 1,
        "mediation_escalations_street": 1, "mediation_escalations_linked": 0,
        "mediation_handoffs": 1, "mediation_handoffs_grid": 0, "mediation_handoffs_community": 0,
        "mediation_handoffs_street": 0, "mediation_handoffs_linked": 1,
        "mediation_success_rate": 0.5, "mediation_success_rate_grid": None,
        "mediation_success_rate_community": 1.0, "mediation_success_rate_street": None,
        "mediation_success_rate_linked": 0.0,
        "mediation_hours": h(7 / 6), "mediation_hours_grid": h(1.0), "mediation_hours_community": h(1.5),
        "mediation_hours_street": h(1.0), "mediation_hours_linked": h(1.0),
    }
    eventually(lambda: matches(kpis(stack, place)["total"], expected))
    # by department: the mediation row keeps every mediation figure after M2 went to the police
    # (mediation events count against people's mediation); M1 is still its case (closed there),
    # M2 is the police's now (在办 1, the hand-over to it 1)
    rows = rows_by_key(kpis(stack, place, "department"))
    matches(rows["mediation"], {"accepted": 1, "closed": 1, "mediated": 2, "mediation_agreements": 1,
                                "mediation_escalations": 4, "mediation_handoffs": 1, "mediation_success_rate": 0.5,
                                "dispatches": 2})
    matches(rows["police"], {"accepted": 1, "in_progress": 1, "handovers": 1, "mediated": 0,
                             "mediation_handoffs": 0})


# --------------------------------------------------------------------------- 6. simultaneous actions


def _at_once(stack, case_id: str, *bodies: dict) -> list[httpx.Response]:
    """Send the actions together (released by one barrier), each with ``Prefer: wait=20``."""
    barrier = threading.Barrier(len(bodies))
    answers: list[httpx.Response | BaseException | None] = [None] * len(bodies)

    def send(i: int, body: dict) -> None:
        try:
            barrier.wait(timeout=10)
            answers[i] = ask(stack, case_id, **body)
        except BaseException as exc:  # noqa: BLE001 - reported below
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i, body)) for i, body in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for answer in answers:
        if not isinstance(answer, httpx.Response):
            raise AssertionError(f"a request failed: {answer!r}")
    return answers  # type: ignore[return-value]


def _one_applied_one_refused(stack, case_id: str, answers: list[httpx.Response]) -> tuple[dict, dict]:
    """Exactly one answer is 200 applied and the other 409 refused with dispatch's reason; the
    action resource tells the same. Returns (applied body, refused body)."""
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409], [a.text for a in answers]
    won = next(a.json() for a in answers if a.status_code == 200)
    lost = next(a.json() for a in answers if a.status_code == 409)
    assert won["status"] == "applied"
    assert (lost["error"], lost["status"]) == ("action_refused", "refused") and lost["reason"], lost
    # dispatch refused it in the state the winner left: that state and what it allows now
    assert lost["state"] == won["state"] and lost["action"] not in lost["allowed_actions"], (won, lost)
    assert lost["action_id"] != won["action_id"]
    intake = stack.url("intake")
    got_won = api.get(f"{intake}/v1/cases/{case_id}/actions/{won['action_id']}", timeout=10).json()
    got_lost = api.get(f"{intake}/v1/cases/{case_id}/actions/{lost['action_id']}", timeout=10).json()
    assert (got_won["status"], got_won["state"]) == ("applied", won["state"])
    assert (got_lost["status"], got_lost["reason"], got_lost["state"]) == ("refused", lost["reason"], lost["state"])
    assert got_lost["allowed_actions"] == lost["allowed_actions"]
    return won, lost


def test_two_simultaneous_actions_one_applied_the_other_refused(stack):
    """Issue 12 item 6. Two grid-worker reports of 100401 (→ housing). On X two ``acknowledge``
    are sent at once; on Y an ``acknowledge`` and a ``return`` (no target: back to the triage
    queue). Dispatch decides them one after the other: the first applies, the second finds the
    case moved on and is refused; each caller learns its own answer."""
    place = fresh_place()
    x = report(stack, "100401", place, channel="grid_worker")
    y = report(stack, "100401", place, channel="grid_worker")
    for case in (x, y):
        wait_for(stack, case, lambda v: v["state"] == "dispatched")

    won, lost = _one_applied_one_refused(stack, x, _at_once(stack, x, {"action": "acknowledge"},
                                                            {"action": "acknowledge"}))
    # the second acknowledge meets an acknowledged case
    assert won["state"] == "acknowledged" and "acknowledge is not an action of state acknowledged" in lost["reason"]
    v = wait_for(stack, x, lambda v: any(e["event_type"] == "case.action_rejected" for e in v["history"]))
    assert [e.get("action") for e in v["history"]].count("acknowledge") == 2  # one applied, one refused
    assert [e["action"] for e in v["history"] if e["event_type"] == "case.transitioned"].count("acknowledge") == 1

    won, lost = _one_applied_one_refused(stack, y, _at_once(stack, y, {"action": "acknowledge"},
                                                            {"action": "return", "note": "非本部门职责"}))
    acknowledged = won["action"] == "acknowledge"
    if acknowledged:  # a return is allowed only before acknowledgement
        assert won["state"] == "acknowledged" and "return is not an action of state acknowledged" in lost["reason"]
    else:  # the returned case waits in the triage queue (filed); nobody there acknowledges
        assert won["state"] == "filed" and "acknowledge is not an action of state filed" in lost["reason"]
    v = wait_for(stack, y, lambda v: v["state"] == won["state"])
    assert v["return_count"] == (0 if acknowledged else 1)

    # By hand (P = all time): two cases accepted, each dispatched once to housing (hand-overs 2).
    # X acknowledged once (签收 1, responded: at once, within 1 WD). Y: if the acknowledge won,
    # it too is acknowledged and responded (签收 2, responded 2, 响应率 1.0), nothing returned,
    # 准确派遣率 2/2 = 1.0; if the return won, Y was never acknowledged (签收 1, responded 1,
    # 响应率 1/2 = 0.5), 退回 1 and its dispatch is undone: 准确派遣率 1/2 = 0.5, and Y waits in
    # the triage queue, still open. Both open: 在办 2.
    expected = {"accepted": 2, "in_progress": 2, "dispatches": 2, "handovers": 2}
    expected.update({"ack_n": 2, "responded": 2, "response_rate": 1.0, "returned": 0, "accurate_dispatch_rate": 1.0}
                     if acknowledged else
                     {"ack_n": 1, "responded": 1, "response_rate": 0.5, "returned": 1, "accurate_dispatch_rate": 0.5})
    eventually(lambda: matches(kpis(stack, place)["total"], expected))
