"""Property tests of services.dispatch.domain.lifecycle: random action sequences from any start state.

(a) every decide raises IllegalAction (case unchanged) or returns a case in a known state whose
    first transition starts at the old state (and the transitions chain to the new state);
(b) a case is always in exactly one state; terminal states accept no action;
(c) shelving pauses the clock: after shelve + resume the deadline is later by exactly the paused
    working time;
(d) counters (transfers, returns, rework, supervision level, extension flags) never decrease.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from services.dispatch.domain.lifecycle import (
    ACTIONS,
    IN_PROGRESS,
    MEDIATING,
    MEDIATION_LADDER,
    SHELVED,
    STATES,
    TERMINAL_STATES,
    Case,
    Command,
    Context,
    IllegalAction,
    allowed_actions,
    decide,
)
from services.dispatch.domain.routing import RouteDecision
from shared.domain.workcalendar import DEFAULT_TZ, Limit, dispose_deadline, working_time_between
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
    return Case(
        state=state,
        department=draw(st.none() | st.sampled_from(DEPARTMENTS)),
        target_kind=draw(st.none() | st.sampled_from(("department", "mediation", "triage"))),
        mediation_level=draw(st.sampled_from(MEDIATION_LADDER)) if state == MEDIATING
        else draw(st.none() | st.sampled_from(MEDIATION_LADDER)),
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
    ), now


commands = st.builds(
    Command,
    action=st.sampled_from(ACTIONS + ("bogus",)),
    actor_role=st.sampled_from(("system", "grid_worker", "department", "shift_lead")),
    evidence=st.lists(st.sampled_from(("photo:1.jpg", "", "  ")), max_size=2).map(tuple),
    target_department=st.none() | st.sampled_from(DEPARTMENTS),
    extension_days=st.none() | st.sampled_from((0, 1, 2.5, 5)),
    level=st.none() | st.sampled_from((1, 2, 3)),
)
contexts = st.builds(Context, route=st.none() | st.sampled_from(ROUTES), limit=st.none() | limits)
steps = st.lists(st.tuples(commands, contexts, st.integers(0, 3 * 24 * 60)), max_size=30)

COUNTERS = ("transfer_count", "return_count", "rework_count", "supervision_level",
            "extension_requested", "extension_used")


def _check_step(before: Case, command: Command, now: datetime, context: Context) -> Case:
    """Apply one command and check (a)-(d); return the case after it (unchanged if illegal)."""
    assert isinstance(before.state, str) and before.state in STATES  # (b) exactly one state
    try:
        new, transitions = decide(before, command, now, context)
    except IllegalAction as exc:
        # (a) nothing changed (Case is frozen); the error names the state and what is allowed
        assert exc.current_state == before.state and exc.reason
        assert exc.allowed_actions == allowed_actions(before, now)
        if before.state in TERMINAL_STATES:
            assert exc.allowed_actions == ()
        return before
    # (b) terminal states accept no action
    assert before.state not in TERMINAL_STATES
    assert command.action in allowed_actions(before, now)
    # (a) known state, transitions chain from the old state to the new one
    assert new.state in STATES and transitions
    assert transitions[0].from_state == before.state
    for prev, nxt in zip(transitions, transitions[1:]):
        assert nxt.from_state == prev.to_state
    assert transitions[-1].to_state == new.state
    assert transitions[0].action == command.action
    assert all(t.at == now for t in transitions)
    # (d) counters never decrease
    for name in COUNTERS:
        assert getattr(new, name) >= getattr(before, name), name
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
        onward = tuple(a for a in allowed if a not in ("cancel", "reject"))  # keep walking
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
                action, command.actor_role, command.note,
                evidence=("photo:1.jpg",) if action == "self_handle" else command.evidence,
                target_department=data.draw(st.sampled_from(DEPARTMENTS[:5]), label="target")
                if action in ("transfer", "return") else command.target_department,
                extension_days=data.draw(st.sampled_from((1, 2.5, 5)), label="days")
                if action == "approve_extension" else command.extension_days,
                level=None)
        else:
            command = Command(action, command.actor_role, command.note, command.evidence,
                              command.target_department, command.extension_days, command.level)
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
def test_property_terminal_states_accept_no_action(start, command, context):
    case, now = start
    assert case.state in TERMINAL_STATES
    assert allowed_actions(case, now) == ()
    try:
        decide(case, command, now, context)
    except IllegalAction as exc:
        assert exc.allowed_actions == ()
    else:  # pragma: no cover - would be a bug
        raise AssertionError(f"{case.state} accepted {command.action}")


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
