"""``reporting.case_facts`` against the real PostgreSQL: the fold does not depend on arrival order.

Expected values follow the merge rules in shared/domain/casefacts.py's docstring:
- ``department`` is written by the dispatch/transfer with the newest ``(occurred_at, sequence)``; a
  transfer without ``to_department`` does not change it; each transfer adds 1 to ``transfer_count``;
- ``case.closed`` sets ``closed``/``closed_at``/source status; ``case.status_recorded`` never
  overwrites the status a closure wrote;
and services/reporting/stats.py: a case is counted as reported only once its report is there.
"""

from __future__ import annotations

import itertools
import uuid

import pytest
import sqlalchemy as sa

from services.reporting.db import case_facts as cf
from services.reporting.filters import CaseFilter
from services.reporting.handlers import apply_events
from services.reporting.stats import query_stats
from shared.contract.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseStatusRecorded,
    CaseTransferred,
)
from tests.casestory import CaseStory
from tests.integration.helpers import DEMO_GRID_GRID, at, unique_tenant

pytestmark = pytest.mark.integration

REPORTED_AT = at(1, 9, 0)
DISPATCHED_AT = at(1, 9, 10)
TRANSFER1_AT = at(1, 10, 0)
TRANSFER2_AT = at(1, 11, 0)
CLOSED_AT = at(3, 15, 30)

FIRST_DEPARTMENT = "housing"
TRANSFERRED_TO = "urban_management"  # "X"
CLOSURE_STATUS = "已办结"

MEANINGFUL = (
    cf.c.tenant,
    cf.c.place_code,
    cf.c.category_code,
    cf.c.reported_at,
    cf.c.department,
    cf.c.dispatched_at,
    cf.c.transfer_count,
    cf.c.closed,
    cf.c.closed_at,
    cf.c.source_status,
    cf.c.event_count,
)


def case_events(case_id: uuid.UUID, tenant: str) -> list:
    """reported, dispatched, transferred to X, transferred with to_department None, closed."""
    base = {"case_id": case_id, "tenant": tenant, "place_code": DEMO_GRID_GRID}
    return [
        CaseReported(
            event_id=uuid.uuid4(), occurred_at=REPORTED_AT, reported_at=REPORTED_AT,
            category_code="100401", category_name="下水道堵塞", channel="grid_worker", **base,
        ),
        CaseDispatched(
            event_id=uuid.uuid4(), occurred_at=DISPATCHED_AT, target_kind="department",
            department=FIRST_DEPARTMENT, rule="taxonomy:100401", **base,
        ),
        CaseTransferred(
            event_id=uuid.uuid4(), occurred_at=TRANSFER1_AT, from_department=FIRST_DEPARTMENT,
            to_department=TRANSFERRED_TO, sequence=1, **base,
        ),
        CaseTransferred(
            event_id=uuid.uuid4(), occurred_at=TRANSFER2_AT, from_department=TRANSFERRED_TO,
            to_department=None, sequence=2, **base,
        ),
        CaseClosed(
            event_id=uuid.uuid4(), occurred_at=CLOSED_AT, closed_at=CLOSED_AT, source_status=CLOSURE_STATUS, **base,
        ),
    ]


EXPECTED_ROW = {
    "place_code": DEMO_GRID_GRID,
    "category_code": "100401",
    "reported_at": REPORTED_AT,
    "department": TRANSFERRED_TO,
    "dispatched_at": DISPATCHED_AT,
    "transfer_count": 2,
    "closed": True,
    "closed_at": CLOSED_AT,
    "source_status": CLOSURE_STATUS,
    "event_count": 5,
}


async def fetch_rows(engine, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(cf.c.case_id, *MEANINGFUL).where(cf.c.case_id.in_(case_ids)))).all()
    return {r.case_id: {c.name: getattr(r, c.name) for c in MEANINGFUL} for r in rows}


def assert_all_identical(rows: dict[uuid.UUID, dict], orders: dict[uuid.UUID, tuple[str, ...]], tenant: str) -> None:
    expected = {"tenant": tenant, **EXPECTED_ROW}
    wrong = {orders[cid]: {k: (v, expected[k]) for k, v in row.items() if v != expected[k]} for cid, row in rows.items()}
    wrong = {order: diff for order, diff in wrong.items() if diff}
    assert not wrong, f"{len(wrong)} of {len(rows)} orders give a different row ((got, expected)): " + "; ".join(
        f"{' → '.join(order)}: {diff}" for order, diff in list(wrong.items())[:5]
    )
    distinct = {tuple(sorted(row.items(), key=lambda kv: kv[0])) for row in rows.values()}
    assert len(distinct) == 1


