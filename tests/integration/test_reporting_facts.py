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
from shared.contract.events import CaseClosed, CaseDispatched, CaseReported, CaseStatusRecorded, CaseTransferred
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
    dispatch to the new department: services/dispatch/domain/lifecycle.py). The row must follow the
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
