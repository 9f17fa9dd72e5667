"""services.dispatch.domain.lifecycle: the closed loop of issue 12 (docs/domain.md §3(c)5, §3(c)6,
§3(c)10, §3(d)3) — outcomes on every ending path, merge, callback (回访), reopen (重办) within the
tenant's bound, recategorization (改类) and a return that corrects the category, attribution —
and the events and stored JSON that carry them.

Expected values are worked out by hand beside each assertion. Calendar: 2025-03-03 is a Monday and
March 2025 has no public holiday in China, so every weekday is a working day; a working day (WD)
is a whole local day, so "+5 WD" from a weekday keeps the clock time (§3(d)3), and working hours
on a weekday are plain hours.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest

from services.dispatch.domain.events import action_rejected, transition_events
from services.dispatch.domain.lifecycle import (
    ACCEPTED,
    ACKNOWLEDGED,
    CANCELLED,
    CHECKING,
    CLOSED,
    DISPATCHED,
    FILED,
    IN_PROGRESS,
    MEDIATING,
    REJECTED,
    Case,
    Command,
    Context,
    IllegalAction,
    OriginalCase,
    allowed_actions,
    decide,
    supervise,
)
from services.dispatch.domain.reports import case_context
from services.dispatch.domain.routing import RouteDecision
from services.dispatch.store import case_from_json, case_to_json
from shared.contract.events import CaseActionRequested, CaseDispatched, CaseTransitioned
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import DEFAULT_MAX_REOPENS, TenantConfigError, load_tenant
from shared.domain.workcalendar import DEFAULT_TZ, Limit
from tests.unit.test_lifecycle import run  # one step per hour from a start, as there

SH = DEFAULT_TZ
GRID = "990102001001001"         # 幸福社区第1网格 (demo-grid, fictional codes)
HEPING_GRID = "990102001002001"  # 和平社区第1网格: 油烟扰民 goes to ecology_environment there
COMMUNITY = "990102001001"
FIVE_WD = Limit.of_working_days(5)
CASE_ID = "6f1c0d5e-0000-4000-8000-00000000000a"
ORIGINAL = "6f1c0d5e-0000-4000-8000-00000000000b"
SEWER, GARBAGE_NOISE, FUMES, NEIGHBOURS, FAMILY = "100401", "100102", "100110", "300102", "300101"
TO_URBAN = RouteDecision("department", "urban_management", "taxonomy:100102")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """2025-03-<day> <hour>:<minute> in Asia/Shanghai."""
    return datetime(2025, 3, day, hour, minute, tzinfo=SH)


T0 = at(3, 9)  # Monday 09:00


DEMO_GRID = load_tenant("demo-grid")
TAXONOMY = load_taxonomy()


@pytest.fixture(scope="module")
def routed():
    """The context the case book builds (services/dispatch/store.py ``action_context``): demo-grid's
    route and limit (urgency 一般) for a category and place, the taxonomy, the case id."""
    def build(category: str, place: str = GRID, when: datetime = T0) -> Context:
        ctx = case_context(DEMO_GRID, TAXONOMY, category, place, "一般", when)
        return dataclasses.replace(ctx, taxonomy=TAXONOMY, case_id=CASE_ID, case_tenant="demo-grid",
                                   original=OPEN_ORIGINAL)
    return build


#: The case ORIGINAL as dispatch holds it (store.py ``original_of``): an open case of demo-grid.
OPEN_ORIGINAL = OriginalCase(ORIGINAL, "demo-grid", DISPATCHED)
#: The context of a command that names ORIGINAL, with nothing else.
KNOWS_ORIGINAL = Context(case_id=CASE_ID, case_tenant="demo-grid", original=OPEN_ORIGINAL)


def dispatched(routed, category: str = SEWER, place: str = GRID) -> Case:
    """accept Mon 09:00, file 10:00, dispatch 11:00 by the tenant's route for ``category``."""
    ctx = routed(category, place)
    case, _, _ = run(Case.new(place, category_code=category, limit=ctx.limit), ["accept", "file", "dispatch"],
                     ctx, T0)
    return case


def closed_by_department(routed, category: str = SEWER) -> Case:
    """Dispatched Mon 03-03 11:00, acknowledged, started, resolved and checked on Tue 03-04."""
    case, _, _ = run(dispatched(routed, category), ["acknowledge", "start", "resolve", "verify_pass"],
                     routed(category), at(4, 9))
    return case


def steps_of(transitions) -> list[tuple[str, str, str]]:
    return [(t.action, t.from_state, t.to_state) for t in transitions]


