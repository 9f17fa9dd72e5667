"""Adversarial merges (issue 15, hbreak): cycles and chains decided within one batch of dispatch.

Dispatch decides a batch's actions one after the other in memory (store.py ``apply_actions``), so a
later merge in the same batch must see what an earlier one did to the original it names.
Every case here is new (uuid4) and the connection's transaction is rolled back at the end.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.dispatch import db
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


async def test_a_cycle_within_one_batch_is_refused(dispatch_conn):
    """A→B and B→A in one batch: the first merge applies (A cancelled, duplicate of B); the second
    must be refused (as it would be in the next batch) and B stays open. Otherwise both are
    cancelled duplicates of each other and the matter counts nowhere. Two rules refuse it: A is now
    a merged duplicate, and B now has one (A); the second is checked first (a guard of B's own
    state, lifecycle/guards.py), so the refusal names A as B's merged duplicate."""
    a, b = uuid.uuid4(), uuid.uuid4()
    ba, bb = Book(dispatch_conn, a), Book(dispatch_conn, b)
    await ba.batch(at(3, 11), grid_report(a), grid_report(b))
    await bb.batch(at(3, 11))
    (merged,) = await ba.batch(at(3, 12), ba.act("merge_duplicate", at(3, 12), duplicate_of=b),
                               bb.act("merge_duplicate", at(3, 12), duplicate_of=a))
    assert (merged.action, merged.to_state) == ("merge_duplicate", "cancelled")
    (refused,) = await bb.batch(at(3, 12))
    assert refused.event_type == "case.action_rejected" and refused.reason.startswith(
        "原件有合并重复件 1 case(s) merged into this case as its duplicates count as this case")
    assert (await bb.row())["status"] == "dispatched"


async def test_cancelling_the_original_and_merging_onto_it_in_one_batch(dispatch_conn):
    """Cancel B, then merge A onto B, in one batch: B is cancelled when the merge is decided, so the
    merge is refused ("it is not counted") and A stays open: one open case, as in two batches."""
    a, b = uuid.uuid4(), uuid.uuid4()
    ba, bb = Book(dispatch_conn, a), Book(dispatch_conn, b)
    await ba.batch(at(3, 11), grid_report(a), grid_report(b))
    await bb.batch(at(3, 11))
    (refused,) = await ba.batch(at(3, 12), bb.act("cancel", at(3, 12), note="撤销"),
                                ba.act("merge_duplicate", at(3, 12), duplicate_of=b))
    assert refused.event_type == "case.action_rejected" and "is cancelled" in refused.reason
    assert ((await ba.row())["status"], (await bb.row())["status"]) == ("dispatched", "cancelled")


async def test_a_case_of_another_tenant_is_refused_as_one_dispatch_does_not_hold(dispatch_conn):
    """Another tenant's case named as the original: refused exactly as a case id dispatch does not
    hold, so a tenant's staff cannot learn through the refusal that an id is a case elsewhere (as
    intake answers 404 "no case" to a probe of another tenant's case). Expected by hand from
    lifecycle/outcomes.py ``original_of``: "原件不存在或尚未送达 the original case <id> is not a case
    dispatch holds (yet): …" (a hint to retry: intake has already refused ids the caller cannot see,
    so one dispatch does not hold is most likely still on its way)."""
    mine, foreign, nowhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    book = Book(dispatch_conn, mine)
    other = CaseReported(event_id=uuid.uuid4(), occurred_at=at(3, 11), case_id=foreign, tenant="demo-market",
                         place_code="990101001001001", category_code="100102", channel="grid_worker",
                         reported_at=at(3, 11))
    await book.batch(at(3, 11), grid_report(mine), other)
    for original in (foreign, nowhere):
        (refused,) = await book.batch(at(3, 12), book.act("merge_duplicate", at(3, 12), duplicate_of=original))
        assert refused.event_type == "case.action_rejected"
        assert refused.reason == (f"原件不存在或尚未送达 the original case {original} is not a case dispatch "
                                  "holds (yet): a case reported moments ago may not have reached dispatch; "
                                  "send the merge again shortly")


# --------------------------------------------------------------------------- an original with merged duplicates


