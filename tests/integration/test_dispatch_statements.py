"""Dispatch sends the same SQL texts whatever a batch's size (issue 13, "every service under
250 MB RSS after 1,000,000 reports").

SQLAlchemy's asyncpg adapter prepares every distinct statement text and keeps it in each pooled
connection's prepared-statement cache (100 statements, pruned only beyond 150). A text that depends
on the batch's size — an executemany with ``RETURNING`` (sent as one multi-row ``VALUES`` per
batch) or an ``IN`` list (one parameter per value) — is a new statement for every size, and under
a soak dispatch's resident memory grew with them. Here batches of one and of three are applied
through ``apply_batch`` (reports, then actions on those cases: ``acknowledge`` reschedules,
``cancel`` looks up merged duplicates) and the texts each sends are compared.

Runs in one rolled-back transaction (the fixtures of test_dispatch_closed_loop), so the running
services never see these cases.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event

from shared.contract.events import CaseReported
from tests.integration import test_dispatch_closed_loop as closed_loop
from tests.integration.helpers import DEMO_GRID_GRID
from tests.integration.test_dispatch_closed_loop import TENANT, Book, at

pytestmark = pytest.mark.integration

# dispatch's migrated engine and a rolled-back connection (the fixtures of test_dispatch_closed_loop)
dispatch_engine, dispatch_conn = closed_loop.dispatch_engine, closed_loop.dispatch_conn


def grid_report(case_id: uuid.UUID) -> CaseReported:
    return CaseReported(event_id=uuid.uuid4(), occurred_at=at(3, 11), case_id=case_id, tenant=TENANT,
                        place_code=DEMO_GRID_GRID, category_code="100102", channel="grid_worker", reported_at=at(3, 11))


async def _texts_of(conn, batches: list[tuple]) -> set[str]:
    """The statement texts sent to the driver while the ``(now, events)`` batches are applied."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):
        sent.append(statement)

    target = conn.sync_connection  # the test's connection (one made before an engine listener would not see it)
    event.listen(target, "before_cursor_execute", record)
    try:
        book = Book(conn, uuid.uuid4())
        for now, events in batches:
            await book.batch(now, *events)
    finally:
        event.remove(target, "before_cursor_execute", record)
    # the test's own reads of the outbox (Book.batch) are the same for any size and stay in; the
    # savepoints around each batch are numbered (sa_savepoint_<n>) and are not dispatch's
    return {s for s in sent if "SAVEPOINT" not in s}


async def _run(conn, size: int) -> set[str]:
    cases = [uuid.uuid4() for _ in range(size)]
    books = [Book(conn, c) for c in cases]
    return await _texts_of(conn, [
        (at(3, 11), [grid_report(c) for c in cases]),
        (at(3, 12), [b.act("acknowledge", at(3, 12)) for b in books]),
        (at(3, 13), [b.act("cancel", at(3, 13), note="撤销") for b in books]),
    ])


async def test_a_batch_of_three_sends_the_texts_a_batch_of_one_sends(dispatch_conn):
    one = await _run(dispatch_conn, 1)
    three = await _run(dispatch_conn, 3)
    # the same statements, not one more per size (a multi-row VALUES or an IN list differs)
    assert three == one
    # and the cases table's INSERT is among them (the comparison covers the insert path): one text
    assert len([s for s in one if s.startswith('INSERT INTO "dispatch"."cases"') or
                s.startswith("INSERT INTO dispatch.cases")]) == 1
