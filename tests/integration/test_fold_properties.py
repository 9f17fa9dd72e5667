"""Property test of the fold (shared/domain/casefacts.py, shared/domain/casesteps.py) on the real
PostgreSQL: any arrival order, with redeliveries and any batching, through the consumer's
BatchProcessor (which drops the redeliveries via ``processed_events``), gives the same
``reporting.case_facts`` row and the same ``reporting.case_steps`` rows as the events in their
natural order, one by one. The transitions include the closed loop (issue 12): acceptance,
closures with outcomes, callbacks, reopens and recategorizations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting.db import case_facts as cf
from services.reporting.db import case_steps, processed_events
from services.reporting.handlers import apply_events
from shared.contract.actions import OUTCOMES, SATISFACTIONS
from shared.contract.events import (
    CaseDispatched,
    CaseReported,
    CaseSupervised,
    CaseTransitioned,
    encode_event,
)
from shared.platform.consumer import BatchProcessor
from tests.integration.helpers import DEMO_GRID_GRID, make_record, unique_tenant

pytestmark = pytest.mark.integration

EXAMPLES = 60
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
#: columns compared; ``deadline`` is checked separately (it was order-dependent until deadline_seq)
COLUMNS = [c for c in cf.c if c.name not in ("case_id", "updated_at", "deadline")]
STATES = ["acknowledged", "in_progress", "resolved", "closed", "filed", "dispatched", "rejected", "cancelled"]
#: (action, from_state, to_state) of the transitions drawn: the closed loop's kinds, several times
#: each closure and reopen so that a case often closes, reopens and closes again.
KINDS = [("act", "dispatched", "acknowledged"), ("verify_pass", "checking", "closed"),
         ("verify_pass", "checking", "closed"), ("mediation_agreement", "mediating", "closed"),
         ("callback", "closed", "closed"), ("reopen", "closed", "dispatched"), ("reopen", "closed", "mediating"),
         ("recategorize", "dispatched", "filed"), ("accept", "reported", "accepted"),
         ("reject", "reported", "rejected"), ("cancel", "dispatched", "cancelled"), ("act", "in_progress", "resolved")]
STEP_COLUMNS = [c for c in case_steps.c if c.name != "case_id"]


@st.composite
def live_case(draw):
    """A live case's events as dispatch emits them: report, first dispatch, transitions with
    growing sequence and time, supervision alerts."""
    case_id = uuid.uuid4()
    base = {"case_id": case_id, "tenant": draw(st.just("t")), "place_code": DEMO_GRID_GRID}
    t = T0
    maybe = lambda values: st.sampled_from([None, *values])  # noqa: E731
    events = [CaseReported(event_id=uuid.uuid4(), occurred_at=t, reported_at=t, category_code="100401",
                           channel=draw(st.sampled_from(["grid_worker", "phone"])), urgency="紧急", **base),
              CaseDispatched(event_id=uuid.uuid4(), occurred_at=t + timedelta(minutes=5), target_kind="department",
                             department="housing", rule="r", deadline=t + timedelta(days=3), sequence=1,
                             category_code=draw(maybe(["100402"])), **base)]
    counts = {"transfer_count": 0, "return_count": 0, "rework_count": 0, "supervision_level": 0, "reopen_count": 0,
              "recategorize_count": 0}
    for seq in range(2, 2 + draw(st.integers(0, 9))):
        t += timedelta(minutes=draw(st.integers(0, 600)))
        for key in counts:
            counts[key] += draw(st.integers(0, 1))
        place = draw(st.sampled_from([DEMO_GRID_GRID, "990102001002001"]))
        action, from_state, to_state = draw(st.one_of(
            st.sampled_from(KINDS), st.tuples(st.just("act"), st.sampled_from(STATES), st.sampled_from(STATES))))
        events.append(CaseTransitioned(
            event_id=uuid.uuid4(), occurred_at=t, action=action, from_state=from_state, to_state=to_state,
            actor_role="department_staff", sequence=seq,
            department=draw(st.sampled_from([None, "housing", "urban_management"])),
            from_department=draw(maybe(["housing", "urban_management"])),
            mediation_level=draw(maybe(["grid", "street"])), from_mediation_level=draw(maybe(["grid"])),
            target_kind=draw(st.sampled_from([None, "department"])),
            deadline=draw(st.sampled_from([None, t + timedelta(days=2)])),
            outcome=draw(maybe(OUTCOMES)), satisfaction=draw(maybe(SATISFACTIONS)),
            resident_resolved=draw(maybe([True, False])), category_code=draw(maybe(["100110", "100402"])),
            **counts, **{**base, "place_code": place}))
    for level in draw(st.lists(st.integers(0, 2), max_size=2)):
        events.append(CaseSupervised(event_id=uuid.uuid4(), occurred_at=t, alert="red", level=level, **base))
    return events


async def fold_through_consumer(engine, tenant: str, batches: list[list], tz=None) -> None:
    """Fold ``batches`` (events, their tenant set to ``tenant``) through the consumer's
    BatchProcessor, one ``process`` call per batch; ``tz``: the tenant's days cut in that zone."""
    handler = apply_events if tz is None else (lambda conn, events: apply_events(conn, events, tz_of=lambda t: tz))
    processor = BatchProcessor(f"prop-{uuid.uuid4().hex[:8]}", engine, processed_events, handler,
                               dlq_producer=None, max_attempts=1)
    offset = 0
    for batch in batches:
        records = []
        for ev in batch:
            ev = ev.model_copy(update={"tenant": tenant})
            records.append(make_record("gridcase.lifecycle", 0, offset, str(ev.case_id).encode(), encode_event(ev)))
            offset += 1
        await processor.process(records)


