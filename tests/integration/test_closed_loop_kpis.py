"""The closed-loop figures (issue 12) on the real PostgreSQL: hand-built events of eleven cases folded
by reporting's handler (services/reporting/handlers.py), then the KPI table, the statistics and the
work summary over them. Every expected value is worked out by hand below from the definitions in
docs/kpis.md (the rules of services/reporting/kpis/rules.py), not taken from a run.

The cases (tenant of its own; P = March 2026, Asia/Shanghai; now = 2026-04-15; 2026-03-02 is a
Monday and March 2026 has no public holiday):

- R1 phone, 一般: accepted 3/2 09:30, dispatched to housing 3/2 10:00, acknowledged 12:00, closed
  3/4 12:00 (resolved); callback 3/5 satisfied, resident says resolved.
- R2 phone, 一般: reported 3/9 10:00, dispatched to urban_management 10:30, acknowledged 3/10 12:00
  (25.5 working hours later: late), closed 3/11 12:00 (unresolved); callback 3/12 10:00
  dissatisfied, not resolved; reopened 3/12 11:00 (back to urban_management), acknowledged 12:00,
  closed 3/16 12:00 (resolved); callback 3/17 basically satisfied, resolved.
- R3 grid worker, 一般: dispatched to housing 3/10 10:00, recategorized 11:00 (same department,
  state unchanged), acknowledged 12:00, closed 3/11 12:00 (partly resolved); callback 3/12
  unreachable, callback 3/13 satisfied (resolution not rated).
- R4 grid worker, 紧急 (respond 2 h): dispatched to housing 3/16 10:00 (deadline 3/17 10:00),
  recategorized 11:00 to another place and category (→ filed), dispatched to ecology_environment
  11:00, acknowledged 12:30, transferred to urban_management 3/17 10:00, acknowledged 13:00 (3 h:
  late); open.
- M1 grid worker: to mediation at the grid rung 3/2 10:00, failed → community 3/4 10:00, agreement
  3/6 10:00 (closed, resolved).
- M2 grid worker: to mediation at the street rung 3/2 10:00, failed → linked 3/3 10:00, failed →
  police 3/5 10:00 (both without from_mediation_level / from_department: older events), police
  acknowledged 11:00, closed 3/6 12:00. 
- H1 history: reported and dispatched to housing 3/5 10:00, transferred to health 3/6, closed 3/8
  10:00 (no outcome recorded).
- P1 phone report 3/3, never accepted; P2 phone report 3/3, rejected; X1 dispatched 3/20 and
  cancelled 3/21 as R1's duplicate: all three outside every figure but X1's own, 合并重复件
  (``merged_duplicates``, issue 15: in the sub-period of its report, 3/20).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from services.reporting.filters import CaseFilter
from services.reporting.handlers import apply_events
from services.reporting.kpis.queries import query_kpis
from services.reporting.kpis.sketch import ALPHA as SKETCH_ALPHA
from services.reporting.kpis.summary import work_summary
from services.reporting.stats import query_stats
from shared.domain.tenants import AssessmentWeights, load_tenant
from tests.casestory import CaseStory, history_case
from tests.integration.helpers import unique_tenant

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
GRID_1, GRID_2 = "990102001001001", "990102001002001"


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


P_START, P_END, NOW = at(3, 1, 0), at(4, 1, 0), at(4, 15, 0)


def stories(tenant: str) -> list:
    """The events of the module docstring's cases."""
    def story(name, reported_at, **kw):
        return CaseStory(tenant, name, reported_at, **kw)

    r1 = (story("R1", at(3, 2, 9), channel="phone").accept_and_file(at(3, 2, 9, 30)).dispatch(at(3, 2), "housing")
          .step("acknowledge", "acknowledged", at(3, 2, 12)).close(at(3, 4, 12))
          .step("callback", "closed", at(3, 5), satisfaction="satisfied", resident_resolved=True))
    r2 = (story("R2", at(3, 9), channel="phone").accept_and_file(at(3, 9, 10, 10))
          .dispatch(at(3, 9, 10, 30), "urban_management")
          .step("acknowledge", "acknowledged", at(3, 10, 12)).close(at(3, 11, 12), "unresolved")
          .step("callback", "closed", at(3, 12), satisfaction="dissatisfied", resident_resolved=False)
          .step("reopen", "dispatched", at(3, 12, 11), reason="not fixed")
          .step("acknowledge", "acknowledged", at(3, 12, 12)).close(at(3, 16, 12))
          .step("callback", "closed", at(3, 17), satisfaction="basically_satisfied", resident_resolved=True))
    r3 = (story("R3", at(3, 10)).accept_and_file(at(3, 10)).dispatch(at(3, 10), "housing")
          .step("recategorize", "dispatched", at(3, 10, 11), category_code="100402")
          .step("acknowledge", "acknowledged", at(3, 10, 12)).close(at(3, 11, 12), "partly_resolved")
          .step("callback", "closed", at(3, 12), satisfaction="unreachable")
          .step("callback", "closed", at(3, 13), satisfaction="satisfied"))
    r4 = (story("R4", at(3, 16), urgency="紧急").accept_and_file(at(3, 16))
          .dispatch(at(3, 16), "housing", deadline=at(3, 17))
          .step("recategorize", "filed", at(3, 16, 11), department="triage", target_kind="triage", place=GRID_2,
                category_code="100110")
          .dispatch(at(3, 16, 11), "ecology_environment", category_code="100110")
          .step("acknowledge", "acknowledged", at(3, 16, 12, 30))
          .step("transfer", "dispatched", at(3, 17), department="urban_management")
          .step("acknowledge", "acknowledged", at(3, 17, 13)))
    m1 = (story("M1", at(3, 2)).accept_and_file(at(3, 2)).dispatch(at(3, 2), "mediation", rung="grid")
          .step("mediation_failed", "mediating", at(3, 4), rung="community")
          .step("mediation_agreement", "closed", at(3, 6), outcome="resolved"))
    m2 = (story("M2", at(3, 2)).accept_and_file(at(3, 2)).dispatch(at(3, 2), "mediation", rung="street")
          .step("mediation_failed", "mediating", at(3, 3), rung="linked", from_fields=False)
          .step("mediation_failed", "dispatched", at(3, 5), department="police", target_kind="department", rung=None,
                from_fields=False)
          .step("acknowledge", "acknowledged", at(3, 5, 11)).close(at(3, 6, 12)))
    p1 = story("P1", at(3, 3), channel="phone")
    p2 = story("P2", at(3, 3), channel="phone").step("reject", "rejected", at(3, 3, 11), outcome="unfounded")
    x1 = (story("X1", at(3, 20)).accept_and_file(at(3, 20)).dispatch(at(3, 20), "housing")
          .step("cancel", "cancelled", at(3, 21), outcome="duplicate", duplicate_of=r1.case_id))
    events = [e for s in (r1, r2, r3, r4, m1, m2, p1, p2, x1) for e in s.events]
    return events + history_case(tenant, "H1", at(3, 5), "housing", transfers=[("health", at(3, 6))],
                                 closed_at=at(3, 8))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def folded(reporting_engine):
    """The events folded in two batches, the second half first (arrival order does not matter)."""
    tenant = unique_tenant()
    events = stories(tenant)
    half = len(events) // 2
    for batch in (events[half:], events[:half]):
        async with reporting_engine.begin() as conn:
            await apply_events(conn, batch)
    return tenant


