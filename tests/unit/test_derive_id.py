"""derive_id is uuid5 in the gridcase namespace (shared/contract/events.py): the ids of derived
events and imported cases must never change, so the fast path is checked against the standard
library's uuid.uuid5 (RFC 4122 §4.3) on varied names."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.contract.events import GRIDCASE_NAMESPACE, derive_id

parts = st.lists(st.one_of(st.text(), st.integers(), st.uuids()), min_size=1, max_size=4)


@given(parts)
def test_derive_id_is_uuid5_of_the_joined_parts(ps):
    expected = uuid.uuid5(GRIDCASE_NAMESPACE, "\x1f".join(str(p) for p in ps))
    got = derive_id(*ps)
    assert got == expected
    assert str(got) == str(expected) and got.version == 5 and got.variant == uuid.RFC_4122


def test_derive_id_of_a_derived_event_and_a_chinese_source_id():
    case = uuid.UUID("00000000-0000-4000-8000-000000000001")
    assert derive_id(case, "case.dispatched", 1) == uuid.uuid5(GRIDCASE_NAMESPACE, f"{case}\x1fcase.dispatched\x1f1")
    assert derive_id("demo-grid", "12345", "井盖缺失") == uuid.uuid5(GRIDCASE_NAMESPACE, "demo-grid\x1f12345\x1f井盖缺失")