async def test_an_original_with_a_merged_duplicate_is_neither_cancelled_nor_merged(dispatch_conn):
    """D merged into O; then O's cancellation and O's merge into P are refused, naming D (the
    duplicate counts as O, and only as O: docs/kpis.md §2); O stays dispatched. P merged into O
    applies: O is the root of both."""
    d, o, p = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    bd, bo, bp = Book(dispatch_conn, d), Book(dispatch_conn, o), Book(dispatch_conn, p)
    await bd.batch(at(3, 11), grid_report(d), grid_report(o), grid_report(p))
    await bo.batch(at(3, 11))
    await bp.batch(at(3, 11))
    (merged,) = await bd.batch(at(3, 12), bd.act("merge_duplicate", at(3, 12), duplicate_of=o))
    assert (merged.to_state, merged.duplicate_of) == ("cancelled", o)
    refused = await bo.batch(at(3, 13), bo.act("cancel", at(3, 13), note="作废"),
                             bo.act("merge_duplicate", at(3, 13), duplicate_of=p))
    assert [e.event_type for e in refused] == ["case.action_rejected"] * 2
    head = "原件有合并重复件 1 case(s) merged into this case as its duplicates count as this case: "
    assert refused[0].reason.startswith(head + "cancel would leave them counted nowhere")
    assert refused[1].reason == head + ("merged itself, it and they would name a case that counts nowhere; "
                                        "merge the other case into this one instead")
    assert not {"cancel", "merge_duplicate"} & set(refused[0].allowed_actions)
    assert (await bo.row())["status"] == "dispatched"
    (root,) = await bp.batch(at(3, 14), bp.act("merge_duplicate", at(3, 14), duplicate_of=o))
    assert (root.to_state, root.duplicate_of) == ("cancelled", o)


async def test_a_merge_and_the_original_s_cancellation_in_one_batch(dispatch_conn):
    """Merge D into O, then cancel O, in one batch: the cancellation sees the merge decided before it
    (store.py ``apply_actions``) and is refused, as in the next batch. The other order (cancel O,
    then merge D) is test_cancelling_the_original_and_merging_onto_it_in_one_batch."""
    d, o = uuid.uuid4(), uuid.uuid4()
    bd, bo = Book(dispatch_conn, d), Book(dispatch_conn, o)
    await bd.batch(at(3, 11), grid_report(d), grid_report(o))
    await bo.batch(at(3, 11))
    (merged,) = await bd.batch(at(3, 12), bd.act("merge_duplicate", at(3, 12), duplicate_of=o),
                               bo.act("cancel", at(3, 12), note="作废"))
    assert merged.to_state == "cancelled"
    (refused,) = await bo.batch(at(3, 12))
    assert refused.event_type == "case.action_rejected" and refused.reason.startswith("原件有合并重复件 1 case(s)")
    assert str(d) not in refused.reason  # counted, not named (guards.py merged_duplicates_refusal)
    assert ((await bd.row())["status"], (await bo.row())["status"]) == ("cancelled", "dispatched")


async def test_not_onto_a_public_report_awaiting_acceptance(dispatch_conn):
    """O, a phone report, waits for the clerk's ``accept`` (state reported: outside every figure,
    docs/kpis.md §2); D, a grid worker's report, is counted (accepted and filed at once). Merging D
    into O is refused: applied, it would take D out of 受理量 while O is not in it, so the matter
    would count only as 合并重复件 until O is accepted, and nowhere in 受理量 were O never accepted
    (its reject and cancel are refused once it has a merged duplicate). Once O is accepted, the
    same merge applies."""
    d, o = uuid.uuid4(), uuid.uuid4()
    bd, bo = Book(dispatch_conn, d), Book(dispatch_conn, o)
    phone = grid_report(o).model_copy(update={"channel": "phone"})
    await bd.batch(at(3, 11), grid_report(d), phone)
    await bo.batch(at(3, 11))
    assert (await bo.row())["status"] == "reported"
    (refused,) = await bd.batch(at(3, 12), bd.act("merge_duplicate", at(3, 12), duplicate_of=o))
    assert refused.event_type == "case.action_rejected"
    assert refused.reason.startswith(f"原件尚未受理 the original case {o} has not been accepted yet")
    assert (await bd.row())["status"] == "dispatched"
    (accepted,) = await bo.batch(at(3, 13), bo.act("accept", at(3, 13)))
    assert accepted.to_state == "accepted"
    (merged,) = await bd.batch(at(3, 14), bd.act("merge_duplicate", at(3, 14), duplicate_of=o))
    assert (merged.to_state, merged.outcome, merged.duplicate_of) == ("cancelled", "duplicate", o)