def _filter(tenant: str, **kw) -> CaseFilter:
    return CaseFilter(tenant, P_START, P_END, tz=TZ, **kw)


async def test_totals(reporting_engine, folded):
    async with reporting_engine.connect() as conn:
        total = (await query_kpis(conn, _filter(folded), now=NOW))["total"]
    # Counted: R1 R2 R3 R4 M1 M2 H1 (P1 not accepted, P2 rejected, X1 cancelled).
    assert total["accepted"] == 7
    # 办结 = the final closures in P: R1 R2 R3 M1 M2 H1; R4 is open (transferred) and overdue
    # (deadline 3/17); 应办结 = 6 + R4 = 7.
    assert (total["closed"], total["due"], total["in_progress_transferred"], total["overdue_open"]) == (6, 7, 1, 1)
    # Outcomes of the final closures: resolved R1 R2 (its second closure) M1 M2; partly R3; H1 none.
    assert (total["resolved"], total["partly_resolved"], total["unresolved"], total["outcome_unrecorded"]) == (4, 1, 0, 1)
    assert total["unfounded"] == total["duplicate"] == total["not_remit"] == 0  # P2 and X1 are not counted
    # X1 is shown apart, once: 合并重复件 (docs/kpis.md §3.1)
    assert total["merged_duplicates"] == 1
    # Dispatches to a handler: R1 R2 R3 R4 R4' M1 M2 (mediation) and H1's recorded one = 8; R3's and
    # R4's first dispatch were recategorized while with the handler → 准确派遣率 (8 − 2) / 8.
    assert (total["dispatches"], total["inaccurate_dispatches"], total["recategorized"], total["returned"]) == (8, 2, 2, 0)
    assert total["accurate_dispatch_rate"] == pytest.approx(0.75)
    # Transfers: R4 ecology_environment → urban_management and H1 housing → health.
    assert (total["transfers_out"], total["transfers_in"]) == (2, 2)
    # Hand-overs to a department (live): R1, R2, R2's reopen, R3, R4 ×2, R4's transfer, M2 to the
    # police = 8; in time: R1 (2 h), R2's reopen (1 h), R3 (2 h), R4's second (1.5 h of 2 h), M2
    # (1 h) = 5; late or never: R2 (25.5 WH), R4's first (no acknowledgement), R4's transfer (3 h).
    assert (total["handovers"], total["responded"]) == (8, 5)
    assert total["response_rate"] == pytest.approx(5 / 8)
    # Callbacks reaching the resident: R1, R2 ×2, R3's second = 4 (R3's first unreachable);
    # satisfied or basically: R1, R2's second, R3 = 3; rated resolution: R1 yes, R2 no, R2 yes.
    assert (total["callbacks"], total["callbacks_unreachable"], total["callbacks_satisfied"]) == (4, 1, 3)
    assert (total["callbacks_rated"], total["callbacks_resolved"]) == (3, 2)
    assert total["satisfaction_rate"] == pytest.approx(3 / 4)
    assert total["resolution_rate"] == pytest.approx(2 / 3)
    assert (total["reopened"], total["reopen_rate"]) == (1, pytest.approx(1 / 6))
    # 100 × (0.30 × 5/8 + 0.35 × 2/3 + 0.35 × 3/4) = 18.75 + 23.333… + 26.25 = 68.333…
    assert total["assessment_score"] == pytest.approx(68.3333333)


