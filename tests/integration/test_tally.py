"""The per-tenant tally (shared/platform/tally.py) on real PostgreSQL: its totals equal a count over
the source table after inserts, updates, deletes, rolled-back transactions, concurrent writers and
concurrent compactions.

Each test makes a schema of its own holding a small source table (tenant, events), as
``dispatch.cases`` (cases = rows, events_emitted = the sum of a column) and
``reporting.case_facts`` (a counted condition) are tallied."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio
import sqlalchemy as sa

from shared.platform.db import make_engine
from shared.platform.tally import (
    compact_tally,
    read_tally,
    tally,
    tally_ddl,
    tally_table,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
COUNTED = {"cases": "1", "events": "coalesce(events, 0)", "reported": "(reported_at IS NOT NULL)::int"}


@pytest_asyncio.fixture(loop_scope="session")
async def scratch(infra):
    """(engine, schema, tally table, source table) in a schema of the test's own, dropped afterwards."""
    schema = f"tally_{uuid.uuid4().hex[:10]}"
    engine = make_engine(infra.database_url)
    metadata = sa.MetaData(schema=schema)
    source = sa.Table("src", metadata, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("tenant", sa.Text, nullable=False), sa.Column("events", sa.Integer),
                      sa.Column("reported_at", sa.DateTime(timezone=True)))
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield engine, schema, tally_table(metadata, "src_tally", list(COUNTED)), source
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def install(engine, schema: str) -> None:
    async with engine.begin() as conn:
        for statement in tally_ddl(schema, "src", "src_tally", COUNTED):
            await conn.execute(sa.text(statement))


async def totals(engine, table, tenant):
    async with engine.connect() as conn:
        return await read_tally(conn, table, tenant)


async def counted_directly(engine, source) -> dict[str, dict[str, int]]:
    """The figures the tally must equal, counted over the source rows."""
    s = source.c
    q = sa.select(s.tenant, sa.func.count(), sa.func.coalesce(sa.func.sum(s.events), 0),
                  sa.func.count(s.reported_at)).group_by(s.tenant)
    async with engine.connect() as conn:
        return {t: {"cases": n, "events": int(e), "reported": r} for t, n, e, r in (await conn.execute(q)).all()}


async def test_hand_counted_history(scratch):
    engine, schema, table, src = scratch
    now = sa.func.now()
    async with engine.begin() as conn:  # stored before the tally exists: its first row counts them
        await conn.execute(src.insert(), [{"id": 1, "tenant": "a", "events": 2, "reported_at": None}])
    await install(engine, schema)
    assert await totals(engine, table, "a") == ({"cases": 1, "events": 2, "reported": 0}, 1)

    async with engine.begin() as conn:
        # one statement, two tenants: one delta each
        await conn.execute(sa.insert(src).from_select(
            ["id", "tenant", "events", "reported_at"],
            sa.select(sa.literal(2), sa.literal("a"), sa.literal(3), now)
            .union_all(sa.select(sa.literal(3), sa.literal("a"), sa.literal(None, sa.Integer), now),
                       sa.select(sa.literal(4), sa.literal("b"), sa.literal(7), sa.literal(None, sa.DateTime)))))
    # a: rows 1, 2, 3 → 3 cases; events 2 + 3 + 0 = 5; reported rows 2 and 3 → 2
    assert await totals(engine, table, "a") == ({"cases": 3, "events": 5, "reported": 2}, 2)
    assert await totals(engine, table, "b") == ({"cases": 1, "events": 7, "reported": 0}, 1)

    async with engine.begin() as conn:
        # row 1: events 2 → 6 (+4), reported now (+1); row 4 rewritten unchanged: no delta for b
        await conn.execute(src.update().where(src.c.id.in_([1, 4]))
                           .values(events=sa.case((src.c.id == 1, 6), else_=src.c.events),
                                   reported_at=sa.case((src.c.id == 1, now), else_=src.c.reported_at)))
    assert await totals(engine, table, "a") == ({"cases": 3, "events": 9, "reported": 3}, 3)
    assert await totals(engine, table, "b") == ({"cases": 1, "events": 7, "reported": 0}, 1)

    async with engine.begin() as conn:
        await conn.execute(src.delete().where(src.c.id == 2))  # a loses 1 case, 3 events, 1 reported
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:  # rolled back: counts nothing
            await conn.execute(src.insert(), [{"id": 9, "tenant": "a", "events": 100, "reported_at": None}])
            raise RuntimeError("roll back")
    assert await totals(engine, table, "a") == ({"cases": 2, "events": 6, "reported": 2}, 4)
    assert await totals(engine, table, None) == ({"cases": 3, "events": 13, "reported": 2}, 5)

    await compact_tally(engine, table, "a")  # a's four deltas become one; b's stays
    assert await totals(engine, table, "a") == ({"cases": 2, "events": 6, "reported": 2}, 1)
    assert await totals(engine, table, None) == ({"cases": 3, "events": 13, "reported": 2}, 2)
    await compact_tally(engine, table, None)
    assert await totals(engine, table, None) == ({"cases": 3, "events": 13, "reported": 2}, 2)


async def test_concurrent_writers_and_compactions_stay_exact(scratch):
    engine, schema, table, src = scratch
    await install(engine, schema)
    rng = random.Random(20261207)
    tenants = ["a", "b", "c"]
    ids = iter(range(1, 10**6))

    async def writer(seed: int) -> None:
        r = random.Random(seed)
        for _ in range(40):
            try:
                async with engine.begin() as conn:
                    for _ in range(r.randint(1, 3)):
                        op = r.random()
                        if op < 0.5:
                            await conn.execute(src.insert(), [
                                {"id": next(ids), "tenant": r.choice(tenants), "events": r.choice([None, 0, 1, 5]),
                                 "reported_at": r.choice([None, NOW])} for _ in range(r.randint(1, 20))])
                        elif op < 0.85:
                            lo = r.randint(1, 400)
                            await conn.execute(src.update().where(src.c.id.between(lo, lo + 30))
                                               .values(events=src.c.events + r.randint(-2, 4),
                                                       reported_at=sa.case((src.c.id % 2 == 0, sa.func.now()),
                                                                           else_=None)))
                        else:
                            lo = r.randint(1, 400)
                            await conn.execute(src.delete().where(src.c.id.between(lo, lo + 5)))
                    if r.random() < 0.2:
                        raise LookupError("rolled back")
            except LookupError:
                pass
            except sa.exc.DBAPIError as exc:  # two writers on the same rows: the loser retries later
                if "deadlock" not in str(exc):
                    raise

    async def compactor() -> None:
        for _ in range(30):
            await compact_tally(engine, table, rng.choice([*tenants, None]))
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(seed) for seed in range(4)), compactor(), compactor())
    expected = await counted_directly(engine, src)
    assert expected and sum(e["cases"] for e in expected.values()) > 50  # the writers did write
    for tenant in tenants:
        got, _ = await totals(engine, table, tenant)
        assert got == expected.get(tenant, {"cases": 0, "events": 0, "reported": 0}), tenant
    assert (await tally(engine, table, None)) == {k: sum(e[k] for e in expected.values()) for k in COUNTED}