async def test_any_refusal_of_an_original_leaves_out_what_it_may_not_do(dispatch_conn):
    """D merged into O; then O is asked to ``verify_pass`` (not allowed while dispatched). The
    refusal lists the actions O allows (the API's 409 ``allowed_actions``): those of a dispatched
    case without a deadline — acknowledge, return, transfer, shelve, recategorize, cancel,
    merge_duplicate (docs/domain.md §3(c)3–4; tests/unit/test_merge_duplicate_edges.py) — less
    cancel and merge_duplicate, which O's merged duplicate forbids. The same refusal in a later
    batch and after the merge in the same batch."""
    d, o = uuid.uuid4(), uuid.uuid4()
    bd, bo = Book(dispatch_conn, d), Book(dispatch_conn, o)
    await bd.batch(at(3, 11), grid_report(d), grid_report(o))
    await bo.batch(at(3, 11))
    (refused,) = await bo.batch(at(3, 12), bo.act("verify_pass", at(3, 12)))  # before the merge: both listed
    assert {"cancel", "merge_duplicate"} <= set(refused.allowed_actions)
    (merged,) = await bd.batch(at(3, 12), bd.act("merge_duplicate", at(3, 12), duplicate_of=o),
                               bo.act("verify_pass", at(3, 12)))
    assert merged.to_state == "cancelled"
    (same_batch,) = await bo.batch(at(3, 12))
    (later,) = await bo.batch(at(3, 13), bo.act("verify_pass", at(3, 13)))
    for refused in (same_batch, later):
        assert refused.event_type == "case.action_rejected"
        assert set(refused.allowed_actions) >= {"acknowledge", "return", "transfer", "recategorize"}
        assert not {"cancel", "merge_duplicate"} & set(refused.allowed_actions), refused.allowed_actions



async def test_the_merged_duplicates_have_their_own_index(dispatch_conn):
    """CaseBook.merged_into looks cases up by the original they name (``lifecycle ->>
    'duplicate_of'`` IN the batch's ids): migration b7e3c9a41d25 indexes that expression for the
    cases that name one, so the lookup does not read every cancelled case of the tenant (50–70 ms
    with 100,000 of them, 1 ms with the index: EXPLAIN ANALYZE on the test machine, a bitmap
    scan of it; ``IN`` implies the index's ``IS NOT NULL``)."""
    (definition,) = (await dispatch_conn.execute(sa.text(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'dispatch' AND indexname = 'ix_dispatch_cases_duplicate_of'"
    ))).scalars().all()
    assert definition.endswith("ON dispatch.cases USING btree (((lifecycle ->> 'duplicate_of'::text))) "
                               "WHERE ((lifecycle ->> 'duplicate_of'::text) IS NOT NULL)"), definition