def label(ev) -> str:
    if isinstance(ev, CaseTransferred):
        return f"transferred#{ev.sequence}({ev.to_department})"
    return ev.event_type.removeprefix("case.")


async def test_every_arrival_order_one_event_per_transaction_gives_the_same_row(reporting_engine):
    """120 cases, one per permutation of the 5 events, each event applied in its own transaction
    (as when the events arrive in separate batches)."""
    tenant = unique_tenant()
    orders: dict[uuid.UUID, tuple[str, ...]] = {}
    for perm in itertools.permutations(range(5)):
        case_id = uuid.uuid4()
        events = case_events(case_id, tenant)
        ordered = [events[i] for i in perm]
        orders[case_id] = tuple(label(e) for e in ordered)
        for ev in ordered:
            async with reporting_engine.begin() as conn:
                await apply_events(conn, [ev])
    rows = await fetch_rows(reporting_engine, list(orders))
    assert len(rows) == 120
    assert_all_identical(rows, orders, tenant)


async def test_every_arrival_order_within_one_batch_gives_the_same_row(reporting_engine):
    """Same case, all 5 events in ONE ``apply_events`` call (one consumer batch), every order.

    BatchProcessor hands a batch of new events to ``apply_events`` as they were fetched; events of
    one case travel on one partition, so a batch holding both transfers of a case is ordinary.
    """
    tenant = unique_tenant()
    orders: dict[uuid.UUID, tuple[str, ...]] = {}
    for perm in itertools.permutations(range(5)):
        case_id = uuid.uuid4()
        events = case_events(case_id, tenant)
        ordered = [events[i] for i in perm]
        orders[case_id] = tuple(label(e) for e in ordered)
        async with reporting_engine.begin() as conn:
            await apply_events(conn, ordered)
    rows = await fetch_rows(reporting_engine, list(orders))
    assert len(rows) == 120
    assert_all_identical(rows, orders, tenant)


@pytest.mark.parametrize("closure_first", [False, True], ids=["status-then-closed", "closed-then-status"])
async def test_recorded_open_status_never_overwrites_the_closure_status(reporting_engine, closure_first):
    tenant = unique_tenant()
    case_id = uuid.uuid4()
    base = {"case_id": case_id, "tenant": tenant, "place_code": DEMO_GRID_GRID}
    status = CaseStatusRecorded(event_id=uuid.uuid4(), occurred_at=REPORTED_AT, source_status="Assigned", **base)
    closed = CaseClosed(event_id=uuid.uuid4(), occurred_at=CLOSED_AT, closed_at=CLOSED_AT, source_status="Closed", **base)
    for ev in ([closed, status] if closure_first else [status, closed]):
        async with reporting_engine.begin() as conn:
            await apply_events(conn, [ev])
    row = (await fetch_rows(reporting_engine, [case_id]))[case_id]
    assert row["source_status"] == "Closed"
    assert row["closed"] is True
    assert row["closed_at"] == CLOSED_AT
    assert row["event_count"] == 2


