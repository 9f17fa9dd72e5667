"""Erasure of dispatch's copies (services/dispatch/erasure.py, issue 16): with the known data that
intake opened, the case's events in dispatch's outbox and its parked actions are rewritten; other
cases and cases without known data are left alone."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import services.dispatch
from services.dispatch import db
from services.dispatch.erasure import erase_cases
from shared.domain.personal import KnownPersonal
from shared.platform.db import async_url, make_engine, run_migrations_async

pytestmark = pytest.mark.integration

MIGRATIONS = Path(services.dispatch.__file__).resolve().parent / "migrations"


@pytest_asyncio.fixture(loop_scope="session")
async def engine(infra):
    """Dispatch's schema in a database of the test's own (the rows here are made up)."""
    name = f"derase_{uuid.uuid4().hex[:12]}"
    admin = make_engine(infra.database_url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(async_url(infra.database_url)).set(database=name).render_as_string(hide_password=False)
    await run_migrations_async(url, MIGRATIONS, db.SCHEMA)
    engine = make_engine(url)
    yield engine
    await engine.dispose()
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


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