async def test_a_merged_duplicate_counts_in_its_report_s_sub_period_only(reporting_engine, folded):
    """X1 (reported 3/20, cancelled as R1's duplicate 3/21): 合并重复件 1 in the ISO week of 3/16–3/22
    (2026-03-16 is a Monday), 0 in the others; nothing else of that week counts it (受理量 there:
    R2's reopen is no report; R4 reported 3/16 = 1)."""
    async with reporting_engine.connect() as conn:
        rows = (await query_kpis(conn, _filter(folded), "period:week", now=NOW))["rows"]
        by_department = {r["key"]: r for r in (await query_kpis(conn, _filter(folded), "department", now=NOW))["rows"]}
    weeks = {r["start"][:10]: r for r in rows}
    assert {k: r["merged_duplicates"] for k, r in weeks.items() if r["merged_duplicates"]} == {"2026-03-16": 1}
    assert weeks["2026-03-16"]["accepted"] == 1  # R4 only
    # grouped by department: X1's department when it was cancelled, housing
    assert by_department["housing"]["merged_duplicates"] == 1
    assert sum(r["merged_duplicates"] for r in by_department.values()) == 1


async def test_time_to_first_and_final_close(reporting_engine, folded):
    async with reporting_engine.connect() as conn:
        total = (await query_kpis(conn, _filter(folded), now=NOW))["total"]
    # first closure − report: R1 51 h, R2 50 h, R3 26 h, M1 96 h, M2 98 h, H1 72 h → mean 393 / 6
    assert (total["close_n"], total["close_hours_mean"]) == (6, pytest.approx(65.5))
    # final closure: R2 3/9 10:00 → 3/16 12:00 = 170 h instead of 50 → mean 513 / 6
    assert (total["final_close_n"], total["final_close_hours_mean"]) == (6, pytest.approx(85.5))
    # medians: sorted 26 50 51 72 96 98 → (51 + 72) / 2; final: 26 51 72 96 98 170 → (72 + 96) / 2;
    # answered from the rollups' quantile sketches, so within their stated bound, relative α
    # (docs/kpis.md §10: |sketch − percentile_cont| ≤ α · percentile_cont)
    assert total["close_hours_median"] == pytest.approx(61.5, rel=SKETCH_ALPHA)
    assert total["final_close_hours_median"] == pytest.approx(84.0, rel=SKETCH_ALPHA)