async def test_stats_count_a_case_closed_before_its_report_only_once_the_report_arrived(reporting_engine):
    tenant = unique_tenant()
    case_id = uuid.uuid4()
    base = {"case_id": case_id, "tenant": tenant, "place_code": DEMO_GRID_GRID}
    reported_at = at(5, 8, 0)
    closed_at = at(5, 20, 0)  # 12 hours later
    closed = CaseClosed(event_id=uuid.uuid4(), occurred_at=closed_at, closed_at=closed_at, **base)
    reported = CaseReported(
        event_id=uuid.uuid4(), occurred_at=reported_at, reported_at=reported_at, category_code="100401", **base
    )

    async with reporting_engine.begin() as conn:
        await apply_events(conn, [closed])
    async with reporting_engine.connect() as conn:
        before = await query_stats(conn, CaseFilter(tenant), "status")
        fact_rows = (await conn.execute(sa.select(sa.func.count()).select_from(cf).where(cf.c.tenant == tenant))).scalar_one()
    assert fact_rows == 1  # the closure is kept, waiting for its report
    assert before["total"]["reported"] == 0
    assert before["total"]["closed"] == 0
    assert before["total"]["open"] == 0
    assert before["total"]["closure_rate"] is None
    assert before["total"]["time_to_close_hours"]["n"] == 0
    assert before["groups"] == []

    async with reporting_engine.begin() as conn:
        await apply_events(conn, [reported])
    async with reporting_engine.connect() as conn:
        after = await query_stats(conn, CaseFilter(tenant), "status")
    total = after["total"]
    assert (total["reported"], total["closed"], total["open"], total["transferred"]) == (1, 1, 0, 0)
    assert total["closure_rate"] == 1.0
    assert total["time_to_close_hours"]["n"] == 1
    assert total["time_to_close_hours"]["median"] == pytest.approx(12.0)
    assert total["time_to_close_hours"]["mean"] == pytest.approx(12.0)
    assert [(g["key"], g["reported"]) for g in after["groups"]] == [("closed", 1)]


async def test_target_kind_does_not_depend_on_arrival_order(reporting_engine):
    """db.py: the merge rules are commutative, "events may arrive late, out of order or twice and the
    row still ends the same" — that holds for ``target_kind`` too."""
    tenant = unique_tenant()
    results = {}
    for transfer_first in (False, True):
        case_id = uuid.uuid4()
        _, dispatched, transfer1, _, _ = case_events(case_id, tenant)
        for ev in ([transfer1, dispatched] if transfer_first else [dispatched, transfer1]):
            async with reporting_engine.begin() as conn:
                await apply_events(conn, [ev])
        async with reporting_engine.connect() as conn:
            row = (await conn.execute(sa.select(cf.c.target_kind, cf.c.department).where(cf.c.case_id == case_id))).one()
            results[transfer_first] = tuple(row)
    assert results[False] == results[True]
    assert results[True][0] is not None


async def test_a_redispatch_at_the_same_instant_as_its_return_wins_in_any_order(reporting_engine):
    """A live case's transitions share a timestamp when one action yields several (return, then
    dispatch to the new department: services/dispatch/domain/lifecycle/corrections.py). The row must follow the
    transition sequence whatever the arrival order: the department is the re-dispatch's."""
    from shared.contract.events import CaseTransitioned

    tenant = unique_tenant()
    t = at(2, 10, 0)
    rows = {}
    for order in itertools.permutations(range(3)):
        case_id = uuid.uuid4()
        base = {"case_id": case_id, "tenant": tenant, "place_code": DEMO_GRID_GRID}
        first = CaseDispatched(event_id=uuid.uuid4(), occurred_at=at(2, 9, 0), target_kind="department",
                               department="housing", rule="taxonomy:100401", sequence=3, **base)
        returned = CaseTransitioned(event_id=uuid.uuid4(), occurred_at=t, action="return", from_state="dispatched",
                                    to_state="filed", actor_role="department_staff", sequence=4, department="housing",
                                    target_kind="department", return_count=1, **base)
        again = CaseDispatched(event_id=uuid.uuid4(), occurred_at=t, target_kind="department",
                               department="urban_management", rule="manual", sequence=5, **base)
        events = [first, returned, again]
        for i in order:
            async with reporting_engine.begin() as conn:
                await apply_events(conn, [events[i]])
        async with reporting_engine.connect() as conn:
            row = (await conn.execute(sa.select(cf.c.department, cf.c.state, cf.c.return_count, cf.c.target_kind)
                                      .where(cf.c.case_id == case_id))).one()
        rows[order] = tuple(row)
    assert set(rows.values()) == {("urban_management", "dispatched", 1, "department")}, rows


# --------------------------------------------------------------------------- the closed loop (issue 12)
# Expected values follow the closed-loop rules of shared/domain/casefacts.py's docstring and the
# step rows of shared/domain/casesteps.py; the events are built with tests/casestory.py.

LOOP_COLUMNS = (cf.c.accepted_at, cf.c.closed, cf.c.closed_at, cf.c.final_closed_at, cf.c.outcome, cf.c.duplicate_of,
                cf.c.reopen_count, cf.c.satisfaction, cf.c.resident_resolved, cf.c.callback_at, cf.c.category_code,
                cf.c.place_code, cf.c.recategorize_count, cf.c.urgency, cf.c.state)


