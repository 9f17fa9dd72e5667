"""services.dispatch.domain.lifecycle: example paths through the case state machine (docs/domain.md §3(c)),
including docs/seeds.md block C (a sewer case beyond the grid) and block E (mediation ladder)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from services.dispatch.domain.lifecycle import (
    ACTIONS,
    CHECKING,
    CLOSED,
    DISPATCHED,
    FILED,
    IN_PROGRESS,
    MEDIATING,
    POLICE,
    REPORTED,
    SHELVED,
    STATE_LABELS,
    STATES,
    STREET_OFFICE,
    Case,
    Command,
    Context,
    IllegalAction,
    allowed_actions,
    decide,
    place_level,
    supervise,
    unit_at,
)
from services.dispatch.domain.routing import RouteDecision, route
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import RoutingConfig, RoutingRule, load_tenant
from shared.domain.workcalendar import (
    DEFAULT_TZ,
    Limit,
    add_working_days,
    dispose_deadline,
    higher_supervision_at,
    working_time_between,
)

SH = DEFAULT_TZ
STREET = "990102001"          # 示范街道 (demo-grid tenant, fictional codes)
COMMUNITY = "990102001001"    # 幸福社区
MARKET_GRID = "990102001001003"  # 幸福社区第3网格(农贸市场)
GRID = "990102001001001"
FIVE_WD = Limit.of_working_days(5)
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=SH)  # Monday
TO_URBAN = RouteDecision("department", "urban_management", "taxonomy:100102")
TO_HOUSING = RouteDecision("department", "housing", "taxonomy:100401")


def ctx(route: RouteDecision | None = TO_URBAN, **kw) -> Context:
    return Context(route=route, limit=kw.pop("limit", FIVE_WD), **kw)


def run(case: Case, steps, context: Context | None = None, start: datetime = T0,
        every: timedelta = timedelta(hours=1)):
    """Apply ``steps`` (Command or action name) one per ``every``; return (case, transitions, now)."""
    now, transitions = start, []
    for step in steps:
        command = step if isinstance(step, Command) else Command(step)
        case, done = decide(case, command, now, context if context is not None else ctx())
        transitions.extend(done)
        now += every
    return case, transitions, now - every


def dispatched_case(route: RouteDecision = TO_URBAN, place: str = GRID) -> Case:
    case, _, _ = run(Case.new(place), ["accept", "file", "dispatch"], ctx(route))
    return case


@pytest.fixture(scope="module")
def tenant():
    return load_tenant("demo-grid")


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


# --------------------------------------------------------------------------- basics


def test_every_state_has_a_zh_label_and_every_action_is_known():
    assert set(STATE_LABELS) == set(STATES)
    assert "self_handle" in ACTIONS and "begin_check" in ACTIONS and "supervise" in ACTIONS


def test_happy_path():
    case, ts, _ = run(Case.new(GRID), ["accept", "file", "dispatch", "acknowledge", "start",
                                       "resolve", "verify_pass"])
    assert case.state == CLOSED
    assert [(t.action, t.from_state, t.to_state) for t in ts] == [
        ("accept", "reported", "accepted"),
        ("file", "accepted", "filed"),
        ("dispatch", "filed", "dispatched"),
        ("acknowledge", "dispatched", "acknowledged"),
        ("start", "acknowledged", "in_progress"),
        ("resolve", "in_progress", "resolved"),
        ("begin_check", "resolved", "checking"),
        ("verify_pass", "checking", "closed"),
    ]
    dispatched_at = T0 + timedelta(hours=2)
    assert case.deadline == add_working_days(dispatched_at, 5) == datetime(2025, 3, 10, 11, tzinfo=SH)
    assert ts[2].rule == "taxonomy:100102" and ts[2].department == "urban_management"
    assert allowed_actions(case) == ("callback", "reopen")  # the closed loop (issue 12)


def test_terminal_states_accept_nothing():
    rejected, _, _ = run(Case.new(GRID), ["reject"])
    for action in ACTIONS:
        with pytest.raises(IllegalAction) as info:
            decide(rejected, Command(action), T0, ctx())
        assert info.value.allowed_actions == () and info.value.current_state == "rejected"


def test_illegal_action_names_state_and_allowed_actions():
    case = Case.new(GRID)
    with pytest.raises(IllegalAction) as info:
        decide(case, Command("resolve"), T0)
    assert info.value.current_state == REPORTED
    assert info.value.allowed_actions == ("accept", "reject", "cancel", "merge_duplicate")
    with pytest.raises(IllegalAction):
        decide(case, Command("fly"), T0)
    with pytest.raises(ValueError):
        decide(case, Command("accept"), datetime(2025, 3, 3, 9))  # naive now


def test_dispatch_needs_the_routers_decision():
    case, _, _ = run(Case.new(GRID), ["accept", "file"])
    with pytest.raises(IllegalAction, match="router"):
        decide(case, Command("dispatch"), T0, Context(limit=FIVE_WD))


def test_triage_dispatch_keeps_the_case_filed_without_a_clock():
    triage = RouteDecision("triage", "triage", "triage:unknown-category")
    case = dispatched_case(triage)
    assert case.state == FILED and case.department == "triage" and case.deadline is None
    case, _ = decide(case, Command("dispatch", actor_role="dispatcher"), T0, ctx(TO_HOUSING))
    assert case.state == DISPATCHED and case.department == "housing" and case.deadline is not None


# --------------------------------------------------------------------------- self_handle


def test_self_handle_needs_evidence():
    accepted, _, _ = run(Case.new(GRID), ["accept"])
    with pytest.raises(IllegalAction, match="evidence"):
        decide(accepted, Command("self_handle", actor_role="grid_worker"), T0)
    with pytest.raises(IllegalAction, match="evidence"):
        decide(accepted, Command("self_handle", evidence=["  "]), T0)
    case, ts = decide(accepted, Command("self_handle", actor_role="grid_worker",
                                        evidence=["photo:after.jpg"]), T0)
    assert case.state == CLOSED
    assert ts[0].evidence == ("photo:after.jpg",) and "能处则处" in ts[0].reason


# --------------------------------------------------------------------------- return, rework


def test_wrong_dispatch_return_is_counted_and_redispatched():
    case = dispatched_case(TO_HOUSING)
    deadline = case.deadline
    case, ts = decide(case, Command("return", actor_role="department", target_department="water"),
                      T0 + timedelta(hours=5), ctx())
    assert case.state == DISPATCHED and case.department == "water" and case.return_count == 1
    assert [(t.action, t.from_state, t.to_state) for t in ts] == [
        ("return", "dispatched", "filed"), ("dispatch", "filed", "dispatched")]
    assert case.deadline == deadline  # one clock per case


def test_return_without_target_goes_to_triage_and_only_before_acknowledgement():
    case = dispatched_case(TO_HOUSING)
    returned, ts = decide(case, Command("return"), T0, ctx())
    assert returned.state == FILED and returned.department == "triage" and len(ts) == 1
    with pytest.raises(IllegalAction):
        decide(case, Command("return", target_department="housing"), T0, ctx())
    acknowledged, _ = decide(case, Command("acknowledge"), T0, ctx())
    with pytest.raises(IllegalAction):
        decide(acknowledged, Command("return", target_department="water"), T0, ctx())


def test_failed_check_is_rework_by_the_same_department():
    case, _, now = run(dispatched_case(), ["acknowledge", "start", "resolve"])
    assert case.state == CHECKING
    case, ts = decide(case, Command("verify_fail", actor_role="supervisor"), now, ctx())
    assert case.state == IN_PROGRESS and case.rework_count == 1
    assert case.department == "urban_management" and ts[0].rework_count == 1
    case, _, _ = run(case, ["resolve", "verify_pass"], start=now)
    assert case.state == CLOSED and case.rework_count == 1


# --------------------------------------------------------------------------- transfer


def test_third_transfer_escalates_to_the_street_office(tenant):
    context = ctx(tenant=tenant)
    case = dispatched_case(TO_HOUSING, place=MARKET_GRID)
    case, t1 = decide(case, Command("transfer", target_department="water"), T0, context)
    case, t2 = decide(case, Command("transfer", target_department="urban_management"), T0, context)
    assert (case.department, case.transfer_count, case.state) == ("urban_management", 2, DISPATCHED)
    case, t3 = decide(case, Command("transfer", target_department="ecology_environment"), T0, context)
    assert case.transfer_count == 3
    assert case.department == STREET_OFFICE and case.target_kind == "department"
    assert case.unit == STREET and case.level == "street"
    assert "转办≥3次提级" in t3[0].reason
    # the street office, now the lead, assigns the case on
    case, t4 = decide(case, Command("transfer", target_department="urban_management"), T0, context)
    assert case.department == "urban_management" and case.transfer_count == 4


def test_transfer_needs_another_department():
    case = dispatched_case()
    for target in (None, "urban_management", "triage"):
        with pytest.raises(IllegalAction):
            decide(case, Command("transfer", target_department=target), T0, ctx())


# --------------------------------------------------------------------------- extension


def test_one_extension_only_and_before_the_deadline():
    case = dispatched_case()
    deadline = case.deadline
    before = deadline - timedelta(hours=1)
    asked, _ = decide(case, Command("request_extension", extension_days=3), before, ctx())
    assert asked.extension_requested and asked.deadline == deadline
    with pytest.raises(IllegalAction, match="once"):
        decide(asked, Command("request_extension"), before, ctx())
    granted, ts = decide(asked, Command("approve_extension", extension_days=3), deadline, ctx())
    assert granted.extension_used and granted.deadline == add_working_days(deadline, 3)
    assert ts[0].deadline == granted.deadline
    with pytest.raises(IllegalAction):
        decide(granted, Command("approve_extension", extension_days=3), deadline, ctx())
    with pytest.raises(IllegalAction):
        decide(granted, Command("request_extension"), before, ctx())
    # not after the deadline
    with pytest.raises(IllegalAction, match="before the deadline"):
        decide(case, Command("request_extension"), deadline, ctx())
    assert "request_extension" not in allowed_actions(case, deadline)
    assert "request_extension" in allowed_actions(case, before)
    with pytest.raises(IllegalAction, match="extension_days"):
        decide(asked, Command("approve_extension"), before, ctx())


# --------------------------------------------------------------------------- shelving


def test_shelving_pauses_the_clock():
    case, _, _ = run(dispatched_case(), ["acknowledge", "start"])
    deadline = case.deadline  # Mon 2025-03-10 11:00
    shelved_at, resumed_at = datetime(2025, 3, 4, 12, tzinfo=SH), datetime(2025, 3, 10, 12, tzinfo=SH)
    shelved, _ = decide(case, Command("shelve", actor_role="shift_lead"), shelved_at, ctx())
    assert shelved.state == SHELVED and shelved.paused_since == shelved_at
    assert allowed_actions(shelved) == ("start", "cancel", "merge_duplicate")
    resumed, ts = decide(shelved, Command("start"), resumed_at, ctx())
    assert resumed.state == IN_PROGRESS and resumed.paused_since is None
    assert working_time_between(deadline, resumed.deadline) == timedelta(days=4)
    assert resumed.deadline == datetime(2025, 3, 14, 11, tzinfo=SH)
    assert ts[0].from_state == SHELVED


# --------------------------------------------------------------------------- supervision


def test_supervision_at_red_and_higher_supervision_five_working_days_later():
    case = dispatched_case()
    red = case.deadline
    with pytest.raises(IllegalAction):
        supervise(case, 1, red - timedelta(minutes=1))
    one, ts = supervise(case, 1, red)
    assert one.supervision_level == 1 and one.state == case.state
    assert one.department == case.department and ts[0].from_state == ts[0].to_state == DISPATCHED
    due = higher_supervision_at(red)
    with pytest.raises(IllegalAction):
        supervise(one, 2, due - timedelta(minutes=1))
    two, ts = supervise(one, 2, due)
    assert two.supervision_level == 2 and "提级督办" in ts[0].reason
    with pytest.raises(IllegalAction):
        supervise(two, 2, due)
    # a scheduler that missed level 1 records both levels
    jumped, ts = supervise(case, 2, due)
    assert [t.supervision_level for t in ts] == [1, 2]


# --------------------------------------------------------------------------- seed block C


def test_seed_c_sewer_case_beyond_the_grid(tenant, taxonomy):
    """docs/seeds.md block C: a sewer blockage (100401) at the grid-5 market crossed the boundary
    with a neighbouring village; the grid worker could not fix it (能处则处,不能办理则逐级上报),
    it went up to the community and the street, and urban management (城管) repaired it."""
    rule = RoutingRule(name="sewer-boundary-to-urban-management", department="urban_management",
                       category="100401", place_prefix=STREET)
    street_tenant = dataclasses.replace(tenant, routing=RoutingConfig(
        rules=(rule,) + tenant.routing.rules, use_taxonomy_defaults=True))
    decision = route("100401", MARKET_GRID, street_tenant, taxonomy, at=T0)
    assert decision == RouteDecision("department", "urban_management",
                                     "sewer-boundary-to-urban-management")
    context = Context(route=decision, limit=FIVE_WD, tenant=street_tenant)
    case = Case.new(MARKET_GRID, tenant=street_tenant)
    assert case.level == "grid"
    steps = [
        Command("accept", actor_role="grid_worker"),
        Command("escalate", actor_role="grid_worker", note="跨网格,与邻村交界"),
        Command("escalate", actor_role="community"),
        Command("file", actor_role="street"),
        Command("dispatch", actor_role="system"),
        Command("acknowledge", actor_role="department"),
        Command("start", actor_role="department"),
        Command("resolve", actor_role="department", evidence=["photo:sewer-fixed.jpg"]),
        Command("verify_pass", actor_role="grid_worker"),
    ]
    case, ts, _ = run(case, steps, context)
    assert case.state == CLOSED and case.department == "urban_management"
    assert [(t.action, t.to_state, t.level, t.unit) for t in ts[:4]] == [
        ("accept", "accepted", "grid", None),
        ("escalate", "accepted", "community", COMMUNITY),
        ("escalate", "accepted", "street", STREET),
        ("file", "filed", "street", STREET),
    ]
    assert [t.action for t in ts[4:]] == ["dispatch", "acknowledge", "start", "resolve",
                                          "begin_check", "verify_pass"]
    assert ts[4].department == "urban_management" and ts[4].rule == decision.rule
    assert "self_handle" not in [t.action for t in ts]


def test_escalation_stops_at_the_district():
    case = dataclasses.replace(Case.new(GRID), state="accepted", level="district")
    assert "escalate" not in allowed_actions(case)
    with pytest.raises(IllegalAction, match="top"):
        decide(case, Command("escalate"), T0)


def test_place_levels_and_units_without_a_tenant():
    assert place_level(GRID) == "grid" and place_level(COMMUNITY) == "community"
    assert place_level(STREET) == "street" and place_level("990102") == "district"
    assert unit_at(GRID, "street") == STREET and unit_at(GRID, "community") == COMMUNITY
    assert unit_at("NYC-1", "street") is None


# --------------------------------------------------------------------------- seed block E, mediation


def test_family_dispute_fails_at_the_community_and_is_settled_by_the_street(tenant, taxonomy):
    """docs/seeds.md block E / D: a family dispute (300101) brought to the community mediation
    committee fails there and is settled by the street (town) mediation centre."""
    decision = route("300101", COMMUNITY, tenant, taxonomy, at=T0)
    assert (decision.target_kind, decision.mediation_level) == ("mediation", "community")
    context = Context(route=decision, limit=FIVE_WD, tenant=tenant)
    case, ts, _ = run(Case.new(COMMUNITY, tenant=tenant), [
        Command("accept"), Command("file"), Command("dispatch"),
        Command("mediation_failed", actor_role="mediator", note="双方未达成一致"),
        Command("mediation_agreement", actor_role="mediator", evidence=["调解协议书"]),
    ], context)
    assert case.state == CLOSED and case.department == "mediation"
    assert [(t.action, t.from_state, t.to_state, t.mediation_level) for t in ts[2:]] == [
        ("dispatch", "filed", "mediating", "community"),
        ("mediation_failed", "mediating", "mediating", "street"),
        ("mediation_agreement", "mediating", "closed", "street"),
    ]
    assert ts[3].unit == STREET and "街道调解中心" in ts[4].reason


def test_violent_dispute_forks_to_the_police(tenant, taxonomy):
    decision = route("300101", GRID, tenant, taxonomy, at=T0)
    assert decision.target_kind == "mediation"
    case, ts, _ = run(Case.new(GRID, flags={"violence"}), ["accept", "file", "dispatch"],
                      Context(route=decision, limit=FIVE_WD))
    assert case.state == DISPATCHED and case.department == POLICE
    assert case.target_kind == "department" and case.mediation_level is None
    assert "派出所" in ts[-1].reason


def test_mediation_climbs_the_ladder_and_leaves_it_to_the_police_after_linked():
    grid_mediation = RouteDecision("mediation", "mediation", "taxonomy:300102", "grid")
    case = dispatched_case(grid_mediation)
    assert case.state == MEDIATING and case.mediation_level == "grid"
    levels = []
    for _ in range(3):
        case, _ = decide(case, Command("mediation_failed"), T0, ctx())
        levels.append(case.mediation_level)
    assert levels == ["community", "street", "linked"] and case.state == MEDIATING
    case, ts = decide(case, Command("mediation_failed"), T0, ctx())
    assert case.state == DISPATCHED and case.department == POLICE and case.mediation_level is None
    assert ts[0].from_state == MEDIATING


# --------------------------------------------------------------------------- cancel


def test_cancel_from_any_open_state():
    for steps in ([], ["accept"], ["accept", "file"]):
        case, _, _ = run(Case.new(GRID), steps + ["cancel"])
        assert case.state == "cancelled"
    shelved, _ = decide(dispatched_case(), Command("shelve"), T0, ctx())
    cancelled, _ = decide(shelved, Command("cancel"), T0, ctx())
    assert cancelled.state == "cancelled" and allowed_actions(cancelled) == ()


def test_case_validation():
    with pytest.raises(ValueError):
        Case(state="draft")
    with pytest.raises(ValueError):
        Case(state=MEDIATING)
    with pytest.raises(ValueError):
        Case(state=SHELVED)
    with pytest.raises(ValueError):
        Case(deadline=datetime(2025, 3, 3))
    with pytest.raises(ValueError):
        Case(supervision_level=3)
    assert dispose_deadline(T0, FIVE_WD) == add_working_days(T0, 5)