# --------------------------------------------------------------------------- outcomes


def test_resolve_records_the_departments_outcome_and_the_check_closes_with_it(routed):
    case = dispatched(routed)
    case, ts, now = run(case, ["acknowledge", "start", "resolve"], routed(SEWER), at(4, 9))
    assert case.state == CHECKING and case.outcome == "resolved"  # resolve's default
    assert [(t.action, t.outcome) for t in ts] == [
        ("acknowledge", None), ("start", None), ("resolve", "resolved"), ("begin_check", None)]
    case, ts = decide(case, Command("verify_pass", actor_role="supervisor"), now, routed(SEWER))
    assert case.state == CLOSED and ts[0].outcome == "resolved"


def test_unresolved_needs_a_reason_and_duplicate_names_the_original(routed):
    case, _, now = run(dispatched(routed), ["acknowledge", "start"], routed(SEWER), at(4, 9))
    with pytest.raises(IllegalAction, match="reason") as info:
        decide(case, Command("resolve", outcome="unresolved"), now, routed(SEWER))
    assert info.value.current_state == IN_PROGRESS  # nothing changed
    unresolved, ts = decide(case, Command("resolve", outcome="unresolved", note="管道在私人院内,无法处理"),
                            now, routed(SEWER))
    assert unresolved.outcome == "unresolved" and ts[0].outcome == "unresolved"
    with pytest.raises(IllegalAction, match="duplicate_of"):
        decide(case, Command("resolve", outcome="duplicate"), now, routed(SEWER))
    with pytest.raises(IllegalAction, match="itself"):
        decide(case, Command("resolve", outcome="duplicate", duplicate_of=CASE_ID), now, routed(SEWER))
    duplicate, ts = decide(case, Command("resolve", outcome="duplicate", duplicate_of=ORIGINAL), now,
                           routed(SEWER))
    assert (duplicate.outcome, duplicate.duplicate_of) == ("duplicate", ORIGINAL)
    assert (ts[0].outcome, ts[0].duplicate_of) == ("duplicate", ORIGINAL)
    closed, ts = decide(duplicate, Command("verify_pass"), now, routed(SEWER))
    assert (ts[0].outcome, ts[0].duplicate_of) == ("duplicate", ORIGINAL)


def test_rework_clears_the_outcome_and_the_second_resolve_sets_it_again(routed):
    case, _, now = run(dispatched(routed), ["acknowledge", "start",
                                            Command("resolve", outcome="partly_resolved")],
                       routed(SEWER), at(4, 9))
    case, _ = decide(case, Command("verify_fail", actor_role="supervisor"), now, routed(SEWER))
    assert case.state == IN_PROGRESS and case.outcome is None and case.rework_count == 1
    case, _, _ = run(case, ["resolve", "verify_pass"], routed(SEWER), now)
    assert case.state == CLOSED and case.outcome == "resolved"


def test_a_case_resolved_before_outcomes_existed_closes_as_resolved(routed):
    checking = dataclasses.replace(dispatched(routed), state=CHECKING)  # stored without outcome
    case, ts = decide(checking, Command("verify_pass"), at(4, 9), routed(SEWER))
    assert case.outcome == "resolved" and ts[0].outcome == "resolved"


def test_self_handle_and_mediation_agreement_record_resolved(routed):
    accepted, _ = decide(Case.new(GRID), Command("accept"), T0)
    case, ts = decide(accepted, Command("self_handle", evidence=["photo:1.jpg"]), T0)
    assert case.state == CLOSED and ts[0].outcome == "resolved"
    case, ts = decide(accepted, Command("self_handle", evidence=["photo:1.jpg"], outcome="unfounded"), T0)
    assert ts[0].outcome == "unfounded"
    mediating = dispatched(routed, NEIGHBOURS)
    assert mediating.state == MEDIATING
    case, ts = decide(mediating, Command("mediation_agreement", actor_role="mediator"), at(4, 9))
    assert case.outcome == "resolved" and ts[0].outcome == "resolved"
    with pytest.raises(IllegalAction, match="mediation_failed"):
        decide(mediating, Command("mediation_agreement", outcome="unresolved", note="x"), at(4, 9))