async def loop_row(engine, case_id) -> dict:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(*LOOP_COLUMNS).where(cf.c.case_id == case_id))).one()
    return dict(row._mapping)


async def fold_each(engine, events) -> None:
    for ev in events:
        async with engine.begin() as conn:
            await apply_events(conn, [ev])


@pytest.mark.parametrize("channel, accepted", [("phone", False), ("grid_worker", True)])
async def test_a_report_counts_as_accepted_from_its_channel_or_the_accept_transition(reporting_engine, channel, accepted):
    """A public report waits for the clerk: no accepted_at until ``accept`` (any arrival order); a
    grid worker's report is accepted at its report time."""
    story = CaseStory(unique_tenant(), "A", at(1, 9, 0), channel=channel)
    await fold_each(reporting_engine, story.events)
    assert (await loop_row(reporting_engine, story.case_id))["accepted_at"] == (at(1, 9, 0) if accepted else None)
    story.accept_and_file(at(1, 9, 30))
    await fold_each(reporting_engine, reversed(story.events[1:]))  # file before accept
    assert (await loop_row(reporting_engine, story.case_id))["accepted_at"] == at(1, 9, 0 if accepted else 30)


async def test_a_rejected_report_is_never_accepted_and_a_history_record_is(reporting_engine):
    from tests.casestory import history_case

    tenant = unique_tenant()
    rejected = CaseStory(tenant, "R", at(1, 9, 0), channel="phone").step("reject", "rejected", at(1, 10, 0),
                                                                        outcome="unfounded")
    history = history_case(tenant, "H", at(1, 8, 0), "housing", closed_at=at(2, 8, 0))
    await fold_each(reporting_engine, [*rejected.events, *history])
    row = await loop_row(reporting_engine, rejected.case_id)
    assert (row["accepted_at"], row["state"], row["outcome"]) == (None, "rejected", "unfounded")
    row = await loop_row(reporting_engine, history[0].case_id)
    assert (row["accepted_at"], row["closed"], row["closed_at"], row["final_closed_at"]) == \
        (at(1, 8, 0), True, at(2, 8, 0), at(2, 8, 0))


def reopened_story(tenant: str) -> CaseStory:
    """Closed 3/2 unresolved, callback, reopened, closed again 3/5 resolved, callback."""
    return (CaseStory(tenant, "O", at(1, 9, 0)).accept_and_file(at(1, 9, 0)).dispatch(at(1, 9, 0), "housing")
            .close(at(2, 12, 0), "unresolved")
            .step("callback", "closed", at(3, 9, 0), satisfaction="dissatisfied", resident_resolved=False)
            .step("reopen", "dispatched", at(3, 10, 0))
            .close(at(5, 12, 0), "resolved")
            .step("callback", "closed", at(6, 9, 0), satisfaction="basically_satisfied", resident_resolved=True))


async def test_reopen_and_second_closure_in_any_order(reporting_engine):
    """closed_at stays the first closure; final_closed_at, outcome and the callback are the newest
    ones; closed: the newest closure is newer than the reopen. The events in 20 random orders, in
    reverse, and with the first closure last, each in its own transaction."""
    import random

    tenant = unique_tenant()
    expected = {"accepted_at": at(1, 9, 0), "closed": True, "closed_at": at(2, 12, 0), "final_closed_at": at(5, 12, 0),
                "outcome": "resolved", "duplicate_of": None, "reopen_count": 1, "satisfaction": "basically_satisfied",
                "resident_resolved": True, "callback_at": at(6, 9, 0), "category_code": "100401",
                "place_code": DEMO_GRID_GRID, "recategorize_count": 0, "urgency": "一般", "state": "closed"}
    rng = random.Random(12)
    for n in range(22):
        story = reopened_story(tenant + str(n))
        first_close = next(e for e in story.events if getattr(e, "action", None) == "verify_pass")
        events = (list(reversed(story.events)) if n == 0 else
                  [e for e in story.events if e is not first_close] + [first_close] if n == 1 else
                  rng.sample(story.events, len(story.events)))
        await fold_each(reporting_engine, events)
        assert await loop_row(reporting_engine, story.case_id) == expected, n


