"""Merging a duplicate (合并重复件, issue 15 item 3): dispatch's rule for ``merge_duplicate``
(services/dispatch/domain/lifecycle/outcomes.py ``_merge``, ``original_of``; docs/domain.md §3(c)5) and who
may ask for it (shared/platform/auth.py ``ROLE_ACTIONS``).

The rule, as docs/domain.md states it: a merge is a cancellation allowed wherever cancelling is (every
state that has not ended); it records the outcome ``duplicate`` and the original's id; the
original must be another case dispatch holds, of the same tenant, not rejected or cancelled (such
a case is outside every figure, docs/kpis.md §2), accepted (a report awaiting acceptance is outside
every figure too), and not itself a merged duplicate.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from services.dispatch.domain.events import transition_events
from services.dispatch.domain.lifecycle import (
    ACTION_ACTORS,
    CANCELLED,
    STATES,
    Case,
    Command,
    Context,
    IllegalAction,
    OriginalCase,
    allowed_actions,
    decide,
)
from services.dispatch.store import case_to_json, original_of
from shared.contract.actions import REQUESTABLE_ACTIONS
from shared.domain.workcalendar import DEFAULT_TZ
from shared.platform.auth import ROLE_ACTIONS, ROLES

GRID = "990102001001001"
CASE_ID = "6f1c0d5e-0000-4000-8000-0000000000c1"
ORIGINAL = "6f1c0d5e-0000-4000-8000-0000000000c2"
EARLIER = "6f1c0d5e-0000-4000-8000-0000000000c3"
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=DEFAULT_TZ)

#: The states in which a case can still be merged: every state but the three that end a case
#: (closed, rejected, cancelled; docs/domain.md §3(c)1), listed by hand.
OPEN_STATES = ("reported", "accepted", "filed", "dispatched", "acknowledged", "in_progress", "resolved",
               "checking", "shelved", "mediating")


def context(original: OriginalCase | None, case_tenant: str = "demo-grid") -> Context:
    """What the case book gives ``decide`` for a command naming a case (store.py ``action_context``)."""
    return Context(case_id=CASE_ID, case_tenant=case_tenant, original=original)


def a_case(state: str) -> Case:
    """A case of demo-grid in ``state`` (a shelved case needs its pause, a mediating one its rung)."""
    extra = {"paused_since": NOW} if state == "shelved" else {"mediation_level": "grid"} if state == "mediating" else {}
    return Case(state=state, place_code=GRID, **extra)


def merge(case: Case, original: OriginalCase | None, *, duplicate_of: str | None = ORIGINAL,
          case_tenant: str = "demo-grid"):
    return decide(case, Command("merge_duplicate", actor_role="shift_lead", duplicate_of=duplicate_of),
                  NOW, context(original, case_tenant))


OPEN_ORIGINAL = OriginalCase(ORIGINAL, "demo-grid", "dispatched")


# --------------------------------------------------------------------------- who

def test_only_the_centre_s_supervisors_may_merge():
    """Merging cancels a case: the supervisors' actions (approve_extension, shelve, cancel) —
    street staff, the city operations centre and admins; not grid workers, community staff,
    department staff or mediators (shared/platform/auth.py ``_SUPERVISOR``)."""
    assert "merge_duplicate" in REQUESTABLE_ACTIONS
    may = {role for role in ROLES if "merge_duplicate" in ROLE_ACTIONS[role]}
    assert may == {"street_staff", "city_ops", "admin"}
    # exactly the roles that may cancel
    assert may == {role for role in ROLES if "cancel" in ROLE_ACTIONS[role]}
    assert ACTION_ACTORS["merge_duplicate"] == ("shift_lead",)  # 值班长, as cancel


# --------------------------------------------------------------------------- from which states

@pytest.mark.parametrize("state", OPEN_STATES)
def test_a_case_that_has_not_ended_can_be_merged(state):
    case = a_case(state)
    assert "merge_duplicate" in allowed_actions(case)
    merged, (step,) = merge(case, OPEN_ORIGINAL)
    assert (merged.state, merged.outcome, merged.duplicate_of) == (CANCELLED, "duplicate", ORIGINAL)
    assert (step.action, step.from_state, step.to_state, step.outcome, step.duplicate_of) == (
        "merge_duplicate", state, CANCELLED, "duplicate", ORIGINAL)


@pytest.mark.parametrize("state", ("closed", "rejected", "cancelled"))
def test_an_ended_case_cannot_be_merged(state):
    """A closed case was counted as a completion (办结); a rejected or cancelled one is already
    outside every figure."""
    assert set(OPEN_STATES) | {state} <= set(STATES)
    case = a_case(state)
    assert "merge_duplicate" not in allowed_actions(case)
    with pytest.raises(IllegalAction, match="has ended"):
        merge(case, OPEN_ORIGINAL)


# --------------------------------------------------------------------------- onto what

def test_not_onto_itself():
    itself = OriginalCase(CASE_ID, "demo-grid", "reported")
    with pytest.raises(IllegalAction, match="itself"):
        merge(a_case("accepted"), itself, duplicate_of=CASE_ID)


def test_the_original_must_be_named():
    with pytest.raises(IllegalAction, match="duplicate_of"):
        merge(a_case("accepted"), OPEN_ORIGINAL, duplicate_of=None)
    with pytest.raises(IllegalAction, match="duplicate_of"):
        merge(a_case("accepted"), OPEN_ORIGINAL, duplicate_of="  ")


def test_the_original_must_exist():
    """Dispatch holds no case of that id (``original`` None), or the case book looked up another one."""
    with pytest.raises(IllegalAction, match="not a case dispatch holds") as refused:
        merge(a_case("accepted"), None)
    assert refused.value.current_state == "accepted"  # nothing changed
    with pytest.raises(IllegalAction, match="not a case dispatch holds"):
        merge(a_case("accepted"), OriginalCase(EARLIER, "demo-grid", "dispatched"))


def test_not_onto_a_case_of_another_tenant():
    foreign = OriginalCase(ORIGINAL, "nyc", "dispatched")
    # refused in the words for a case dispatch does not hold (no oracle of other tenants' ids)
    with pytest.raises(IllegalAction, match="not a case dispatch holds"):
        merge(a_case("accepted"), foreign)
    # the same case is a fine original for a case of its own tenant
    merged, _ = merge(a_case("accepted"), foreign, case_tenant="nyc")
    assert merged.duplicate_of == ORIGINAL


@pytest.mark.parametrize("state", ("rejected", "cancelled"))
def test_not_onto_a_case_outside_the_figures(state):
    """A rejected or cancelled original counts nowhere (docs/kpis.md §2): merged into it, the
    matter would not be counted at all."""
    with pytest.raises(IllegalAction, match=f"is {state}"):
        merge(a_case("accepted"), OriginalCase(ORIGINAL, "demo-grid", state))


def test_not_onto_a_merged_duplicate_the_refusal_names_its_original():
    merged_before = OriginalCase(ORIGINAL, "demo-grid", "cancelled", duplicate_of=EARLIER)
    with pytest.raises(IllegalAction, match=f"itself a duplicate of {EARLIER}"):
        merge(a_case("accepted"), merged_before)


@pytest.mark.parametrize("state", ("accepted", "in_progress", "closed"))
def test_onto_an_open_or_closed_case(state):
    """Open or closed alike (issue 15: candidates are "open or closed within a window")."""
    merged, _ = merge(a_case("dispatched"), OriginalCase(ORIGINAL, "demo-grid", state))
    assert merged.state == CANCELLED


def test_not_onto_a_report_awaiting_acceptance():
    """A public report the clerk has not accepted (受理) yet is outside every figure (docs/kpis.md
    §2 "which cases count"), so it may not be an original: the matter would count only as 合并重复件
    while it waits, and nowhere in 受理量 were it never accepted. The refusal says to accept it
    first or to merge the other way."""
    with pytest.raises(IllegalAction) as refused:
        merge(a_case("dispatched"), OriginalCase(ORIGINAL, "demo-grid", "reported"))
    assert refused.value.reason == (
        f"原件尚未受理 the original case {ORIGINAL} has not been accepted yet: it is not counted until it "
        "is, so its duplicate would count nowhere; accept it first, or name this case as its original instead")
    assert refused.value.current_state == "dispatched"
    # accepted, the same report may be the original
    merged, _ = merge(a_case("dispatched"), OriginalCase(ORIGINAL, "demo-grid", "accepted"))
    assert (merged.state, merged.duplicate_of) == (CANCELLED, ORIGINAL)


def test_the_same_checks_hold_for_every_step_that_names_an_original():
    """``cancel``, ``reject`` and ``resolve`` with outcome duplicate name the original too."""
    for case, action in ((a_case("reported"), "reject"), (a_case("accepted"), "cancel"),
                         (a_case("in_progress"), "resolve")):
        command = Command(action, outcome="duplicate", duplicate_of=ORIGINAL)
        with pytest.raises(IllegalAction, match="not a case dispatch holds"):
            decide(case, command, NOW, context(OriginalCase(ORIGINAL, "nyc", "dispatched")))
        with pytest.raises(IllegalAction, match="not a case dispatch holds"):
            decide(case, command, NOW, context(None))
        new, _ = decide(case, command, NOW, context(OPEN_ORIGINAL))
        assert new.outcome == "duplicate" and new.duplicate_of == ORIGINAL


# --------------------------------------------------------------------------- what it records

def test_the_event_carries_the_outcome_and_the_original():
    _, steps = merge(a_case("filed"), OPEN_ORIGINAL)
    (event,) = transition_events(uuid.UUID(CASE_ID), "demo-grid", GRID, steps, first_seq=4)
    assert (event.action, event.to_state, event.outcome, event.duplicate_of, event.sequence) == (
        "merge_duplicate", "cancelled", "duplicate", uuid.UUID(ORIGINAL), 4)


def test_the_case_book_reads_the_original_from_its_row():
    """store.py ``original_of``: a live case from its lifecycle, a history record from its status."""
    merged, _ = merge(a_case("filed"), OPEN_ORIGINAL)
    row = {"case_id": uuid.UUID(CASE_ID), "tenant": "demo-grid", "status": "cancelled",
           "lifecycle": case_to_json(merged)}
    assert original_of(row) == OriginalCase(CASE_ID, "demo-grid", "cancelled", duplicate_of=ORIGINAL)
    history = {"case_id": uuid.UUID(EARLIER), "tenant": "nyc", "status": "closed", "lifecycle": None}
    assert original_of(history) == OriginalCase(EARLIER, "nyc", "closed")