@pytest.mark.parametrize("action", ["reject", "cancel"])
def test_reject_and_cancel_record_unfounded_unless_told_otherwise(action):
    reported = Case.new(GRID)
    case, ts = decide(reported, Command(action), T0)
    assert case.state in (REJECTED, CANCELLED) and ts[0].outcome == "unfounded"
    case, ts = decide(reported, Command(action, outcome="not_remit"), T0)
    assert ts[0].outcome == "not_remit"
    case, ts = decide(reported, Command(action, outcome="duplicate", duplicate_of=ORIGINAL), T0, KNOWS_ORIGINAL)
    assert (ts[0].outcome, ts[0].duplicate_of) == ("duplicate", ORIGINAL)
    with pytest.raises(IllegalAction, match="unfounded, not_remit, duplicate"):
        decide(reported, Command(action, outcome="resolved"), T0)


def test_merge_cancels_a_duplicate_wherever_cancel_is_allowed(routed):
    for case in (Case.new(GRID), dispatched(routed)):
        assert "merge_duplicate" in allowed_actions(case)
        merged, ts = decide(case, Command("merge_duplicate", duplicate_of=ORIGINAL), at(4, 9), routed(SEWER))
        assert merged.state == CANCELLED
        assert (ts[0].action, ts[0].to_state, ts[0].outcome, ts[0].duplicate_of) == (
            "merge_duplicate", CANCELLED, "duplicate", ORIGINAL)
    with pytest.raises(IllegalAction, match="duplicate_of"):
        decide(Case.new(GRID), Command("merge_duplicate"), T0, routed(SEWER))
    with pytest.raises(IllegalAction, match="itself"):
        decide(Case.new(GRID), Command("merge_duplicate", duplicate_of=CASE_ID), T0, routed(SEWER))
    with pytest.raises(IllegalAction, match="has ended"):
        decide(closed_by_department(routed), Command("merge_duplicate", duplicate_of=ORIGINAL), at(5, 9))


# --------------------------------------------------------------------------- callback


def test_callback_only_after_closure_with_a_rating(routed):
    with pytest.raises(IllegalAction, match="not an action of state dispatched"):
        decide(dispatched(routed), Command("callback", satisfaction="satisfied"), at(4, 9))
    closed = closed_by_department(routed)
    assert allowed_actions(closed) == ("callback", "reopen")
    with pytest.raises(IllegalAction, match="satisfaction"):
        decide(closed, Command("callback"), at(5, 9))
    with pytest.raises(IllegalAction, match="satisfaction"):
        decide(closed, Command("callback", satisfaction="thrilled"), at(5, 9))
    with pytest.raises(IllegalAction, match="unreachable"):
        decide(closed, Command("callback", satisfaction="unreachable", resident_resolved=True), at(5, 9))


def test_one_successful_callback_per_closure_unreachable_may_be_repeated(routed):
    case = closed_by_department(routed)
    case, ts = decide(case, Command("callback", satisfaction="unreachable"), at(5, 9))
    case, ts = decide(case, Command("callback", satisfaction="unreachable"), at(5, 15))
    assert case.state == CLOSED and "callback" in allowed_actions(case)
    case, ts = decide(case, Command("callback", satisfaction="basically_satisfied", resident_resolved=True),
                      at(6, 9))
    assert steps_of(ts) == [("callback", CLOSED, CLOSED)]
    assert (ts[0].satisfaction, ts[0].resident_resolved, ts[0].outcome) == ("basically_satisfied", True, None)
    assert (case.satisfaction, case.resident_resolved, case.outcome) == ("basically_satisfied", True, "resolved")
    assert allowed_actions(case) == ("reopen",)
    with pytest.raises(IllegalAction, match="already called back") as info:
        decide(case, Command("callback", satisfaction="satisfied"), at(6, 10))
    assert info.value.allowed_actions == ("reopen",)


# --------------------------------------------------------------------------- reopen