async def test_mediation_per_rung(reporting_engine, folded):
    async with reporting_engine.connect() as conn:
        total = (await query_kpis(conn, _filter(folded), now=NOW))["total"]
    # M1: grid → community → agreement; M2: street → linked → police. Two cases mediated, one
    # at each rung; escalations from grid (M1) and street (M2); M2's hand-off from linked (its
    # rung known from the step before: the event carries none).
    assert total["mediated"] == 2
    assert [total[f"mediated_{r}"] for r in ("grid", "community", "street", "linked")] == [1, 1, 1, 1]
    assert (total["mediation_agreements"], total["mediation_agreements_community"]) == (1, 1)
    assert (total["mediation_escalations"], total["mediation_escalations_grid"],
            total["mediation_escalations_street"]) == (2, 1, 1)
    assert (total["mediation_handoffs"], total["mediation_handoffs_linked"]) == (1, 1)
    # 调解成功率 = agreements ÷ (agreements + hand-offs): total 1/2, community 1/1, linked 0/1;
    # grid and street ended in neither (escalated): no rate.
    assert total["mediation_success_rate"] == pytest.approx(0.5)
    assert (total["mediation_success_rate_community"], total["mediation_success_rate_linked"]) == (1.0, 0.0)
    assert total["mediation_success_rate_grid"] is None and total["mediation_success_rate_street"] is None
    # hours on a rung: grid 48 (3/2 → 3/4), community 48 (→ 3/6), street 24 (→ 3/3), linked 48 (→ 3/5)
    assert [total[f"mediation_hours_{r}"] for r in ("grid", "community", "street", "linked")] == [48.0, 48.0, 24.0, 48.0]
    assert total["mediation_hours"] == pytest.approx(42.0)


async def test_by_department_each_event_counts_where_it_happened(reporting_engine, folded):
    async with reporting_engine.connect() as conn:
        rows = {r["key"]: r for r in (await query_kpis(conn, _filter(folded), "department", now=NOW))["rows"]}
        housing = (await query_kpis(conn, _filter(folded, department="housing"), now=NOW))["total"]
    h, u, e = rows["housing"], rows["urban_management"], rows["ecology_environment"]
    # housing received R1, R3, R4 and H1's dispatch; R3's and R4's were recategorized there; H1
    # was transferred out of it; R1's and R3's callbacks count there (the closing department).
    assert (h["dispatches"], h["inaccurate_dispatches"], h["recategorized"], h["transfers_out"]) == (4, 2, 2, 1)
    assert (h["handovers"], h["responded"], h["callbacks"], h["callbacks_unreachable"]) == (3, 2, 2, 1)
    # urban_management: R2's dispatch, R4 transferred in; hand-overs R2, R2's reopen, R4's transfer
    # (only the reopen acknowledged in time); R2's callbacks and reopen.
    assert (u["dispatches"], u["transfers_in"], u["handovers"], u["responded"]) == (1, 1, 3, 1)
    assert (u["callbacks"], u["reopened"], u["satisfaction_rate"]) == (2, 1, 0.5)
    # ecology_environment: R4's re-dispatch, acknowledged in time, then transferred out.
    assert (e["dispatches"], e["responded"], e["transfers_out"], e["response_rate"]) == (1, 1, 1, 1.0)
    assert rows["health"]["transfers_in"] == 1 and rows["police"]["handovers"] == 1
    assert (rows["mediation"]["dispatches"], rows["mediation"]["mediated"]) == (2, 2)
    # closure figures count against the closing department (the case's): R1 R3 housing, R2 urban,
    # H1 health, M1 mediation, M2 police
    assert (h["closed"], u["closed"], rows["health"]["closed"], rows["police"]["closed"]) == (2, 1, 1, 1)
    # the department filter selects the events counted against housing, as its row
    assert {k: housing[k] for k in ("dispatches", "recategorized", "transfers_out", "callbacks")} == \
        {k: h[k] for k in ("dispatches", "recategorized", "transfers_out", "callbacks")}


