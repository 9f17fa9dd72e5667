"""``insert_unnest`` (shared/platform/db.py) on the real PostgreSQL, issue 13: a batch of rows as
one ``INSERT … SELECT … FROM unnest(…)`` per set of keys, with ``ON CONFLICT DO NOTHING`` and
``RETURNING`` as the imports and the outbox use it.

Each test has an intake database of its own (tests/integration/conftest.py ``intake_own_db``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.intake import db
from shared.platform.db import insert_unnest

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _report(case_id: uuid.UUID, suggestions=None) -> dict:
    return {"case_id": case_id, "tenant": "demo-grid", "source": "t", "source_id": str(case_id),
            "category_code": "100401", "place_code": "990102001001001", "reported_at": AT,
            "report": {"description": "井盖缺失 manhole", "n": 1}, "category_suggestions": suggestions}


async def test_new_rows_are_returned_once_and_repeats_are_skipped(intake_own_db):
    a, b = uuid.uuid4(), uuid.uuid4()
    async with intake_own_db.begin() as conn:
        # b twice in one batch: inserted once (DO NOTHING also covers a row of the same statement)
        first = await insert_unnest(conn, db.reports, [_report(a), _report(b), _report(b)],
                                    on_conflict_do_nothing=True, returning="case_id")
    async with intake_own_db.begin() as conn:
        again = await insert_unnest(conn, db.reports, [_report(a)], on_conflict_do_nothing=True, returning="case_id")
        count = (await conn.execute(sa.select(sa.func.count()).select_from(db.reports))).scalar_one()
    assert sorted(first) == sorted([a, b]) and again == [] and count == 2


async def test_values_arrive_as_sqlalchemy_would_store_them(intake_own_db):
    a, b = uuid.uuid4(), uuid.uuid4()
    async with intake_own_db.begin() as conn:
        await insert_unnest(conn, db.reports, [_report(a), _report(b, [{"category_code": "100401", "confidence": 0.5}])])
        r = db.reports
        rows = {row.case_id: row for row in await conn.execute(
            sa.select(r.c.case_id, r.c.reported_at, r.c.report, r.c.category_suggestions,
                      sa.func.jsonb_typeof(r.c.category_suggestions).label("kind")))}
    assert rows[a].reported_at == AT and rows[a].report == {"description": "井盖缺失 manhole", "n": 1}
    # JSON None is JSON null (SQLAlchemy's JSON type, none_as_null=False), not SQL NULL
    assert rows[a].kind == "null"
    assert rows[b].category_suggestions == [{"category_code": "100401", "confidence": 0.5}]


async def test_a_key_left_out_takes_the_column_default(intake_own_db):
    case = uuid.uuid4()
    base = {"case_id": case, "tenant": "demo-grid", "occurred_at": AT, "actor_ref": "system",
            "actor_role": "system", "action": "report", "outcome": "applied"}
    async with intake_own_db.begin() as conn:
        # two sets of keys: two statements; the row without "detail" gets the server default ""
        await insert_unnest(conn, db.audit_log, [base | {"detail": "t phone"}, base])
        a = db.audit_log
        details = (await conn.execute(sa.select(a.c.detail).where(a.c.case_id == case).order_by(a.c.audit_id))).scalars().all()
    assert details == ["t phone", ""]


async def test_nothing_to_insert_sends_nothing(intake_own_db):
    async with intake_own_db.begin() as conn:
        assert await insert_unnest(conn, db.reports, [], returning="case_id") == []