def test_reopen_returns_to_the_department_with_a_full_new_limit(routed):
    ctx = routed(SEWER)
    case = dispatched(routed)
    # dispatched Mon 03-03 11:00 to housing, 5 WD: deadline Mon 03-10 11:00 (Tue, Wed, Thu, Fri, Mon)
    assert (case.department, case.deadline, case.dispatched_at) == ("housing", at(10, 11), at(3, 11))
    case, _ = supervise(case, 1, at(10, 11), ctx)  # red at the deadline: 督办
    case, _, _ = run(case, ["acknowledge", "start", "resolve", "verify_pass"], ctx, at(11, 9))
    case, _ = decide(case, Command("callback", satisfaction="dissatisfied", resident_resolved=False), at(12, 9))
    with pytest.raises(IllegalAction, match="reason"):
        decide(case, Command("reopen"), at(13, 10), ctx)
    reopened, ts = decide(case, Command("reopen", actor_role="shift_lead", note="群众不满意,管道仍堵"),
                          at(13, 10), ctx)
    assert steps_of(ts) == [("reopen", CLOSED, DISPATCHED)]
    assert (reopened.department, reopened.target_kind) == ("housing", "department")
    # new deadline: Thu 03-13 10:00 + 5 WD (Fri 14, Mon 17, Tue 18, Wed 19, Thu 20) = Thu 03-20 10:00
    assert reopened.deadline == ts[0].deadline == at(20, 10)
    assert reopened.dispatched_at == at(13, 10)  # the new clock's start
    assert (reopened.supervision_level, reopened.extension_requested, reopened.extension_used) == (0, False, False)
    assert (reopened.outcome, reopened.satisfaction, reopened.resident_resolved) == (None, None, None)
    assert reopened.reopen_count == ts[0].reopen_count == 1
    assert (ts[0].from_department, ts[0].department) == ("housing", "housing")
    # closed again, the new closure gets its own callback
    again, _, now = run(reopened, ["acknowledge", "start", "resolve", "verify_pass"], ctx, at(14, 9))
    again, ts = decide(again, Command("callback", satisfaction="satisfied", resident_resolved=True), now)
    assert ts[0].satisfaction == "satisfied" and again.reopen_count == 1


def test_reopen_of_a_mediation_case_goes_back_to_the_same_rung(routed):
    ctx = routed(FAMILY, COMMUNITY)
    case = Case.new(COMMUNITY, category_code=FAMILY, limit=ctx.limit)
    case, ts, now = run(case, ["accept", "file", "dispatch", "mediation_failed", "mediation_agreement"], ctx, T0)
    assert case.state == CLOSED and case.mediation_level == "street"  # community failed, street agreed
    reopened, ts = decide(case, Command("reopen", note="协议未履行"), at(5, 9), ctx)
    assert steps_of(ts) == [("reopen", CLOSED, MEDIATING)]
    assert (reopened.department, reopened.mediation_level) == ("mediation", "street")
    assert (ts[0].from_mediation_level, ts[0].mediation_level) == ("street", "street")
    # Wed 03-05 09:00 + 5 WD (Thu 6, Fri 7, Mon 10, Tue 11, Wed 12) = Wed 03-12 09:00
    assert reopened.deadline == at(12, 9)


def test_reopen_of_a_self_handled_case_goes_to_triage_without_a_clock(routed):
    case, _, _ = run(Case.new(GRID), ["accept", Command("self_handle", evidence=["photo:1.jpg"])],
                     Context(), T0)
    reopened, ts = decide(case, Command("reopen", note="又堆满了"), at(5, 9))
    assert steps_of(ts) == [("reopen", CLOSED, FILED)]
    assert (reopened.department, reopened.deadline, reopened.dispatched_at) == ("triage", None, None)
    # the dispatcher's dispatch starts the clock: Fri 03-07 10:00 + 5 WD = Fri 03-14 10:00
    case, ts = decide(reopened, Command("dispatch", actor_role="dispatcher"), at(7, 10),
                      Context(route=TO_URBAN, limit=FIVE_WD))
    assert (case.state, case.department, case.deadline, case.dispatched_at) == (
        DISPATCHED, "urban_management", at(14, 10), at(7, 10))


def test_reopens_are_bounded_by_the_tenant(routed):
    ctx, tenant = routed(SEWER), DEMO_GRID
    assert DEFAULT_MAX_REOPENS == 3 and tenant.max_reopens == 3  # demo-grid does not set it

    def reopen_and_close(case: Case, day: int) -> Case:
        case, _ = decide(case, Command("reopen", note="重办"), at(day, 9), ctx)
        case, _, _ = run(case, ["acknowledge", "start", "resolve", "verify_pass"], ctx, at(day, 10))
        return case

    case = closed_by_department(routed)
    for day in (5, 6, 7):  # three reopens allowed
        case = reopen_and_close(case, day)
    assert case.reopen_count == 3 and allowed_actions(case, at(10, 9), ctx) == ("callback",)
    with pytest.raises(IllegalAction, match="allows 3") as info:
        decide(case, Command("reopen", note="第四次"), at(10, 9), ctx)
    assert info.value.allowed_actions == ("callback",)
    # a tenant that allows one reopen (max_reopens: 1), and one that allows none
    once = dataclasses.replace(ctx, tenant=dataclasses.replace(tenant, max_reopens=1))
    first, _ = decide(closed_by_department(routed), Command("reopen", note="重办"), at(5, 9), once)
    first, _, _ = run(first, ["acknowledge", "start", "resolve", "verify_pass"], once, at(5, 10))
    with pytest.raises(IllegalAction, match="allows 1"):
        decide(first, Command("reopen", note="重办"), at(6, 9), once)
    never = dataclasses.replace(ctx, tenant=dataclasses.replace(tenant, max_reopens=0))
    assert "reopen" not in allowed_actions(closed_by_department(routed), None, never)