async def test_by_week_and_tenant_weights(reporting_engine, folded):
    weights = dataclasses.replace(load_tenant("demo-grid"),
                                  assessment_weights=AssessmentWeights(response=0.5, resolution=0.25, satisfaction=0.25))
    async with reporting_engine.connect() as conn:
        weeks = await query_kpis(conn, _filter(folded), "period:week", now=NOW)
        weighed = await query_kpis(conn, _filter(folded), now=NOW, tenant=weights)
    # ISO weeks clipped to P: [3/1], 3/2-8, 3/9-15, 3/16-22, 3/23-29, 3/30-31
    assert [r["callbacks"] for r in weeks["rows"]] == [0, 1, 2, 1, 0, 0]  # R1 | R2, R3 | R2
    assert [r["dispatches"] for r in weeks["rows"]] == [0, 4, 2, 2, 0, 0]  # R1 M1 M2 H1 | R2 R3 | R4 ×2
    assert weeks["total"]["dispatches"] == 8
    # 100 × (0.5 × 5/8 + 0.25 × 2/3 + 0.25 × 3/4) = 31.25 + 16.666… + 18.75 = 66.666…
    assert weighed["total"]["assessment_score"] == pytest.approx(66.6666667)
    assert weighed["weights"] == {"response": 0.5, "resolution": 0.25, "satisfaction": 0.25}


async def test_stats_show_who_is_not_counted(reporting_engine, folded):
    async with reporting_engine.connect() as conn:
        stats = await query_stats(conn, CaseFilter(folded), "status")
    groups = {g["key"]: g for g in stats["groups"]}
    # 7 counted cases: 6 closed, R4 transferred; P1 awaits acceptance, P2 rejected, X1 cancelled —
    # each its own status, in no other figure.
    assert (stats["total"]["reported"], stats["total"]["closed"], stats["total"]["open"]) == (7, 6, 1)
    assert (groups["closed"]["reported"], groups["transferred"]["reported"]) == (6, 1)
    assert (groups["awaiting_acceptance"]["awaiting_acceptance"], groups["awaiting_acceptance"]["reported"]) == (1, 0)
    assert (groups["rejected"]["rejected"], groups["cancelled"]["cancelled"]) == (1, 1)
    assert (stats["total"]["awaiting_acceptance"], stats["total"]["rejected"], stats["total"]["cancelled"]) == (1, 1, 1)
    assert "in_progress" not in groups and "reported" not in groups


async def test_summary_names_the_closed_loop(reporting_engine, folded):
    async with reporting_engine.connect() as conn:
        text = (await work_summary(conn, _filter(folded), now=NOW))["paragraph"]
    # 转办 = transfer events (R4, H1); 重办率 1/6; 满意率 3/4, 解决率 2/3; 2 cases mediated, 1
    # agreement, 2 escalations, 1 hand-off, 调解成功率 1/2. No return: not named.
    assert text.endswith("转办2次，重办1次，重办率16.7%，回访4次，满意率75.0%，解决率66.7%，"
                         "调解2件，达成调解协议1件，调解上报2次，移交1件，调解成功率50.0%。"), text
    assert "退回" not in text


# --------------------------------------------------------------------------- dispatch's own events


