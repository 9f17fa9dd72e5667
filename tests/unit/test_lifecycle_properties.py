"""Property tests of services.dispatch.domain.lifecycle: random action sequences from any start state.

(a) every decide raises IllegalAction (case unchanged) or returns a case in a known state whose
    first transition starts at the old state (and the transitions chain to the new state);
(b) a case is always in exactly one state; rejected and cancelled accept no action, closed only
    the closed loop's callback and reopen;
(c) shelving pauses the clock: after shelve + resume the deadline is later by exactly the paused
    working time;
(d) counters (transfers, returns, rework, reopens, recategorizations) never decrease; supervision
    level and extension flags neither, except where a new clock starts (reopen, a correction of
    the category that recounts the deadline);
(e) a step that ends a case records an outcome; a callback records a rating and keeps the case
    closed; a reopen never goes past the bound;
(f) a duplicate names a counted case dispatch holds, of the case's own tenant, not itself;
(g) a case with merged duplicates never ends rejected or cancelled (docs/domain.md §3(c)5).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from itertools import pairwise

from hypothesis import event, given, settings
from hypothesis import strategies as st

from services.dispatch.domain.lifecycle import (
    ACTIONS,
    AFTER_CLOSURE_ACTIONS,
    CLOSED,
    IN_PROGRESS,
    MEDIATING,
    SHELVED,
    STATES,
    TERMINAL_STATES,
    Case,
    Command,
    Context,
    IllegalAction,
    OriginalCase,
    allowed_actions,
    decide,
    max_reopens,
)
from services.dispatch.domain.routing import RouteDecision
from shared.contract.actions import MEDIATION_LEVELS, OUTCOMES, SATISFACTIONS
from shared.domain.workcalendar import (
    DEFAULT_TZ,
    Limit,
    dispose_deadline,
    working_time_between,
)
from tests.hypothesis_profiles import examples

SH = DEFAULT_TZ
PLACES = ("990102001001001", "990102001001", "990102001", "NYC-BK-1")
DEPARTMENTS = ("urban_management", "housing", "water", "police", "ecology_environment",
               "mediation", "triage", "street_office")
ROUTES = (
    RouteDecision("department", "urban_management", "taxonomy:100102"),
    RouteDecision("department", "housing", "taxonomy:100401"),
    RouteDecision("mediation", "mediation", "taxonomy:300101", "grid"),
    RouteDecision("mediation", "mediation", "taxonomy:300102", "community"),
    RouteDecision("triage", "triage", "triage:unknown-category"),
)
LIMITS = (Limit.of_working_days(1), Limit.of_working_days(5), Limit.of_working_days(15),
          Limit.of_hours(2), Limit.of_hours(24))
CATEGORIES = ("100102", "100401", "300101", "300102")
CASE_IDS = ("6f1c0d5e-0000-4000-8000-000000000001", "6f1c0d5e-0000-4000-8000-000000000002")

times = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 3, 31),
                     timezones=st.just(SH))
limits = st.sampled_from(LIMITS)


@st.composite
def cases(draw, states: tuple[str, ...] = STATES) -> tuple[Case, datetime]:
    """A valid case in any of ``states`` (default: any state), and a 'now' not before its pause."""
    now = draw(times)
    state = draw(st.sampled_from(states))
    limit = draw(st.none() | limits)
    deadline = None
    if limit is not None and draw(st.booleans()):
        deadline = dispose_deadline(now - timedelta(minutes=draw(st.integers(0, 20 * 24 * 60))), limit)
    requested = draw(st.booleans())
    closed = state == CLOSED
    return Case(
        state=state,
        department=draw(st.none() | st.sampled_from(DEPARTMENTS)),
        target_kind=draw(st.none() | st.sampled_from(("department", "mediation", "triage"))),
        mediation_level=draw(st.sampled_from(MEDIATION_LEVELS)) if state == MEDIATING
        else draw(st.none() | st.sampled_from(MEDIATION_LEVELS)),
        deadline=deadline,
        limit=limit,
        paused_since=now - timedelta(minutes=draw(st.integers(0, 5000))) if state == SHELVED else None,
        extension_requested=requested,
        extension_used=requested and draw(st.booleans()),
        transfer_count=draw(st.integers(0, 4)),
        return_count=draw(st.integers(0, 3)),
        rework_count=draw(st.integers(0, 3)),
        supervision_level=draw(st.integers(0, 2)),
        flags=draw(st.frozensets(st.sampled_from(("violence", "minor")))),
        place_code=draw(st.sampled_from(PLACES)),
        level=draw(st.sampled_from(("grid", "community", "street", "district"))),
        category_code=draw(st.none() | st.sampled_from(CATEGORIES)),
        dispatched_at=now - timedelta(minutes=draw(st.integers(0, 20 * 24 * 60)))
        if deadline is not None and draw(st.booleans()) else None,
        outcome=draw(st.none() | st.sampled_from(OUTCOMES)) if closed else None,
        satisfaction=draw(st.none() | st.sampled_from(SATISFACTIONS)) if closed else None,
        reopen_count=draw(st.integers(0, 4)),
        recategorize_count=draw(st.integers(0, 2)),
    ), now


commands = st.builds(
    Command,
    action=st.sampled_from(ACTIONS + ("bogus",)),
    actor_role=st.sampled_from(("system", "grid_worker", "department", "shift_lead")),
    evidence=st.lists(st.sampled_from(("photo:1.jpg", "", "  ")), max_size=2).map(tuple),
    target_department=st.none() | st.sampled_from(DEPARTMENTS),
    extension_days=st.none() | st.sampled_from((0, 1, 2.5, 5)),
    level=st.none() | st.sampled_from((1, 2, 3)),
    outcome=st.none() | st.sampled_from(OUTCOMES),
    duplicate_of=st.none() | st.sampled_from(CASE_IDS),
    satisfaction=st.none() | st.sampled_from(SATISFACTIONS),
    resident_resolved=st.none() | st.booleans(),
    category_code=st.none() | st.sampled_from(CATEGORIES),
    to_place_code=st.none() | st.sampled_from(PLACES),
    note=st.sampled_from(("", "原因 reason")),
)
#: What dispatch may hold of the case a duplicate names (any tenant, state, itself a duplicate or not).
originals = st.builds(OriginalCase, case_id=st.sampled_from(CASE_IDS), tenant=st.sampled_from(("demo-grid", "other")),
                      state=st.sampled_from(STATES), duplicate_of=st.none() | st.sampled_from(CASE_IDS))
contexts = st.builds(Context, route=st.none() | st.sampled_from(ROUTES), limit=st.none() | limits,
                     case_id=st.none() | st.sampled_from(CASE_IDS), case_tenant=st.none() | st.just("demo-grid"),
                     original=st.none() | originals,
                     merged_duplicates=st.sampled_from(((), (CASE_IDS[0],))))
steps = st.lists(st.tuples(commands, contexts, st.integers(0, 3 * 24 * 60)), max_size=30)

COUNTERS = ("transfer_count", "return_count", "rework_count", "reopen_count", "recategorize_count")
#: Reset where a new clock starts (reopen; a correction that recounts the deadline).
CLOCK_FLAGS = ("supervision_level", "extension_requested", "extension_used")
#: Steps that end a case (and so record an outcome).
ENDED = frozenset({"closed", "rejected", "cancelled"})


def _check_step(before: Case, command: Command, now: datetime, context: Context) -> Case:
    """Apply one command and check (a)-(d); return the case after it (unchanged if illegal)."""
    assert isinstance(before.state, str) and before.state in STATES  # (b) exactly one state
    try:
        new, transitions = decide(before, command, now, context)
    except IllegalAction as exc:
        # (a) nothing changed (Case is frozen); the error names the state and what is allowed
        assert exc.current_state == before.state and exc.reason
        assert exc.allowed_actions == allowed_actions(before, now, context)
        if before.state in TERMINAL_STATES:
            assert set(exc.allowed_actions) <= set(AFTER_CLOSURE_ACTIONS)
            if before.state != CLOSED:
                assert exc.allowed_actions == ()
        return before
    # (b) rejected and cancelled accept no action, closed only the closed loop's
    assert before.state not in TERMINAL_STATES or (
        before.state == CLOSED and command.action in AFTER_CLOSURE_ACTIONS)
    assert command.action in allowed_actions(before, now, context)
    # (a) known state, transitions chain from the old state to the new one
    assert new.state in STATES and transitions
    assert transitions[0].from_state == before.state
    for prev, nxt in pairwise(transitions):
        assert nxt.from_state == prev.to_state
    assert transitions[-1].to_state == new.state
    assert transitions[0].action == command.action
    assert all(t.at == now for t in transitions)
    # (d) counters never decrease; the clock's flags only where a new clock starts
    for name in COUNTERS:
        assert getattr(new, name) >= getattr(before, name), name
    # a correction recounts the deadline when the limit changes on a case that has one (docs/domain.md
    # §3(d)3) -- even when the recounted deadline happens to fall on the old one
    # a correction restarts the clock's flags only when it moves the deadline (24 h -> 1 WD can
    # recount to the same instant: then supervision and extension stand)
    new_clock = command.action == "reopen" or (
        new.recategorize_count > before.recategorize_count and new.deadline != before.deadline)
    if not new_clock:
        for name in CLOCK_FLAGS:
            assert getattr(new, name) >= getattr(before, name), name
    # (e) ending steps record an outcome; callbacks a rating; reopens stay within the bound
    for t in transitions:
        if t.to_state in ENDED and t.from_state not in ENDED:
            assert t.outcome in OUTCOMES, t.action
            assert (t.outcome == "duplicate") == (t.duplicate_of is not None)
        # (f) a duplicate names a counted case dispatch holds, of the case's own tenant, not itself,
        # checked on the step whose command names it; a later step (verify_pass after a resolve
        # with outcome duplicate) carries the one recorded then, without the original in its context
        if t.duplicate_of is not None and command.duplicate_of is None:
            assert t.duplicate_of == before.duplicate_of, command.action
        elif t.duplicate_of is not None:
            original = context.original
            assert original is not None and original.case_id == t.duplicate_of != context.case_id
            assert context.case_tenant in (None, original.tenant)
            assert original.state not in ("rejected", "cancelled", "reported")  # a counted case
    # (g) a case with merged duplicates never leaves the figures (docs/domain.md §3(c)5): it does not
    # end rejected or cancelled
    if context.merged_duplicates:
        assert new.state not in ("rejected", "cancelled"), command.action
    if command.action == "callback":
        assert new.state == CLOSED and transitions[0].satisfaction == new.satisfaction in SATISFACTIONS
        assert new.satisfaction != "unreachable" or new.resident_resolved is None
    if command.action == "reopen":
        assert new.reopen_count == before.reopen_count + 1 <= max_reopens(context)
        assert new.outcome is None and new.satisfaction is None and new.supervision_level == 0
    # (c) resuming from shelving shifts the deadline by exactly the paused time
    if before.state == SHELVED and command.action == "start" and before.deadline is not None:
        paused_from = before.paused_since
        if before.limit is not None and before.limit.is_working_days:
            assert (working_time_between(before.deadline, new.deadline)
                    == working_time_between(paused_from, now))
        else:
            assert new.deadline - before.deadline == now - paused_from
    if new.state == SHELVED:
        assert new.paused_since == now
    return new


@settings(max_examples=examples(300), deadline=None)
@given(start=cases(), sequence=steps)
def test_property_random_sequences_keep_the_invariants(start, sequence):
    case, now = start
    for command, context, minutes in sequence:
        now = now + timedelta(minutes=minutes)
        case = _check_step(case, command, now, context)


@settings(max_examples=examples(300), deadline=None)
@given(start=cases(), data=st.data())
def test_property_walks_through_allowed_actions_keep_the_invariants(start, data):
    """Like the random sequences, but most steps pick an action that is allowed now, so walks
    go deep (dispatch, transfers, extensions, shelving, mediation rungs, supervision)."""
    case, now = start
    if data.draw(st.booleans(), label="fresh"):
        case = Case.new(data.draw(st.sampled_from(PLACES), label="place"),
                        flags=data.draw(st.frozensets(st.just("violence")), label="flags"))
    seen: list[str] = []
    for _ in range(data.draw(st.integers(5, 30), label="length")):
        now = now + timedelta(minutes=data.draw(st.integers(0, 3 * 24 * 60), label="wait"))
        allowed = allowed_actions(case, now)
        onward = tuple(a for a in allowed if a not in ("cancel", "reject", "merge_duplicate"))  # keep walking
        pick = data.draw(st.integers(0, 19), label="pick")
        if onward and pick < 17:
            action = data.draw(st.sampled_from(onward), label="action")
        elif allowed and pick < 19:
            action = data.draw(st.sampled_from(allowed), label="action")
        else:
            action = data.draw(st.sampled_from(ACTIONS), label="action")
        command = data.draw(commands, label="command")
        if data.draw(st.integers(0, 9), label="fit") < 8:  # mostly well-formed parameters
            command = Command(
                action, command.actor_role, "原因 reason",
                evidence=("photo:1.jpg",) if action == "self_handle" else command.evidence,
                target_department=data.draw(st.sampled_from(DEPARTMENTS[:5]), label="target")
                if action in ("transfer", "return") else command.target_department,
                extension_days=data.draw(st.sampled_from((1, 2.5, 5)), label="days")
                if action == "approve_extension" else command.extension_days,
                level=None,
                outcome=None if command.outcome == "duplicate" else command.outcome,
                duplicate_of=CASE_IDS[1] if action == "merge_duplicate" else None,
                satisfaction=data.draw(st.sampled_from(SATISFACTIONS), label="rating")
                if action == "callback" else None,
                resident_resolved=command.resident_resolved
                if command.satisfaction != "unreachable" else None,
                category_code=data.draw(st.sampled_from(CATEGORIES), label="category")
                if action == "recategorize" else None)
        else:
            command = dataclasses.replace(command, action=action)
        context = data.draw(contexts, label="context")
        before = case
        case = _check_step(case, command, now, context)
        if case is not before:
            seen.append(action)
    event(f"walk length {len(seen) // 5 * 5}+")
    for action in set(seen):
        event(f"did {action}")


@settings(max_examples=examples(200), deadline=None)
@given(start=cases(tuple(s for s in STATES if s in TERMINAL_STATES)), command=commands, context=contexts)
def test_property_ended_cases_accept_only_the_closed_loop(start, command, context):
    """Rejected and cancelled accept nothing; closed only callback and reopen, and stays closed
    unless reopened."""
    case, now = start
    assert case.state in TERMINAL_STATES
    allowed = allowed_actions(case, now, context)
    assert set(allowed) <= (set(AFTER_CLOSURE_ACTIONS) if case.state == CLOSED else set())
    try:
        new, _ = decide(case, command, now, context)
    except IllegalAction as exc:
        assert exc.allowed_actions == allowed
    else:
        assert case.state == CLOSED and command.action in allowed
        assert new.state == CLOSED or command.action == "reopen"


@settings(max_examples=examples(200), deadline=None)
@given(now=times, limit=limits, shelve_after=st.integers(0, 10 * 24 * 60),
       pause=st.integers(0, 20 * 24 * 60), route=st.sampled_from(ROUTES[:2]))
def test_property_shelve_and_resume_shift_the_deadline_by_the_paused_time(
        now, limit, shelve_after, pause, route):
    context = Context(route=route, limit=limit)
    case = Case.new("990102001001001")
    for action in ("accept", "file", "dispatch", "acknowledge", "start"):
        case, _ = decide(case, Command(action), now, context)
    assert case.state == IN_PROGRESS and case.deadline == dispose_deadline(now, limit)
    shelved_at = now + timedelta(minutes=shelve_after)
    resumed_at = shelved_at + timedelta(minutes=pause)
    shelved, _ = decide(case, Command("shelve"), shelved_at, context)
    resumed, ts = decide(shelved, Command("start"), resumed_at, context)
    assert resumed.state == IN_PROGRESS and ts[0].from_state == SHELVED
    if limit.is_working_days:
        assert (working_time_between(case.deadline, resumed.deadline)
                == working_time_between(shelved_at, resumed_at))
    else:
        assert resumed.deadline - case.deadline == resumed_at - shelved_at
    assert resumed.deadline >= case.deadline
