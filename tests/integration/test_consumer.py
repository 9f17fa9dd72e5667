"""``shared.platform.consumer.BatchProcessor`` with the real PostgreSQL and the real broker.

Expected behaviour from the module docstring of shared/platform/consumer.py: each event is applied once per
consumer (``processed_events`` insert with ``ON CONFLICT DO NOTHING`` in the same transaction), and
a record that can never be processed (invalid JSON, unknown event type, unsupported schema version)
goes to ``<topic>.dlq`` with headers naming the error, source topic, partition, offset and attempts.
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from services.reporting import db as reporting_db
from services.reporting.handlers import apply_events
from shared.contract.events import (
    CaseDispatched,
    CaseReported,
    CaseTransferred,
    encode_event,
)
from shared.contract.topics import TOPIC_LIFECYCLE, TOPIC_REPORTED, dlq
from shared.platform.consumer import BatchProcessor
from shared.platform.stream import DlqProducer
from tests.integration.helpers import (
    DEMO_GRID_GRID,
    at,
    make_record,
    unique_tenant,
    wait_for_records,
)

pytestmark = pytest.mark.integration

cf = reporting_db.case_facts


@pytest.fixture
async def dlq_producer(infra):
    producer = DlqProducer(infra.kafka_bootstrap, f"it-dlq-{uuid.uuid4().hex[:8]}")
    yield producer
    await producer.stop()


def processor(engine, dlq_producer: DlqProducer) -> BatchProcessor:
    """A processor with a consumer name of its own, folding into reporting's case_facts."""
    return BatchProcessor(
        f"it-{uuid.uuid4().hex}",
        engine,
        reporting_db.processed_events,
        apply_events,
        dlq_producer.get,
        max_attempts=2,
        base_backoff_seconds=0.1,
    )


def three_events(tenant: str):
    case_id = uuid.uuid4()
    base = {"case_id": case_id, "tenant": tenant, "place_code": DEMO_GRID_GRID}
    return case_id, [
        CaseReported(event_id=uuid.uuid4(), occurred_at=at(2), reported_at=at(2), category_code="100401", **base),
        CaseDispatched(
            event_id=uuid.uuid4(), occurred_at=at(2, 9, 5), target_kind="department", department="housing",
            rule="taxonomy:100401", **base,
        ),
        CaseTransferred(
            event_id=uuid.uuid4(), occurred_at=at(2, 10), from_department="housing",
            to_department="urban_management", sequence=1, **base,
        ),
    ]


async def fact_row(engine, case_id):
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(cf.c.event_count, cf.c.transfer_count, cf.c.department, cf.c.reported_at).where(
                    cf.c.case_id == case_id
                )
            )
        ).one()


async def test_processing_the_same_records_twice_applies_each_event_once(reporting_engine, dlq_producer):
    case_id, events = three_events(unique_tenant())
    records = [
        make_record(TOPIC_REPORTED if i == 0 else TOPIC_LIFECYCLE, 0, 100 + i, str(case_id).encode(), encode_event(ev))
        for i, ev in enumerate(events)
    ]
    proc = processor(reporting_engine, dlq_producer)

    first = await proc.process(records)
    assert (first.applied, first.duplicates, first.dead_lettered) == (3, 0, 0)
    assert {e.event_id for e in first.events} == {e.event_id for e in events}

    second = await proc.process(records)  # a redelivery of the same batch
    assert (second.applied, second.duplicates, second.dead_lettered) == (0, 3, 0)
    assert second.events == []

    row = await fact_row(reporting_engine, case_id)
    assert row.event_count == 3
    assert row.transfer_count == 1
    assert row.department == "urban_management"

    async with reporting_engine.connect() as conn:
        processed = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(reporting_db.processed_events)
                .where(reporting_db.processed_events.c.consumer == proc.consumer)
            )
        ).scalar_one()
    assert processed == 3


