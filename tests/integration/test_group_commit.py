"""Group commit on the real PostgreSQL (issue 13): several requests' reports in one transaction
(services/intake/store.py ``store_report_batches``), and through ``Intake.store`` many concurrent
callers in fewer transactions than callers, each report stored once with one event and one audit
record.

Each test has an intake database of its own (tests/integration/conftest.py ``intake_own_db``).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter

from services.intake import db
from services.intake.schemas import ReportIn
from services.intake.service import Intake
from services.intake.settings import IntakeSettings
from services.intake.store import ReportBatch, store_report_batches
from shared.platform.crypto import Keyring

pytestmark = pytest.mark.integration

TENANT = "demo-grid"
GRID = "990102001002001"
SECRET = b"group-commit-test"


def report(n: int) -> ReportIn:
    return ReportIn(tenant=TENANT, category_code="100401", place_code=GRID, reported_at=datetime.now(UTC),
                    description=f"group commit report {n}")


async def counts(engine, case_ids) -> tuple[int, int, int]:
    """Rows of these cases in reports, outbox and audit_log."""
    ids = list(case_ids)
    keys = [str(i) for i in ids]
    async with engine.connect() as conn:
        reports = (await conn.execute(sa.select(sa.func.count()).select_from(db.reports)
                                      .where(db.reports.c.case_id.in_(ids)))).scalar_one()
        events = (await conn.execute(sa.select(sa.func.count()).select_from(db.outbox)
                                     .where(db.outbox.c.key.in_(keys)))).scalar_one()
        audit = (await conn.execute(sa.select(sa.func.count()).select_from(db.audit_log)
                                    .where(db.audit_log.c.case_id.in_(ids)))).scalar_one()
    return reports, events, audit


async def test_batches_in_one_call_each_get_their_new_cases_and_a_repeat_is_a_duplicate(intake_own_db):
    keyring = Keyring.development(SECRET.decode())
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = ReportBatch([(report(1), a, None), (report(2), b, None)])
    second = ReportBatch([(report(3), c, None), (report(1), a, None)])  # a again: named by the first batch
    news = await store_report_batches(intake_own_db, keyring, SECRET, [first, second])
    assert news == [{a, b}, {c}]
    # three cases: three rows, one CaseReported each, one audit record each
    assert await counts(intake_own_db, {a, b, c}) == (3, 3, 3)
    # stored already: nothing new, nothing added
    again = await store_report_batches(intake_own_db, keyring, SECRET, [ReportBatch([(report(2), b, None)])])
    assert again == [set()]
    assert await counts(intake_own_db, {a, b, c}) == (3, 3, 3)


class NoRelay:
    def wake(self) -> None:
        pass


async def test_concurrent_callers_share_transactions(intake_own_db):
    keyring = Keyring.development(SECRET.decode())
    registry = CollectorRegistry()
    svc = Intake(IntakeSettings(), intake_own_db, NoRelay(), {}, SECRET,
                 Counter("a", "a", ["tenant", "source"], registry=registry),
                 Counter("r", "r", ["tenant", "reason"], registry=registry), keyring)
    ids = [uuid.uuid4() for _ in range(60)]
    news = await asyncio.gather(*(svc.store([(report(i), cid, None)]) for i, cid in enumerate(ids)))
    assert news == [{cid} for cid in ids]  # each caller: its own case, new
    assert await counts(intake_own_db, ids) == (60, 60, 60)
    # 60 callers at once: asyncio runs the 60 tasks of gather, each queueing its report, before the
    # writer task the first one started (tasks run in the order they were scheduled): one transaction
    assert svc._group.rounds == 1