async def test_an_original_closed_as_unfounded_called_back_and_reopened_keeps_its_duplicate(dispatch_conn):
    """D merged into O; O is closed through the check as 不属实 (unfounded), called back (the
    resident dissatisfied) and reopened (重办): open again, it still may not be cancelled or
    merged into D's neighbour P (the refusals name D), and a later merge into it still applies."""
    d, o, p = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    bd, bo, bp = Book(dispatch_conn, d), Book(dispatch_conn, o), Book(dispatch_conn, p)
    await bd.batch(at(3, 11), grid_report(d), grid_report(o), grid_report(p))
    await bo.batch(at(3, 11))
    await bp.batch(at(3, 11))
    await bd.batch(at(3, 12), bd.act("merge_duplicate", at(3, 12), duplicate_of=o))
    steps = [("acknowledge", {}), ("start", {}), ("resolve", {"outcome": "unfounded"}), ("verify_pass", {})]
    events = await bo.batch(at(4, 9), *(bo.act(a, at(4, 9, i), **kw) for i, (a, kw) in enumerate(steps)))
    assert (events[-1].to_state, events[-1].outcome) == ("closed", "unfounded")
    (called,) = await bo.batch(at(5, 9), bo.act("callback", at(5, 9), satisfaction="dissatisfied",
                                                resident_resolved=False))
    assert called.to_state == "closed"
    (reopened,) = await bo.batch(at(5, 10), bo.act("reopen", at(5, 10), note="群众不满意"))
    assert reopened.to_state == "dispatched"
    refused = await bo.batch(at(5, 11), bo.act("cancel", at(5, 11), note="作废"),
                             bo.act("merge_duplicate", at(5, 11), duplicate_of=p))
    assert [e.event_type for e in refused] == ["case.action_rejected"] * 2
    assert all(e.reason.startswith("原件有合并重复件 1 case(s) merged into this case as its duplicates count as this case")
               for e in refused)
    assert (await bo.row())["status"] == "dispatched"
    (merged,) = await bp.batch(at(5, 12), bp.act("merge_duplicate", at(5, 12), duplicate_of=o))
    assert (merged.to_state, merged.duplicate_of) == ("cancelled", o)


# --------------------------------------------------------------------------- any sequence, any batching

#: the test's case book, kept across the examples (loading the tenants takes most of a Book's
#: making); its ``case_id`` is set to the case each command is for (what batch() returns is not read)
_BOOK: dict[str, Book] = {}

_OPS = st.one_of(
    st.tuples(st.just("merge_duplicate"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.sampled_from(["cancel", "reject", "accept"]), st.integers(0, 3), st.none()),
    st.tuples(st.just("cancel_duplicate"), st.integers(0, 3), st.integers(0, 3)),
)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_any_sequence_of_merges_and_cancellations_keeps_every_duplicate_s_original_counted(dispatch_conn, data):
    """Four cases (grid workers' reports, counted at once, and phone reports awaiting acceptance);
    a random sequence of merges (merge_duplicate, or cancel with outcome duplicate), cancellations,
    rejections and acceptances, cut into random batches, with actions of one batch in any order.
    Afterwards every merged duplicate (cancelled, outcome duplicate) names a case that counts
    (docs/kpis.md §2: accepted — not reported —, not rejected or cancelled), so no matter is
    counted nowhere and none twice."""
    channels = data.draw(st.lists(st.sampled_from(["grid_worker", "phone"]), min_size=4, max_size=4))
    ids = [uuid.uuid4() for _ in range(4)]
    book = _BOOK.get("book")
    if book is None or book.conn is not dispatch_conn:
        book = _BOOK["book"] = Book(dispatch_conn, ids[0])
    await book.batch(at(3, 11), *(grid_report(i).model_copy(update={"channel": ch})
                                  for i, ch in zip(ids, channels, strict=True)))
    ops = data.draw(st.lists(_OPS, min_size=1, max_size=8))
    minute = 0
    while ops:
        size = data.draw(st.integers(1, len(ops)))
        batch, ops = ops[:size], ops[size:]
        commands = []
        for action, who, other in batch:
            minute += 1
            book.case_id, when = ids[who], at(3, 12, minute % 60)
            if action == "cancel_duplicate":
                commands.append(book.act("cancel", when, outcome="duplicate", duplicate_of=ids[other]))
            elif action == "merge_duplicate":
                commands.append(book.act("merge_duplicate", when, duplicate_of=ids[other]))
            else:
                commands.append(book.act(action, when, note="x"))
        await book.batch(at(3, 13), *commands)
    c = db.cases
    rows = {r["case_id"]: r for r in (await dispatch_conn.execute(
        sa.select(c.c.case_id, c.c.status, c.c.lifecycle).where(c.c.case_id.in_(ids)))).mappings()}
    for row in rows.values():
        if row["status"] == "cancelled" and row["lifecycle"].get("outcome") == "duplicate":
            original = rows[uuid.UUID(row["lifecycle"]["duplicate_of"])]
            assert original["status"] not in ("cancelled", "rejected", "reported"), (row, original)
