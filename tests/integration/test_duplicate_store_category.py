"""The possible-duplicate probe selects stored cases by their category now (docs/classifier.md §4;
services/intake/textstore.py ``find_duplicates``, ``duplicates_of_case``): the case-view
consumer (services/intake/handlers.py ``apply_lifecycle``) copies a recategorization's category
onto the stored report, and migration 7b3e9d2a4c61 fills it for cases corrected before it.

Hand-made lifecycle events, folded in a database of the test's own. Five stored cases at one grid,
the same text, reported within the window before the new reports:

- A reported 100102, recategorized to 200101;
- B reported 200101, recategorized to 100102;
- C reported 200101, recategorized to 100102 (sequence 2) then back to 200101 (sequence 4), the
  newer correction folded first;
- E reported 100102, recategorized to 200101 (sequence 2) then back to 100102 (sequence 4), the
  newer folded first;
- D reported 200101 an hour later, never recategorized.

The category now (the newest recategorization, else the report's): A, C, D in 200101; B, E in
100102. So a new report in 200101 lists A, C and D; one in 100102 lists B and E; D's case view
(category 200101, reported after A–C and E) lists A and C."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from services.intake import db
from services.intake.handlers import apply_lifecycle
from services.intake.textstore import duplicates_of_case, find_duplicates
from shared.contract.events import CaseDispatched, CaseTransitioned
from shared.domain.duplicates import Report
from shared.platform.db import async_url

pytestmark = pytest.mark.integration

TENANT = "demo-grid"
GRID = "990102001002001"
OTHER_GRID = "990102001002002"
LAT, LON = 39.9, 116.4
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)
TEXT = "幸福路口垃圾桶满溢，垃圾堆放三天没有清运"


async def store(engine, case_id: uuid.UUID, category: str, at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.insert(db.reports).values(
            case_id=case_id, tenant=TENANT, source="api", category_code=category, place_code=GRID, reported_at=at,
            report={"description": TEXT, "latitude": LAT, "longitude": LON}))


def dispatched(case_id: uuid.UUID) -> CaseDispatched:
    return CaseDispatched(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=1), case_id=case_id,
                          tenant=TENANT, place_code=GRID, target_kind="department", department="urban_management",
                          rule="test", sequence=1)


def recategorized(case_id: uuid.UUID, seq: int, category: str) -> CaseTransitioned:
    return CaseTransitioned(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=seq), case_id=case_id,
                            tenant=TENANT, place_code=GRID, action="recategorize", from_state="dispatched",
                            to_state="filed", actor_role="city_ops", sequence=seq, category_code=category,
                            recategorize_count=seq // 2)


async def fold(engine, *events) -> None:
    async with engine.begin() as conn:
        await apply_lifecycle(conn, list(events))


async def listed(engine, category: str) -> list[set[str]]:
    """The case ids listed for a new report in ``category``: at the grid without coordinates, and
    at another grid 10 m north of the stored ones (0.00009° of latitude, 10.0 m)."""
    at = T0 + timedelta(hours=2)
    here = Report(str(uuid.uuid4()), category, GRID, at, TEXT + "，请处理")
    near = Report(str(uuid.uuid4()), category, OTHER_GRID, at, TEXT + "，请处理", LAT + 0.00009, LON)
    return [{d["case_id"] for d in await find_duplicates(engine, TENANT, new, WINDOW)} for new in (here, near)]


async def test_the_category_now_decides_which_stored_cases_are_read(intake_own_db):
    engine = intake_own_db
    a, b, c, d, e = (uuid.uuid4() for _ in range(5))
    for i, (case_id, category) in enumerate(((a, "100102"), (b, "200101"), (c, "200101"), (e, "100102"))):
        await store(engine, case_id, category, T0 + timedelta(minutes=i))
    await store(engine, d, "200101", T0 + timedelta(hours=1))
    await fold(engine, *(dispatched(x) for x in (a, b, c, d, e)))
    await fold(engine, recategorized(a, 2, "200101"), recategorized(b, 2, "100102"),
               recategorized(c, 4, "200101"), recategorized(e, 4, "100102"))
    await fold(engine, recategorized(c, 2, "100102"), recategorized(e, 2, "200101"))  # older, arriving late

    assert await listed(engine, "200101") == [{str(a), str(c), str(d)}] * 2
    assert await listed(engine, "100102") == [{str(b), str(e)}] * 2
    # the case view: D in its category now, 200101
    assert {x["case_id"] for x in await duplicates_of_case(engine, d, "200101", WINDOW)} == {str(a), str(c)}


def _alembic(url: str, verb: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    cfg.attributes["url"] = async_url(url)
    cfg.attributes["schema"] = db.SCHEMA
    getattr(command, verb)(cfg, revision)


async def test_the_migration_fills_the_corrected_category_from_the_case_view(intake_own_db):
    # before 7b3e9d2a4c61: A (reported 100102) and B (reported 200101) recategorized in the view
    # (category_seq set), D reported 200101 and never recategorized (category_seq NULL)
    engine = intake_own_db
    url = engine.url.render_as_string(hide_password=False)
    await engine.dispose()
    await asyncio.to_thread(_alembic, url, "downgrade", "a13b0c0f1e01")
    a, b, d = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        for i, (case_id, reported, now, seq) in enumerate(((a, "100102", "200101", 2), (b, "200101", "100102", 2),
                                                           (d, "200101", "200101", None))):
            await conn.exec_driver_sql(
                "INSERT INTO intake.reports (case_id, tenant, source, category_code, place_code, reported_at, report) "
                "VALUES ($1, $2, 'api', $3, $4, $5, $6::jsonb)",
                (case_id, TENANT, reported, GRID, T0 + timedelta(minutes=i),
                 json.dumps({"description": TEXT, "latitude": LAT, "longitude": LON})))
            await conn.exec_driver_sql(
                "INSERT INTO intake.case_view (case_id, tenant, place_code, category_code, category_seq, state) "
                "VALUES ($1, $2, $3, $4, $5, 'filed')", (case_id, TENANT, GRID, now, seq))
    await engine.dispose()
    await asyncio.to_thread(_alembic, url, "upgrade", "head")
    async with engine.connect() as conn:
        corrected = dict((await conn.execute(sa.select(db.reports.c.case_id, db.reports.c.category_corrected))).all())
    assert corrected == {a: "200101", b: "100102", d: None}
    assert await listed(engine, "200101") == [{str(a), str(d)}] * 2
    assert await listed(engine, "100102") == [{str(b)}] * 2
    # and back: the index on the category as reported again, the column gone
    await engine.dispose()
    await asyncio.to_thread(_alembic, url, "downgrade", "a13b0c0f1e01")
    async with engine.connect() as conn:
        indexes = set((await conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'intake' AND tablename = 'reports'")).scalars())
        columns = set((await conn.exec_driver_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'intake' "
            "AND table_name = 'reports'")).scalars())
    await engine.dispose()
    assert "ix_intake_reports_tenant_category_reported" in indexes
    assert "ix_intake_reports_tenant_category_now_reported" not in indexes
    assert "category_corrected" not in columns