async def test_a_reopened_case_is_open_until_it_closes_again(reporting_engine):
    story = reopened_story(unique_tenant())
    reopen = next(i for i, e in enumerate(story.events) if getattr(e, "action", None) == "reopen")
    await fold_each(reporting_engine, reversed(story.events[:reopen + 1]))  # the reopen arrives first
    row = await loop_row(reporting_engine, story.case_id)
    assert (row["closed"], row["closed_at"], row["final_closed_at"], row["state"]) == \
        (False, at(2, 12, 0), at(2, 12, 0), "dispatched")
    assert (row["outcome"], row["satisfaction"]) == ("unresolved", "dissatisfied")  # the first closure's, kept


async def test_a_recategorization_wins_over_the_report_in_any_order(reporting_engine):
    tenant = unique_tenant()
    other_place = "990102001002001"
    for report_last in (False, True):
        story = (CaseStory(tenant, f"C{report_last}", at(1, 9, 0)).accept_and_file(at(1, 9, 0))
                 .dispatch(at(1, 9, 0), "housing")
                 .step("recategorize", "filed", at(1, 10, 0), department="triage", place=other_place,
                       category_code="100110")
                 .dispatch(at(1, 10, 0), "ecology_environment", category_code="100110"))
        events = story.events[1:] + story.events[:1] if report_last else story.events
        await fold_each(reporting_engine, events)
        row = await loop_row(reporting_engine, story.case_id)
        assert (row["category_code"], row["place_code"], row["recategorize_count"]) == ("100110", other_place, 1)


async def test_steps_one_row_each_redelivery_changes_nothing(reporting_engine):
    from services.reporting.db import case_steps as cs
    from tests.casestory import history_case

    tenant = unique_tenant()
    story = reopened_story(tenant)
    history = history_case(tenant, "H", at(1, 8, 0), "housing", transfers=[("health", at(1, 12, 0))],
                           closed_at=at(2, 8, 0))
    await fold_each(reporting_engine, [*story.events, *story.events[3:6], *history])
    async with reporting_engine.connect() as conn:
        rows = (await conn.execute(sa.select(cs.c.case_id, cs.c.sequence, cs.c.action, cs.c.department,
                                             cs.c.from_department, cs.c.history)
                                   .where(cs.c.tenant == tenant).order_by(cs.c.case_id, cs.c.sequence))).all()
    live = [(r.sequence, r.action) for r in rows if r.case_id == story.case_id]
    # accept, file, dispatch, acknowledge, start, resolve, begin_check, verify_pass, callback,
    # reopen, acknowledge … verify_pass, callback: 16 transitions, once each
    assert [seq for seq, _ in live] == list(range(1, 17))
    assert [a for _, a in live][:3] == ["accept", "file", "dispatch"] and live[9] == (10, "reopen")
    recorded = [(r.sequence, r.action, r.department, r.from_department, r.history) for r in rows
                if r.case_id == history[0].case_id]
    # the recorded dispatch is step 0, the recorded transfer step 1 (the closure is no step)
    assert recorded == [(0, "dispatch", "housing", None, True), (1, "transfer", "health", "housing", True)]


async def test_dashboard_opens_on_the_tenant_with_the_most_recent_case(reporting_engine):
    """services/reporting/dashboard.py: ``latest_reports`` reads each tenant's latest reported_at;
    the later of two tenants is the opening one, a tenant without cases has none."""
    from services.reporting.dashboard import latest_reports, opening_tenant

    older, newer, empty = unique_tenant(), unique_tenant(), unique_tenant()
    times = {older: [at(3, 9, 0), at(4, 9, 0)], newer: [at(2, 9, 0), at(5, 8, 0)]}
    events = [CaseReported(event_id=uuid.uuid4(), case_id=uuid.uuid4(), tenant=tenant, place_code=DEMO_GRID_GRID,
                           occurred_at=when, reported_at=when, category_code="100401")
              for tenant, whens in times.items() for when in whens]
    async with reporting_engine.begin() as conn:
        await apply_events(conn, events)
    latest = await latest_reports(reporting_engine, [older, newer, empty])
    assert latest == {older: at(4, 9, 0), newer: at(5, 8, 0), empty: None}
    assert opening_tenant([older, newer, empty], latest) == newer
