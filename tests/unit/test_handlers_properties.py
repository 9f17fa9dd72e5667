"""Property tests of the event handlers' input side (issue 6 item 4): whatever a Kafka record
holds, shared/contract/events.py ``decode_event`` gives an event or a clean validation error, and
shared/platform/consumer.py ``decode_batch`` sorts every record into events or dead letters without raising
(a raise there would stop the consumer on a poison record and redeliver it forever).

Example counts: ``EXAMPLES`` per property, 300 in CI and a tenth locally (tests/hypothesis_profiles.py;
printed with ``pytest -s``)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contract.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseTransitioned,
    PatrolRecorded,
    UnsupportedSchemaVersion,
    decode_event,
    encode_event,
)
from shared.platform.consumer import decode_batch
from tests.hypothesis_profiles import examples
from tests.integration.helpers import make_record

EXAMPLES = examples(300)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CLEAN = (ValidationError, UnsupportedSchemaVersion)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))
BASE = {"case_id": uuid.UUID(int=7), "tenant": "demo-grid", "place_code": "990102001002001"}
SAMPLES = [
    CaseReported(event_id=uuid.UUID(int=1), occurred_at=T0, reported_at=T0, category_code="100401",
                 description="井盖 <b>x</b>", **BASE),
    CaseDispatched(event_id=uuid.UUID(int=2), occurred_at=T0, target_kind="department", department="housing",
                   rule="taxonomy:100401", deadline=T0 + timedelta(days=3), **BASE),
    CaseTransitioned(event_id=uuid.UUID(int=3), occurred_at=T0, action="accept", from_state="dispatched",
                     to_state="acknowledged", actor_role="department_staff", sequence=2, **BASE),
    CaseClosed(event_id=uuid.UUID(int=4), occurred_at=T0, closed_at=T0, source_status="已办结", **BASE),
    PatrolRecorded(event_id=uuid.UUID(int=5), occurred_at=T0, kind="night", points=3, started_at=T0,
                   findings=(uuid.UUID(int=9),), **BASE),
]
SAMPLE_DICTS = [json.loads(encode_event(e)) for e in SAMPLES]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
#: an odd value for a field: JSON of any type, a lone surrogate, a far date, a huge number
odd_values = json_values | st.sampled_from([
    "\ud800", "\x00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2024-02-30T00:00:00Z",
    10**30, -1, 2**63, "case.reported", "", "   ", "NaN", [], {},
])


def decodes_cleanly(value: bytes | str):
    """decode_event's contract: an event or a clean (validation / version) error."""
    try:
        return decode_event(value)
    except CLEAN:
        return None


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_decode_to_an_event_or_a_clean_error(raw):
    decodes_cleanly(raw)


@SETTINGS
@given(json_values)
def test_arbitrary_json_decodes_to_an_event_or_a_clean_error(value):
    decodes_cleanly(json.dumps(value).encode())


@SETTINGS
@given(sample=st.sampled_from(SAMPLE_DICTS), key=st.sampled_from(
    ["event_id", "event_type", "schema_version", "occurred_at", "case_id", "tenant", "place_code", "reported_at",
     "closed_at", "sequence", "deadline", "findings", "points", "started_at", "description", "department", "extra"]),
    value=odd_values, drop=st.booleans())
def test_a_valid_event_with_one_field_mangled_decodes_cleanly_and_round_trips(sample, key, value, drop):
    """One field replaced by an odd value (or dropped): an event or a clean error; an accepted
    event encodes and decodes to itself (dispatch and reporting re-publish and re-read events)."""
    mangled = dict(sample)
    if drop:
        mangled.pop(key, None)
    else:
        mangled[key] = value
    try:
        raw = json.dumps(mangled, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, UnicodeEncodeError):
        raw = json.dumps(mangled).encode()
    event = decodes_cleanly(raw)
    if event is not None:
        assert decode_event(encode_event(event)) == event


@SETTINGS
@given(st.lists(st.one_of(st.binary(max_size=300), st.sampled_from(SAMPLE_DICTS).map(lambda d: json.dumps(d).encode()),
                          st.none(), json_values.map(lambda v: json.dumps(v).encode())), max_size=12))
def test_decode_batch_never_raises_and_loses_no_record(values):
    """Every record of a batch is an event or a dead letter; none is dropped, none raises."""
    records = [make_record("gridcase.case.reported", 0, i, b"k", v) for i, v in enumerate(values)]
    events, poison = decode_batch(records)
    assert len(events) + len(poison) == len(records)
    assert all(p.error for p in poison)


def test_deeply_nested_json_is_a_clean_error_not_a_recursion_error():
    for depth in (1_000, 10_000, 100_000):
        for raw in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            assert decodes_cleanly(raw.encode()) is None
            events, poison = decode_batch([make_record("t", 0, 0, None, raw.encode())])
            assert (events, len(poison)) == ([], 1)


# --------------------------------------------------------------------------- the fold's inputs
# The fold itself (shared/domain/casefacts.py) needs PostgreSQL: its order-independence property is in
# tests/integration/test_fold_properties.py.
