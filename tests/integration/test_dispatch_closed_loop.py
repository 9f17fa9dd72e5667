"""Dispatch's case book against the real PostgreSQL: the closed loop of issue 12 through
services/dispatch/handlers.py ``apply_batch`` (the consumer's batch handler) and
services/dispatch/store.py — the context of a correction (the tenant's route and limit for the new
category), the refusals, the row's columns and the events in the outbox with their action ids.

The test runs in one transaction that is rolled back at its end (each batch in a savepoint, as the
consumer's own transaction): the case it writes into dispatch's tables is never seen by the running
services, whose figures other tests compare (dispatch's cases against reporting's, per tenant).

Times are Asia/Shanghai in March 2025 (no public holiday; 2025-03-03 is a Monday). Expected
values are worked out by hand beside each assertion (docs/domain.md §3(c)6, §3(c)10, §3(d)3).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import pytest_asyncio
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from services.dispatch import db
from services.dispatch.handlers import apply_batch
from services.dispatch.main import MIGRATIONS
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.store import CaseBook
from shared.contract.events import CaseActionRequested, CaseReported, decode_event
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import load_all_tenants
from shared.platform.db import make_engine, run_migrations_async
from tests.integration.helpers import CST, DEMO_GRID_GRID

pytestmark = pytest.mark.integration

TENANT = "demo-grid"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=CST)


class FixedClock:
    """A clock the test sets by hand."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dispatch_engine(infra):
    await run_migrations_async(infra.database_url, MIGRATIONS, db.SCHEMA)
    engine = make_engine(infra.database_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def dispatch_conn(dispatch_engine):
    """A connection in a transaction that is rolled back when the test ends."""
    async with dispatch_engine.connect() as conn:
        outer = await conn.begin()
        try:
            yield conn
        finally:
            await outer.rollback()


class Book:
    """Feeds batches to ``apply_batch`` and reads back what dispatch stored and published."""

    def __init__(self, conn, case_id: uuid.UUID) -> None:
        self.conn = conn
        self.case_id = case_id
        self.clock = FixedClock(at(3, 11))
        self.book = CaseBook(load_all_tenants(), load_taxonomy(), self.clock)
        self.metrics = DispatchMetrics.register(CollectorRegistry())
        self.seen = 0

    async def batch(self, now: datetime, *events) -> list:
        """Apply ``events`` at ``now``; return the events this batch put in the outbox."""
        self.clock.at = now
        async with self.conn.begin_nested():
            await apply_batch(self.conn, list(events), book=self.book, metrics=self.metrics)
        o = db.outbox
        rows = (await self.conn.execute(sa.select(o.c.payload).where(o.c.key == str(self.case_id))
                                    .order_by(o.c.id))).scalars().all()
        fresh, self.seen = rows[self.seen:], len(rows)
        return [decode_event(p) for p in fresh]

    def act(self, action: str, when: datetime, action_id: uuid.UUID | None = None, **kw) -> CaseActionRequested:
        return CaseActionRequested(event_id=uuid.uuid4(), occurred_at=when, case_id=self.case_id, tenant=TENANT,
                                   place_code=DEMO_GRID_GRID, action=action, actor_role="city_ops",
                                   action_id=action_id, **kw)

    async def row(self):
        c = db.cases
        return (await self.conn.execute(sa.select(c).where(c.c.case_id == self.case_id))).mappings().one()


async def test_correction_closure_callback_reopen_and_refusals(dispatch_conn):
    case_id = uuid.uuid4()
    b = Book(dispatch_conn, case_id)
    report = CaseReported(event_id=uuid.uuid4(), occurred_at=at(3, 11), case_id=case_id, tenant=TENANT,
                          place_code=DEMO_GRID_GRID, category_code="100401", channel="grid_worker",
                          reported_at=at(3, 11))
    # a grid worker's report: accepted, filed and dispatched at once (seq 1-3), housing, 5 WD:
    # Mon 03-03 11:00 + 5 WD = Mon 03-10 11:00
    events = await b.batch(at(3, 11), report)
    assert [e.event_type for e in events] == ["case.transitioned"] * 2 + ["case.dispatched"]
    assert (events[-1].department, events[-1].deadline) == ("housing", at(10, 11))

    # 改类 on Tue 10:00 to 垃圾扰民 (urban management, 4 working hours): leaves housing (seq 4),
    # dispatched to urban management (seq 5); deadline = first dispatch Mon 11:00 + 4 h = Mon 15:00
    fix = uuid.uuid4()
    events = await b.batch(at(4, 10), b.act("recategorize", at(4, 10), fix, category_code="100102"))
    moved, sent = events
    assert (moved.action, moved.from_state, moved.to_state, moved.sequence) == ("recategorize", "dispatched", "filed", 4)
    assert (moved.from_department, moved.category_code, moved.recategorize_count) == ("housing", "100102", 1)
    assert (sent.event_type, sent.department, sent.from_department, sent.sequence) == (
        "case.dispatched", "urban_management", "triage", 5)
    assert sent.deadline == at(3, 15) and sent.rule == "taxonomy:100102"
    assert moved.action_id == sent.action_id == fix
    row = await b.row()
    assert (row["category_code"], row["department"], row["status"]) == ("100102", "urban_management", "dispatched")

    # acknowledged, started, resolved (partly), checked on Wed: seq 6-10, closed with partly_resolved
    steps = [("acknowledge", {}), ("start", {}), ("resolve", {"outcome": "partly_resolved"}), ("verify_pass", {})]
    events = await b.batch(at(5, 9), *(b.act(a, at(5, 9, i), **kw) for i, (a, kw) in enumerate(steps)))
    assert [(e.action, e.outcome) for e in events] == [
        ("acknowledge", None), ("start", None), ("resolve", "partly_resolved"), ("begin_check", None),
        ("verify_pass", "partly_resolved")]
    assert all(e.action_id is not None for e in events)  # each names its request (event id: no action_id)
    row = await b.row()
    assert (row["status"], row["closed_at"]) == ("closed", at(5, 9))

    # 回访 Thu 09:00: the case stays closed, closed_at keeps the closure time
    (called,) = await b.batch(at(6, 9), b.act("callback", at(6, 9), satisfaction="dissatisfied",
                                               resident_resolved=False))
    assert (called.from_state, called.to_state, called.satisfaction, called.resident_resolved) == (
        "closed", "closed", "dissatisfied", False)
    assert (await b.row())["closed_at"] == at(5, 9)

    # 重办 Thu 10:00: back to urban management, 4 working hours from now = Thu 14:00; reopened
    (reopened,) = await b.batch(at(6, 10), b.act("reopen", at(6, 10), note="群众不满意"))
    assert (reopened.to_state, reopened.department, reopened.deadline, reopened.reopen_count) == (
        "dispatched", "urban_management", at(6, 14), 1)
    row = await b.row()
    assert (row["status"], row["closed_at"]) == ("dispatched", None)

    # refusals name the request and the reason; nothing changes
    unknown = b.act("recategorize", at(6, 11), category_code="999999")
    (refused,) = await b.batch(at(6, 11), unknown)
    assert refused.event_type == "case.action_rejected" and refused.action_id == unknown.event_id
    assert "not in the taxonomy" in refused.reason and refused.state == "dispatched"
    elsewhere = uuid.uuid4()
    (refused,) = await b.batch(at(6, 12), b.act("recategorize", at(6, 12), elsewhere, category_code="100110",
                                                 to_place_code="880101001"))
    assert refused.action_id == elsewhere and "not a place of tenant 'demo-grid'" in refused.reason
    (refused,) = await b.batch(at(6, 13), b.act("merge_duplicate", at(6, 13), duplicate_of=case_id))
    assert "itself" in refused.reason
    row = await b.row()
    assert (row["status"], row["category_code"], row["place_code"], row["seq"]) == (
        "dispatched", "100102", DEMO_GRID_GRID, 12)


async def test_merge_duplicate_looks_up_the_original(dispatch_conn):
    """合并重复件 (issue 15 item 3) through the case book: the original is read from dispatch's own
    rows (locked with the case acted on, store.py ``apply_actions``): a case it does not hold,
    a case of another tenant and a merged duplicate are refused; an open case of the same tenant
    is merged into, and the event and the row say so (cancelled, outcome duplicate, the original)."""
    def grid_report(case_id: uuid.UUID, tenant: str = TENANT, place: str = DEMO_GRID_GRID) -> CaseReported:
        return CaseReported(event_id=uuid.uuid4(), occurred_at=at(3, 11), case_id=case_id, tenant=tenant,
                            place_code=place, category_code="100102", channel="grid_worker", reported_at=at(3, 11))

    original, duplicate, late, foreign = (uuid.uuid4() for _ in range(4))
    first, second, third = Book(dispatch_conn, original), Book(dispatch_conn, duplicate), Book(dispatch_conn, late)
    await first.batch(at(3, 11), grid_report(original), grid_report(duplicate), grid_report(late),
                      grid_report(foreign, "demo-market", "990101001001001"))
    assert (await second.batch(at(3, 11)))[-1].event_type == "case.dispatched"  # all three are open
    await third.batch(at(3, 11))

    nowhere = uuid.uuid4()
    (refused,) = await second.batch(at(3, 12), second.act("merge_duplicate", at(3, 12), duplicate_of=nowhere))
    assert refused.event_type == "case.action_rejected" and "not a case dispatch holds" in refused.reason
    (refused,) = await second.batch(at(3, 12), second.act("merge_duplicate", at(3, 12), duplicate_of=foreign))
    assert "not a case dispatch holds" in refused.reason  # as for an unknown id: no oracle of other tenants

    (merged,) = await second.batch(at(3, 13), second.act("merge_duplicate", at(3, 13), duplicate_of=original))
    assert (merged.action, merged.from_state, merged.to_state, merged.outcome, merged.duplicate_of) == (
        "merge_duplicate", "dispatched", "cancelled", "duplicate", original)
    assert (await second.row())["status"] == "cancelled"
    assert (await first.row())["status"] == "dispatched"  # the original is untouched

    # a third report named a duplicate of the merged one: refused, naming the case that counts
    (refused,) = await third.batch(at(3, 14), third.act("merge_duplicate", at(3, 14), duplicate_of=duplicate))
    assert f"itself a duplicate of {original}" in refused.reason
