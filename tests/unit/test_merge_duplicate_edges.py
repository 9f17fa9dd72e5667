"""The edges of merging duplicates (issue 15 item 3; docs/domain.md §3(c)5 "Duplicates", docs/kpis.md §2):

(a) an original with merged duplicates may not leave the figures: ``cancel``, ``reject`` and
    ``merge_duplicate`` of it are refused, naming the duplicates (services/dispatch/domain/lifecycle/
    guards.py ``merged_duplicates_refusal``); it ends through the check instead, and the figures
    count the matter once (reporting's cells, services/reporting/kpis/cells.py);
(b) chains: a case cannot be merged into a merged duplicate (the refusal names the root; tested in
    test_merge_duplicate.py), nor can a case with merged duplicates be merged into another (the
    refusal says to merge the other one into it), so every merged duplicate names a counted case;
(c) an original dispatch does not hold (yet): the refusal says it may not have arrived and to send
    the merge again.

Every expected value is worked out by hand in the comments.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from services.dispatch.domain.lifecycle import (
    CANCELLED,
    CHECKING,
    CLOSED,
    LEAVING_ACTIONS,
    Case,
    Command,
    Context,
    IllegalAction,
    OriginalCase,
    allowed_actions,
    decide,
)
from services.reporting.kpis.cells import case_cells
from shared.domain.workcalendar import DEFAULT_TZ

GRID = "990102001001001"
ORIGINAL = "6f1c0d5e-0000-4000-8000-0000000000d1"
OTHER = "6f1c0d5e-0000-4000-8000-0000000000d2"
DUPS = tuple(f"6f1c0d5e-0000-4000-8000-0000000000e{i}" for i in range(1, 6))  # e1 … e5, in order
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=DEFAULT_TZ)

#: Every state before a case ends, by hand (docs/domain.md §3(c)1): cancel and merge are allowed in
#: each, reject only in reported.
OPEN_STATES = ("reported", "accepted", "filed", "dispatched", "acknowledged", "in_progress", "resolved",
               "checking", "shelved", "mediating")


def a_case(state: str) -> Case:
    extra = {"paused_since": NOW} if state == "shelved" else {"mediation_level": "grid"} if state == "mediating" else {}
    return Case(state=state, place_code=GRID, **extra)


def ctx(merged: tuple[str, ...] = (), original: OriginalCase | None = None, case_id: str = ORIGINAL) -> Context:
    """What the case book gives ``decide`` (store.py ``action_context``): the case's id and tenant,
    the case a command names, and the cases merged into this one."""
    return Context(case_id=case_id, case_tenant="demo-grid", original=original, merged_duplicates=merged)


def leaving(action: str) -> Command:
    fields = {"duplicate_of": OTHER} if action == "merge_duplicate" else {}
    return Command(action, actor_role="shift_lead", note="作废", **fields)


# --------------------------------------------------------------------------- (a) the original stays


@pytest.mark.parametrize("state,action", [(s, a) for a in ("cancel", "merge_duplicate") for s in OPEN_STATES]
                         + [("reported", "reject")])
def test_an_original_with_merged_duplicates_cannot_leave_the_figures(state, action):
    other = OriginalCase(OTHER, "demo-grid", "dispatched")
    # without merged duplicates the action applies: the case ends cancelled or rejected
    new, _ = decide(a_case(state), leaving(action), NOW, ctx(original=other))
    assert new.state == ("rejected" if action == "reject" else CANCELLED)
    # with one, refused: the reason names it, and the allowed actions leave out all three
    with pytest.raises(IllegalAction) as refused:
        decide(a_case(state), leaving(action), NOW, ctx((DUPS[0],), original=other))
    assert refused.value.reason.startswith("原件有合并重复件 1 case(s) merged into this case as its "
                                           "duplicates count as this case")
    assert refused.value.current_state == state
    assert not set(refused.value.allowed_actions) & set(LEAVING_ACTIONS)


def test_the_refusal_says_what_to_do_instead_and_names_none():
    """The refusal counts the duplicates and names none (one may lie in a place the caller may not
    see)."""
    five = tuple(reversed(DUPS))
    with pytest.raises(IllegalAction) as refused:
        decide(a_case("dispatched"), leaving("cancel"), NOW, ctx(five))
    assert refused.value.reason == (
        "原件有合并重复件 5 case(s) merged into this case as its duplicates count as this case: cancel would "
        "leave them counted nowhere; close it through the "
        "check (resolve, with outcome unfounded or not_remit if so) instead")
    with pytest.raises(IllegalAction) as refused:
        decide(a_case("dispatched"), leaving("merge_duplicate"), NOW,
               ctx((DUPS[0],), original=OriginalCase(OTHER, "demo-grid", "dispatched")))
    assert refused.value.reason.endswith("merge the other case into this one instead")


def test_allowed_actions_of_a_dispatched_original_with_merged_duplicates():
    # dispatched allows acknowledge, return, transfer, request_extension, approve_extension, shelve,
    # supervise, recategorize, cancel, merge_duplicate (docs/domain.md §3(c)3–4). This case has no
    # deadline (no extension to ask or grant, nothing to supervise) and a merged duplicate (no
    # cancel, no merge): five are left.
    assert allowed_actions(a_case("dispatched"), NOW, ctx((DUPS[0],))) == (
        "acknowledge", "return", "transfer", "shelve", "recategorize")
    assert "cancel" in allowed_actions(a_case("dispatched"), NOW, ctx())


def test_the_original_ends_through_the_check_and_the_matter_counts_once():
    """The way the refusal points: the department resolves it as unfounded, the check passes."""
    case = a_case("in_progress")
    case, steps = decide(case, Command("resolve", actor_role="department", outcome="unfounded"), NOW,
                         ctx((DUPS[0],)))
    assert (case.state, [t.action for t in steps]) == (CHECKING, ["resolve", "begin_check"])
    case, _ = decide(case, Command("verify_pass", actor_role="supervisor"), NOW, ctx((DUPS[0],)))
    assert (case.state, case.outcome) == (CLOSED, "unfounded")
    # the closed original still takes the closed loop's callback (回访) and reopen
    assert allowed_actions(case, NOW, ctx((DUPS[0],))) == ("callback", "reopen")


# Reporting's rows of the two cases (reporting.case_facts, the columns cells.py reads), by hand:
# the original reported Mon 2026-03-02 09:30 and accepted, dispatched 10:00 with deadline Wed 3/4
# 18:00, closed Wed 3/4 12:00; the duplicate reported 3/2 10:30, accepted, merged 3/3.
def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=DEFAULT_TZ)


def fact(**kw) -> dict:
    """A row of the original; ``kw`` replaces columns (a tuple is a time ``(day, hour[, minute])``)."""
    row = {"tenant": "demo-grid", "place_code": GRID, "category_code": "100102", "department": "urban_management",
           "channel": "phone", "reported_at": t(2, 9, 30), "accepted_at": t(2, 9, 30), "state": "dispatched",
           "closed": False, "closed_at": None, "final_closed_at": None, "deadline": t(4, 18),
           "dispatched_at": t(2, 10), "target_kind": "department", "acknowledged_at": None, "resolved_at": None,
           "transfer_count": 0, "rework_count": 0, "supervision_level": 0, "outcome": None, "request_type": ""}
    return row | {k: (t(*v) if isinstance(v, tuple) else v) for k, v in kw.items()}


def totals(*rows: dict) -> Counter:
    """The rows' contributions to the rollups, summed over every cell (days, places …)."""
    out: Counter = Counter()
    for row in rows:
        cells, _ = case_cells(row, DEFAULT_TZ)
        for counters in cells.values():
            out.update(counters)
    return out