async def test_dispatchs_own_events_fold_into_the_same_figures(reporting_engine):
    """A phone report through dispatch's lifecycle (services/dispatch/domain/lifecycle/ ``decide``
    and events.py ``transition_events``, as the case book applies requested actions): the events
    dispatch really publishes give the figures the hand-built stories give.

    Mon 3/2 09:00 reported (100401 下水道堵塞 → housing, 一般: respond 1 WD); accepted 09:10, filed
    and dispatched 09:20, acknowledged 10:20 (in time), resolved unresolved and checked Tue 3/3
    10:00; callback Wed dissatisfied, not resolved; reopened Wed 11:00 (back to housing), not
    acknowledged until Fri 3/6 12:00 (2 working days: late), closed resolved Fri 15:00; callback
    Mon 3/9 satisfied, resolved."""
    import uuid

    from services.dispatch.domain import lifecycle
    from services.dispatch.domain.events import transition_events
    from services.dispatch.domain.reports import case_context
    from shared.contract.events import CaseReported
    from shared.domain.taxonomy import load_taxonomy

    tenant_config, taxonomy = load_tenant("demo-grid"), load_taxonomy()
    tenant, case_id = unique_tenant(), uuid.uuid4()
    report = CaseReported(event_id=uuid.uuid4(), occurred_at=at(3, 2, 9), reported_at=at(3, 2, 9), case_id=case_id,
                          tenant=tenant, place_code=GRID_1, category_code="100401", channel="phone")
    ctx = case_context(tenant_config, taxonomy, "100401", GRID_1, "一般", at(3, 2, 9))
    case = lifecycle.Case.new(GRID_1, limit=ctx.limit, tenant=tenant_config, category_code="100401")
    events, seq = [report], 0
    for when, action, kw in [
        (at(3, 2, 9, 10), "accept", {}), (at(3, 2, 9, 20), "file", {}), (at(3, 2, 9, 20), "dispatch", {}),
        (at(3, 2, 10, 20), "acknowledge", {}), (at(3, 3), "start", {}),
        (at(3, 3), "resolve", {"outcome": "unresolved", "note": "管道需更换"}), (at(3, 3), "verify_pass", {}),
        (at(3, 4), "callback", {"satisfaction": "dissatisfied", "resident_resolved": False}),
        (at(3, 4, 11), "reopen", {"note": "仍然堵塞"}), (at(3, 6, 12), "acknowledge", {}),
        (at(3, 6, 15), "start", {}), (at(3, 6, 15), "resolve", {}), (at(3, 6, 15), "verify_pass", {}),
        (at(3, 9), "callback", {"satisfaction": "satisfied", "resident_resolved": True}),
    ]:
        case, steps = lifecycle.decide(case, lifecycle.Command(action=action, actor_role="city_ops", **kw), when, ctx)
        events += transition_events(case_id, tenant, GRID_1, steps, seq + 1)
        seq += len(steps)
    async with reporting_engine.begin() as conn:
        await apply_events(conn, list(reversed(events)))
    async with reporting_engine.connect() as conn:
        total = (await query_kpis(conn, _filter(tenant), now=NOW))["total"]
    # one case, closed twice: 办结 1 (its final closure, resolved), reopened once → 重办率 1/1
    assert (total["accepted"], total["closed"], total["resolved"], total["reopened"]) == (1, 1, 1, 1)
    assert total["reopen_rate"] == 1.0
    # hand-overs: the dispatch (acknowledged after 1 h) and the reopen (acknowledged after 2 days
    # and 1 h of working time: late) → 响应率 1/2; one dispatch, accurate
    assert (total["handovers"], total["responded"], total["dispatches"], total["accurate_dispatch_rate"]) == \
        (2, 1, 1, 1.0)
    # callbacks: dissatisfied/not resolved, satisfied/resolved → 满意率 1/2, 解决率 1/2
    assert (total["callbacks"], total["satisfaction_rate"], total["resolution_rate"]) == (2, 0.5, 0.5)
    # to the first closure Tue 10:00: 25 h; to the final one Fri 15:00: 4 days 6 h = 102 h
    assert (total["close_hours_mean"], total["final_close_hours_mean"]) == (25.0, 102.0)