# --------------------------------------------------------------------------- recategorize


def test_recategorize_moves_a_case_to_the_new_department_and_recounts_from_the_first_dispatch(routed):
    case, _ = decide(dispatched(routed), Command("acknowledge"), at(3, 12), routed(SEWER))
    assert (case.state, case.department, case.deadline) == (ACKNOWLEDGED, "housing", at(10, 11))
    # 下水道堵塞 (housing, 5 WD) was in fact 垃圾扰民 (urban management, 4 working hours, §1.1 [P4])
    new, ts = decide(case, Command("recategorize", actor_role="dispatcher", category_code=GARBAGE_NOISE),
                     at(4, 10), routed(GARBAGE_NOISE))
    assert steps_of(ts) == [("recategorize", ACKNOWLEDGED, FILED), ("dispatch", FILED, DISPATCHED)]
    assert [(t.from_department, t.department, t.category_code) for t in ts] == [
        ("housing", "triage", GARBAGE_NOISE), ("triage", "urban_management", GARBAGE_NOISE)]
    assert ts[1].rule == "taxonomy:100102"
    # first dispatch Mon 03-03 11:00 + 4 working hours (Monday is a working day) = Mon 03-03 15:00:
    # already past on Tue 10:00, so the red alert falls due at once
    assert new.deadline == ts[0].deadline == ts[1].deadline == at(3, 15)
    assert new.limit.span() == timedelta(hours=4)
    assert (new.state, new.category_code, new.recategorize_count) == (DISPATCHED, GARBAGE_NOISE, 1)
    assert new.dispatched_at == at(3, 11)  # the first dispatch stays the clock's start
    assert ts[0].recategorize_count == ts[1].recategorize_count == 1


def test_recategorize_within_the_same_department_keeps_the_state(routed):
    case = dispatched(routed, GARBAGE_NOISE)
    assert case.deadline == at(3, 15)  # Mon 11:00 + 4 working hours
    new, ts = decide(case, Command("recategorize", category_code=FUMES), at(3, 13), routed(FUMES))
    assert steps_of(ts) == [("recategorize", DISPATCHED, DISPATCHED)]
    assert (new.department, ts[0].from_department, ts[0].department) == ("urban_management",) * 3
    # 油烟扰民 has no own limit: 一般 5 WD from Mon 03-03 11:00 = Mon 03-10 11:00
    assert new.deadline == at(10, 11) and new.category_code == FUMES


def test_recategorize_with_the_same_limit_keeps_deadline_and_extension(routed):
    ctx = routed(SEWER)
    case = dispatched(routed)
    case, _ = decide(case, Command("request_extension"), at(7, 9), ctx)
    case, _ = decide(case, Command("approve_extension", extension_days=3), at(7, 10), ctx)
    # Mon 03-10 11:00 + 3 WD (Tue 11, Wed 12, Thu 13) = Thu 03-13 11:00
    assert case.deadline == at(13, 11) and case.extension_used
    # to 异味扰民 (ecology_environment, also 5 WD): another department, the same limit
    same, ts = decide(case, Command("recategorize", category_code="200101"), at(7, 11), routed("200101"))
    assert same.department == "ecology_environment" and same.deadline == at(13, 11)
    assert same.extension_used and same.extension_requested
    # to 垃圾扰民 (4 h): recounted from the first dispatch, the extension lapses
    short, _ = decide(case, Command("recategorize", category_code=GARBAGE_NOISE), at(7, 11),
                      routed(GARBAGE_NOISE))
    assert short.deadline == at(3, 15)
    assert (short.extension_requested, short.extension_used, short.supervision_level) == (False, False, 0)


def test_recategorize_resets_supervision_when_it_recounts(routed):
    case, _ = supervise(dispatched(routed), 1, at(10, 11), routed(SEWER))
    assert case.supervision_level == 1
    new, _ = decide(case, Command("recategorize", category_code=FUMES), at(10, 12), routed(FUMES))
    # 5 WD → 5 WD: the limit did not change, nothing is recounted, 督办 stays
    assert new.deadline == at(10, 11) and new.supervision_level == 1
    new, _ = decide(case, Command("recategorize", category_code=GARBAGE_NOISE), at(10, 12),
                    routed(GARBAGE_NOISE))
    assert new.deadline == at(3, 15) and new.supervision_level == 0  # red again, at once