def test_the_figures_count_the_original_once_and_the_duplicate_apart():
    duplicate = fact(reported_at=(2, 10, 30), accepted_at=(2, 10, 30), state="cancelled", outcome="duplicate",
                     closed=True, closed_at=(3, 8), dispatched_at=None, deadline=None, target_kind=None)
    closed = fact(state="closed", closed=True, closed_at=(4, 12), outcome="unfounded")
    got = totals(closed, duplicate)
    # 受理量 1 (the original), 办结 1 as 不属实 (not resolved), on time (12:00 ≤ 18:00), 合并重复件 1:
    # 受理量 + 合并重复件 = 2, the two accepted reports.
    assert {k: got[k] for k in ("accepted", "closed", "unfounded", "resolved", "closed_on_time",
                                "merged_duplicates")} == {
        "accepted": 1, "closed": 1, "unfounded": 1, "resolved": 0, "closed_on_time": 1, "merged_duplicates": 1}
    # What the refusal prevents: the original cancelled too — 受理量 0, 办结 0, only 合并重复件 1:
    # the matter itself counted nowhere.
    cancelled = fact(state="cancelled", outcome="unfounded", closed=True, closed_at=(4, 12))
    got = totals(cancelled, duplicate)
    assert (got["accepted"], got["closed"], got["merged_duplicates"]) == (0, 0, 1)


# --------------------------------------------------------------------------- (b) chains


def test_no_chain_either_way():
    # onto a merged duplicate: refused, naming the case it duplicates (the root)
    merged_before = OriginalCase(ORIGINAL, "demo-grid", "cancelled", duplicate_of=OTHER)
    with pytest.raises(IllegalAction, match=f"itself a duplicate of {OTHER}: name that case"):
        decide(a_case("accepted"), Command("merge_duplicate", duplicate_of=ORIGINAL), NOW,
               ctx(original=merged_before, case_id=DUPS[1]))
    # an original with a merged duplicate into another case: refused (its duplicate would name a
    # merged duplicate); the other into it applies, and the other names a counted case
    with pytest.raises(IllegalAction, match="merge the other case into this one instead"):
        decide(a_case("dispatched"), Command("merge_duplicate", duplicate_of=OTHER), NOW,
               ctx((DUPS[0],), original=OriginalCase(OTHER, "demo-grid", "dispatched")))
    other, _ = decide(a_case("dispatched"), Command("merge_duplicate", duplicate_of=ORIGINAL), NOW,
                      ctx(original=OriginalCase(ORIGINAL, "demo-grid", "dispatched"), case_id=OTHER))
    assert (other.state, other.outcome, other.duplicate_of) == (CANCELLED, "duplicate", ORIGINAL)


# --------------------------------------------------------------------------- (c) not held yet


def test_an_original_dispatch_does_not_hold_yet_is_refused_with_a_retry_hint():
    """Intake refuses an original the caller cannot see (422 unknown_original) before dispatch, so
    one dispatch does not hold is most likely reported moments ago and still on its way."""
    with pytest.raises(IllegalAction) as refused:
        decide(a_case("accepted"), Command("merge_duplicate", duplicate_of=OTHER), NOW, ctx(case_id=DUPS[0]))
    assert refused.value.reason == (
        f"原件不存在或尚未送达 the original case {OTHER} is not a case dispatch holds (yet): a case reported "
        "moments ago may not have reached dispatch; send the merge again shortly")