async def test_a_record_repeated_inside_one_batch_is_applied_once(reporting_engine, dlq_producer):
    case_id, events = three_events(unique_tenant())
    key = str(case_id).encode()
    report = make_record(TOPIC_REPORTED, 1, 7, key, encode_event(events[0]))
    again = make_record(TOPIC_REPORTED, 1, 8, key, encode_event(events[0]))
    outcome = await processor(reporting_engine, dlq_producer).process([report, again])
    assert (outcome.applied, outcome.duplicates) == (1, 1)
    assert (await fact_row(reporting_engine, case_id)).event_count == 1


async def test_poison_records_go_to_the_dead_letter_topic_and_the_rest_is_applied(infra, reporting_engine, dlq_producer):
    tenant = unique_tenant()
    case_id, events = three_events(tenant)
    run = uuid.uuid4().hex
    keys = {name: f"it-dlq-{run}-{name}".encode() for name in ("malformed", "unknown-type", "bad-version")}

    unknown_type = json.loads(encode_event(events[0]))
    unknown_type.update(event_type="case.reopened", event_id=str(uuid.uuid4()))
    bad_version = events[0].model_copy(update={"event_id": uuid.uuid4(), "schema_version": 99})

    partition = 4
    poison = {
        "malformed": (b'{"event_type": "case.reported", "case_id": ', 5001, "ValidationError"),
        "unknown-type": (json.dumps(unknown_type).encode(), 5003, "ValidationError"),
        "bad-version": (encode_event(bad_version), 5004, "UnsupportedSchemaVersion"),
    }
    records = [
        make_record(TOPIC_REPORTED, partition, 5000, str(case_id).encode(), encode_event(events[0])),
        make_record(TOPIC_REPORTED, partition, 5001, keys["malformed"], poison["malformed"][0]),
        make_record(TOPIC_REPORTED, partition, 5002, str(case_id).encode(), encode_event(events[1])),
        make_record(TOPIC_REPORTED, partition, 5003, keys["unknown-type"], poison["unknown-type"][0]),
        make_record(TOPIC_REPORTED, partition, 5004, keys["bad-version"], poison["bad-version"][0]),
    ]
    proc = processor(reporting_engine, dlq_producer)

    outcome = await proc.process(records)

    assert outcome.dead_lettered == 3
    assert outcome.applied == 2
    assert {e.event_id for e in outcome.events} == {events[0].event_id, events[1].event_id}
    row = await fact_row(reporting_engine, case_id)
    assert row.event_count == 2 and row.department == "housing" and row.reported_at == at(2)

    wanted = set(keys.values())
    letters = await wait_for_records(
        infra.kafka_bootstrap, dlq(TOPIC_REPORTED), lambda r: r.key in wanted, count=3, timeout_s=30
    )
    by_key = {r.key: r for r in letters}
    assert len(letters) == 3 and set(by_key) == wanted, [(r.key, dict(r.headers)) for r in letters]
    for name, (value, offset, error_type) in poison.items():
        letter = by_key[keys[name]]
        assert letter.topic == "gridcase.case.reported.dlq"
        assert letter.value == value  # the original bytes, unchanged
        headers = dict(letter.headers)
        assert {"dlq.error", "dlq.source_topic", "dlq.source_partition", "dlq.source_offset", "dlq.attempts"} <= set(headers)
        assert headers["dlq.error"].decode().startswith(f"{error_type}: "), headers["dlq.error"]
        assert headers["dlq.source_topic"] == TOPIC_REPORTED.encode()
        assert headers["dlq.source_partition"] == str(partition).encode()
        assert headers["dlq.source_offset"] == str(offset).encode()
        assert int(headers["dlq.attempts"]) >= 1
        assert headers["dlq.consumer"] == proc.consumer.encode()

    # nothing else of this batch was dead-lettered
    valid_keys = {str(case_id).encode()}
    assert not await wait_for_records(
        infra.kafka_bootstrap, dlq(TOPIC_REPORTED), lambda r: r.key in valid_keys, count=1, timeout_s=1.5
    )