def test_recategorize_a_case_stored_without_its_first_dispatch_counts_from_now(routed):
    old = dataclasses.replace(dispatched(routed), dispatched_at=None)
    new, _ = decide(old, Command("recategorize", category_code=GARBAGE_NOISE), at(4, 10), routed(GARBAGE_NOISE))
    assert new.deadline == at(4, 14)  # Tue 10:00 + 4 working hours


def test_recategorize_before_dispatch_recounts_nothing(routed):
    ctx = routed(SEWER)
    accepted, _ = decide(Case.new(GRID, category_code=SEWER, limit=ctx.limit), Command("accept"), T0, ctx)
    new, ts = decide(accepted, Command("recategorize", category_code=GARBAGE_NOISE), at(3, 10),
                     routed(GARBAGE_NOISE))
    assert steps_of(ts) == [("recategorize", ACCEPTED, ACCEPTED)]
    assert new.deadline is None and new.limit.span() == timedelta(hours=4)
    # filing routes by the corrected category (the store's context): Mon 11:00 + 4 h = Mon 15:00
    filed, _, _ = run(new, ["file", "dispatch"], routed(GARBAGE_NOISE), at(3, 11), every=timedelta(0))
    assert (filed.department, filed.deadline) == ("urban_management", at(3, 15))


def test_recategorize_a_triaged_case_dispatches_it_by_the_new_route(routed):
    ctx = routed("999999")  # a code the taxonomy does not hold → the triage queue
    triaged, _, _ = run(Case.new(GRID, category_code="999999", limit=ctx.limit), ["accept", "file", "dispatch"],
                        ctx, T0)
    assert (triaged.state, triaged.department, triaged.deadline) == (FILED, "triage", None)
    new, ts = decide(triaged, Command("recategorize", category_code=SEWER), at(3, 14), routed(SEWER))
    assert steps_of(ts) == [("recategorize", FILED, FILED), ("dispatch", FILED, DISPATCHED)]
    # the clock starts at this first dispatch: Mon 14:00 + 5 WD = Mon 03-10 14:00
    assert (new.department, new.deadline, new.dispatched_at) == ("housing", at(10, 14), at(3, 14))


def test_recategorize_takes_a_dispute_out_of_mediation(routed):
    case = dispatched(routed, NEIGHBOURS)
    assert (case.state, case.mediation_level, case.deadline) == (MEDIATING, "grid", at(10, 11))
    new, ts = decide(case, Command("recategorize", category_code=GARBAGE_NOISE), at(3, 12),
                     routed(GARBAGE_NOISE))
    assert steps_of(ts) == [("recategorize", MEDIATING, FILED), ("dispatch", FILED, DISPATCHED)]
    assert (ts[0].from_department, ts[0].from_mediation_level, ts[0].mediation_level) == ("mediation", "grid", None)
    assert (new.department, new.deadline) == ("urban_management", at(3, 15))  # Mon 11:00 + 4 h


def test_recategorize_to_a_new_place_routes_by_the_place(routed):
    case = dispatched(routed, FUMES)  # 油烟扰民 at Xingfu grid 1 → urban_management
    assert case.department == "urban_management"
    new, ts = decide(case, Command("recategorize", category_code=FUMES, to_place_code=HEPING_GRID),
                     at(3, 12), routed(FUMES, HEPING_GRID))
    # Heping's rule sends fumes to ecology_environment; same limit (5 WD), deadline unchanged
    assert (new.department, new.place_code, new.level) == ("ecology_environment", HEPING_GRID, "grid")
    assert [t.place_code for t in ts] == [HEPING_GRID, HEPING_GRID]
    assert ts[1].rule == "fume-heping-to-environment" and new.deadline == at(10, 11)


def test_recategorize_keeps_the_handler_when_the_route_names_none():
    case = Case(state=DISPATCHED, department="housing", target_kind="department", place_code=GRID,
                category_code=SEWER, limit=FIVE_WD, deadline=at(10, 11), dispatched_at=at(3, 11))
    triage = Context(route=RouteDecision("triage", "triage", "triage:no-matching-rule"), limit=FIVE_WD)
    new, ts = decide(case, Command("recategorize", category_code=FUMES), at(4, 9), triage)
    assert steps_of(ts) == [("recategorize", DISPATCHED, DISPATCHED)] and new.department == "housing"