async def row_of(engine, case_id: uuid.UUID, columns) -> dict:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(*columns).where(cf.c.case_id == case_id))).one()
    return dict(row._mapping)


async def steps_of(engine, case_id: uuid.UUID) -> list[dict]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*STEP_COLUMNS).where(case_steps.c.case_id == case_id)
                                   .order_by(case_steps.c.sequence))).all()
    return [dict(r._mapping) for r in rows]


def _rekey(events: list) -> list:
    """The same events for a fresh case id (so each fold gets a row of its own)."""
    case_id = uuid.uuid4()
    return [e.model_copy(update={"case_id": case_id}) for e in events]


def _shuffled_with_redeliveries(data, events):
    order = data.draw(st.permutations(events))
    extra = data.draw(st.lists(st.sampled_from(events), max_size=4))
    stream = list(order)
    for ev in extra:
        stream.insert(data.draw(st.integers(0, len(stream))), ev)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if b > a]


async def _fold_twice(reporting_engine, data, columns):
    events = data.draw(live_case())
    tenant = unique_tenant()
    natural = _rekey(events)
    await fold_through_consumer(reporting_engine, tenant, [[e] for e in natural])
    shuffled = _rekey(events)
    await fold_through_consumer(reporting_engine, tenant, _shuffled_with_redeliveries(data, shuffled))
    expected = await row_of(reporting_engine, natural[0].case_id, columns)
    got = await row_of(reporting_engine, shuffled[0].case_id, columns)
    if columns is COLUMNS:  # and the same steps, each once
        expected["steps"] = await steps_of(reporting_engine, natural[0].case_id)
        got["steps"] = await steps_of(reporting_engine, shuffled[0].case_id)
        assert len(expected["steps"]) == len(events) - 1 - sum(isinstance(e, CaseSupervised) for e in events)
    return expected, got, len(events)


COUNT = {"examples": 0}


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_any_order_redeliveries_and_batching_give_the_same_row(reporting_engine, data):
    expected, got, n = await _fold_twice(reporting_engine, data, COLUMNS)
    COUNT["examples"] += 1
    assert got == expected
    assert got["event_count"] == n


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_deadline_does_not_depend_on_arrival_order(reporting_engine, data):
    expected, got, _ = await _fold_twice(reporting_engine, data, [cf.c.deadline])
    assert got == expected


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_a_batch_of_several_cases_gives_each_the_row_of_its_events_one_by_one(reporting_engine, data):
    """Batches that hold the same kind of event of several cases (the j-th event of each: the fold
    sends such a group as one statement, casefacts.py ``unnest_upsert``, issue 13) give every case
    the row and the steps of its events folded one by one."""
    cases = data.draw(st.lists(live_case(), min_size=2, max_size=4))
    tenant = unique_tenant()
    alone = [_rekey(events) for events in cases]
    await fold_through_consumer(reporting_engine, tenant, [[e] for events in alone for e in events])
    together = [_rekey(events) for events in cases]
    longest = max(len(events) for events in together)
    await fold_through_consumer(reporting_engine, tenant,
                                [[events[j] for events in together if j < len(events)] for j in range(longest)])
    for one, many in zip(alone, together, strict=True):
        expected = await row_of(reporting_engine, one[0].case_id, [*COLUMNS, cf.c.deadline])
        got = await row_of(reporting_engine, many[0].case_id, [*COLUMNS, cf.c.deadline])
        expected["steps"] = await steps_of(reporting_engine, one[0].case_id)
        got["steps"] = await steps_of(reporting_engine, many[0].case_id)
        assert got == expected
        assert got["event_count"] == len(one)
