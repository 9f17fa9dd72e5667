"""Erasure of dispatch's copies (services/dispatch/erasure.py, issue 16): with the known data that
intake opened, the case's events in dispatch's outbox and its parked actions are rewritten; other
cases and cases without known data are left alone."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from services.dispatch import db
from services.dispatch.erasure import erase_cases
from shared.domain.personal import KnownPersonal

pytestmark = pytest.mark.integration



@pytest.fixture
def engine(dispatch_own_db):
    """Dispatch's schema in a database of the test's own (the rows here are made up)."""
    return dispatch_own_db


async def test_dispatch_copies_are_rewritten_with_the_known_data(engine):
    name, phone = "测试员丙", "13600136001"
    known = KnownPersonal(name=name, phone=phone)
    erased, other, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    reason = f"已联系{name}，回电{phone}"
    async with engine.begin() as conn:
        for cid in (erased, other, unknown):
            await conn.execute(db.outbox.insert().values(
                event_id=uuid.uuid4(), topic="gridcase.case.lifecycle", key=str(cid), event_type="case.transitioned",
                payload=json.dumps({"event_type": "case.transitioned", "reason": reason, "to_state": "accepted"},
                                   ensure_ascii=False).encode()))
            await conn.execute(db.pending_actions.insert().values(
                event_id=uuid.uuid4(), case_id=cid, payload={"note": reason, "evidence": [f"{name}.jpg"]}))

    # 2 rows of the erased case; the unknown case has nothing to mask with
    assert await erase_cases(engine, {erased: known, unknown: None}) == 2

    async with engine.connect() as conn:
        def rows(cid):
            return conn.execute(sa.select(db.outbox.c.payload).where(db.outbox.c.key == str(cid)))
        out = {cid: json.loads((await rows(cid)).scalar_one()) for cid in (erased, other, unknown)}
        parked = {cid: (await conn.execute(sa.select(db.pending_actions.c.payload)
                                           .where(db.pending_actions.c.case_id == cid))).scalar_one()
                  for cid in (erased, other, unknown)}
    assert out[erased] == {"event_type": "case.transitioned", "reason": "已联系[姓名]，回电[电话]", "to_state": "accepted"}
    assert parked[erased] == {"note": "已联系[姓名]，回电[电话]", "evidence": ["[姓名].jpg"]}
    for cid in (other, unknown):
        assert out[cid]["reason"] == reason and parked[cid]["note"] == reason