def test_recategorize_refusals_name_the_reason(routed):
    case = dispatched(routed)
    for command, context, reason in [
        (Command("recategorize"), routed(SEWER), "needs category_code"),
        (Command("recategorize", category_code="999999"), routed("999999"), "not in the taxonomy"),
        (Command("recategorize", category_code=FUMES, to_place_code="880101"), routed(FUMES, "880101"),
         "not a place of tenant 'demo-grid'"),
        (Command("recategorize", category_code=SEWER), routed(SEWER), "nothing to correct"),
    ]:
        with pytest.raises(IllegalAction, match=reason) as info:
            decide(case, command, at(4, 9), context)
        assert info.value.current_state == DISPATCHED and "recategorize" in info.value.allowed_actions
    shelved, _ = decide(case, Command("shelve"), at(4, 9), routed(SEWER))
    with pytest.raises(IllegalAction, match="not an action of state shelved"):
        decide(shelved, Command("recategorize", category_code=FUMES), at(4, 10), routed(FUMES))
    with pytest.raises(IllegalAction, match="accepts only callback, reopen"):
        decide(closed_by_department(routed), Command("recategorize", category_code=FUMES), at(5, 9))


# --------------------------------------------------------------------------- return with a category


def test_return_with_a_category_returns_recategorizes_and_reroutes(routed):
    case = dispatched(routed)  # housing, deadline Mon 03-10 11:00
    new, ts = decide(case, Command("return", actor_role="department_staff", category_code=GARBAGE_NOISE,
                                   note="不是管道问题,是垃圾"), at(3, 14), routed(GARBAGE_NOISE))
    assert steps_of(ts) == [("return", DISPATCHED, FILED), ("recategorize", FILED, FILED),
                            ("dispatch", FILED, DISPATCHED)]
    assert [(t.from_department, t.department) for t in ts] == [
        ("housing", "triage"), ("triage", "triage"), ("triage", "urban_management")]
    assert [t.category_code for t in ts] == [None, GARBAGE_NOISE, GARBAGE_NOISE]
    assert (new.return_count, new.recategorize_count) == (1, 1)
    assert new.deadline == at(3, 15)  # first dispatch Mon 11:00 + 4 working hours


def test_return_with_a_category_that_routes_back_to_the_returner_waits_in_triage(routed):
    case = dispatched(routed, GARBAGE_NOISE)  # urban_management
    new, ts = decide(case, Command("return", category_code=FUMES), at(3, 12), routed(FUMES))
    # 油烟扰民 at Xingfu routes to urban_management, the department that returned it
    assert steps_of(ts) == [("return", DISPATCHED, FILED), ("recategorize", FILED, FILED)]
    assert (new.state, new.department, new.category_code) == (FILED, "triage", FUMES)


def test_return_with_a_category_and_a_target_goes_to_the_target(routed):
    ctx = dataclasses.replace(routed(FUMES), route=RouteDecision("department", "water", "manual"))
    new, ts = decide(dispatched(routed), Command("return", category_code=FUMES, target_department="water"),
                     at(3, 12), ctx)
    assert steps_of(ts)[-1] == ("dispatch", FILED, DISPATCHED)
    assert (new.department, ts[-1].rule, ts[-1].category_code) == ("water", "return:redispatch", FUMES)


def test_return_with_an_unknown_category_is_refused_whole(routed):
    case = dispatched(routed)
    with pytest.raises(IllegalAction, match="not in the taxonomy") as info:
        decide(case, Command("return", category_code="999999"), at(3, 12), routed("999999"))
    assert info.value.current_state == DISPATCHED


# --------------------------------------------------------------------------- attribution


def test_every_transition_names_the_department_and_rung_before_and_after(routed):
    ctx = routed(SEWER)
    case, ts = decide(dispatched(routed), Command("transfer", target_department="water"), at(3, 12), ctx)
    assert (ts[0].from_department, ts[0].department) == ("housing", "water")
    mediating = dispatched(routed, NEIGHBOURS)
    case, ts = decide(mediating, Command("mediation_failed"), at(3, 12), routed(NEIGHBOURS))
    assert (ts[0].from_mediation_level, ts[0].mediation_level, ts[0].unit) == ("grid", "community", COMMUNITY)


# --------------------------------------------------------------------------- events


def _request(**kw) -> CaseActionRequested:
    return CaseActionRequested(event_id=uuid.UUID(int=5), occurred_at=T0, case_id=uuid.UUID(CASE_ID),
                               tenant="demo-grid", place_code=GRID, actor_role="dispatcher", **kw)


