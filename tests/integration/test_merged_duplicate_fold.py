"""A merged duplicate folded by reporting in any order, redelivered across batches (hbreak, issue 15):
the fact ends cancelled with outcome ``duplicate`` and its original, and ``GET /v1/kpis``'s figures
(queries.py ``query_kpis``) count it as 合并重复件 only, whatever the order."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.reporting.db import case_facts as cf
from services.reporting.filters import CaseFilter
from services.reporting.kpis import queries
from shared.contract.events import CaseReported, CaseTransitioned
from tests.integration.helpers import DEMO_GRID_GRID
from tests.integration.test_fold_properties import fold_through_consumer, row_of

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 3, 1, 0, tzinfo=UTC)


def history(case_id: uuid.UUID, original: uuid.UUID) -> list:
    base = {"case_id": case_id, "tenant": "t", "place_code": DEMO_GRID_GRID}
    step = {"actor_role": "city_ops", **base}
    return [
        CaseReported(event_id=uuid.uuid4(), occurred_at=T0, reported_at=T0, category_code="100102",
                     channel="phone", **base),
        CaseTransitioned(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=5), action="accept",
                         from_state="reported", to_state="accepted", sequence=1, **step),
        CaseTransitioned(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=9), action="merge_duplicate",
                         from_state="accepted", to_state="cancelled", sequence=2, outcome="duplicate",
                         duplicate_of=original, **step),
    ]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_a_merged_duplicate_in_any_order_with_redelivery(reporting_engine, order):
    tenant = f"it-dup-{uuid.uuid4().hex[:12]}"
    case_id, original = uuid.uuid4(), uuid.uuid4()
    events = history(case_id, original)
    shuffled = [events[i] for i in order]
    # two batches, the second redelivering the first's last event and everything before it again
    await fold_through_consumer(reporting_engine, tenant, [shuffled[:2], shuffled[1:]])
    await fold_through_consumer(reporting_engine, tenant, [shuffled])  # a second consumer group's replay
    row = await row_of(reporting_engine, case_id, [cf.c.state, cf.c.outcome, cf.c.duplicate_of])
    assert row == {"state": "cancelled", "outcome": "duplicate", "duplicate_of": original}
    # By hand: the one case is a merged duplicate, outside the universe: 受理量 0, 办结 0, 在办 0,
    # 合并重复件 1 (reported 01:00 UTC on 2025-06-03, inside the open period and the day 06-03 Shanghai)
    async with reporting_engine.connect() as conn:
        for start, end in ((None, None), (datetime(2025, 6, 3, 0, 0, tzinfo=UTC) - timedelta(hours=8),
                                          datetime(2025, 6, 4, 0, 0, tzinfo=UTC) - timedelta(hours=8))):
            total = (await queries.query_kpis(conn, CaseFilter(tenant, start, end), now=T0 + timedelta(days=1)))["total"]
            assert (total["accepted"], total["closed"], total["in_progress"], total["merged_duplicates"]) == (0, 0, 0, 1)