def test_events_carry_the_action_id_attribution_and_what_the_step_recorded(routed):
    case = dispatched(routed)
    _, ts = decide(case, Command("recategorize", category_code=FUMES, to_place_code=HEPING_GRID),
                   at(3, 12), routed(FUMES, HEPING_GRID))
    action_id = uuid.UUID(int=9)
    events = transition_events(uuid.UUID(CASE_ID), "demo-grid", GRID, ts, first_seq=4, action_id=action_id)
    moved, sent = events
    assert isinstance(moved, CaseTransitioned) and isinstance(sent, CaseDispatched)
    assert [e.action_id for e in events] == [action_id, action_id]
    assert [e.place_code for e in events] == [HEPING_GRID, HEPING_GRID]  # the corrected place
    assert (moved.from_department, moved.department, moved.category_code, moved.recategorize_count) == (
        "housing", "triage", FUMES, 1)
    assert (sent.from_department, sent.department, sent.category_code, sent.sequence) == (
        "triage", "ecology_environment", FUMES, 5)
    closed = closed_by_department(routed)
    _, ts = decide(closed, Command("callback", satisfaction="dissatisfied", resident_resolved=False), at(5, 9))
    (called,) = transition_events(uuid.UUID(CASE_ID), "demo-grid", GRID, ts, first_seq=9)
    assert (called.satisfaction, called.resident_resolved, called.outcome, called.action_id) == (
        "dissatisfied", False, None, None)
    _, ts = decide(Case.new(GRID), Command("merge_duplicate", duplicate_of=ORIGINAL), T0, KNOWS_ORIGINAL)
    (merged,) = transition_events(uuid.UUID(CASE_ID), "demo-grid", GRID, ts, first_seq=1)
    assert (merged.outcome, merged.duplicate_of) == ("duplicate", uuid.UUID(ORIGINAL))


def test_a_refusal_names_the_request_it_answers(routed):
    refusal = IllegalAction(CLOSED, ("callback",), "重办已达上限", "reopen")
    plain = action_rejected(_request(action="reopen"), "demo-grid", GRID, refusal, T0)
    assert plain.action_id == uuid.UUID(int=5)  # no action_id: the request's event id
    named = action_rejected(_request(action="reopen", action_id=uuid.UUID(int=6)), "demo-grid", GRID, refusal, T0)
    assert named.action_id == uuid.UUID(int=6) and named.allowed_actions == ("callback",)


# --------------------------------------------------------------------------- stored cases, tenant files


def test_a_case_stored_before_the_closed_loop_still_loads():
    stored = {"state": "dispatched", "department": "housing", "target_kind": "department",
              "mediation_level": None, "deadline": "2025-03-10T11:00:00+08:00", "limit": {"value": 5, "unit": "working_days"},
              "paused_since": None, "extension_used": False, "extension_requested": False, "transfer_count": 0,
              "return_count": 0, "rework_count": 0, "supervision_level": 0, "flags": [], "place_code": GRID,
              "level": "grid", "unit": None}
    case = case_from_json(stored)
    assert (case.state, case.deadline, case.limit) == (DISPATCHED, at(10, 11), FIVE_WD)
    assert (case.outcome, case.reopen_count, case.recategorize_count, case.category_code, case.dispatched_at) == (
        None, 0, 0, None, None)
    new = dataclasses.replace(case, dispatched_at=at(3, 11), category_code=SEWER, outcome=None, reopen_count=1)
    assert case_from_json(case_to_json(new)) == new


def test_tenant_max_reopens_from_the_file(tmp_path):
    text = (
        "tenant: t1\nname_zh: 测试\nname_en: Test\ntimezone: Asia/Shanghai\n{extra}"
        "places:\n  - {{code: \"990201\", level: district, name_zh: 测试区, name_en: Test District}}\n"
    )
    (tmp_path / "t1.yaml").write_text(text.format(extra=""), encoding="utf-8")
    assert load_tenant("t1", tmp_path).max_reopens == 3
    (tmp_path / "t1.yaml").write_text(text.format(extra="max_reopens: 5\n"), encoding="utf-8")
    assert load_tenant("t1", tmp_path).max_reopens == 5
    for bad in ("-1", "three", "true", "2.5"):
        (tmp_path / "t1.yaml").write_text(text.format(extra=f"max_reopens: {bad}\n"), encoding="utf-8")
        with pytest.raises(TenantConfigError, match="max_reopens must be an integer >= 0") as info:
            load_tenant("t1", tmp_path)
        assert info.value.line == 5
