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

from services.dispatch import db as dispatch_db
from services.dispatch.main import MIGRATIONS as DISPATCH_MIGRATIONS
from services.reporting import db as reporting_db
from services.reporting.handlers import apply_events
from shared.contract.events import CaseDispatched, CaseReported, CaseTransferred
from shared.platform.db import make_engine
from shared.platform.tally import (
    COMPACT_ABOVE,
    compact_tally,
    read_tally,
    tally,
    tally_ddl,
    tally_table,
    tally_truncate_ddl,
    upkeep,
)
from tests.integration.conftest import own_database
from tests.integration.helpers import DEMO_GRID_GRID, at

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
        yield engine, schema, tally_table(metadata, "src_tally", list(COUNTED), "src"), source
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def install(engine, schema: str) -> None:
    async with engine.begin() as conn:
        # as the migrations install it: the tally, then its truncate trigger
        for statement in [*tally_ddl(schema, "src", "src_tally", COUNTED), *tally_truncate_ddl(schema, "src", "src_tally", COUNTED)]:
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


async def test_truncating_the_source_empties_the_tally(scratch):
    engine, schema, table, src = scratch
    await install(engine, schema)
    async with engine.begin() as conn:
        await conn.execute(src.insert(), [{"id": i, "tenant": "a", "events": 2, "reported_at": NOW} for i in (1, 2, 3)])
    assert (await totals(engine, table, "a"))[0] == {"cases": 3, "events": 6, "reported": 3}
    # a truncate fires no insert, update or delete trigger (bench/kpi_data.py truncates the facts alone)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'TRUNCATE "{schema}".src'))
    assert await totals(engine, table, "a") == ({"cases": 0, "events": 0, "reported": 0}, 0)
    async with engine.begin() as conn:  # counted again from there: one row of 5 events, not reported
        await conn.execute(src.insert(), [{"id": 4, "tenant": "a", "events": 5, "reported_at": None}])
    assert (await totals(engine, table, "a"))[0] == {"cases": 1, "events": 5, "reported": 0}
    async with engine.begin() as conn:  # as gridcase reporting rebuild: the source and its tally in one statement
        await conn.execute(sa.text(f'TRUNCATE "{schema}".src, "{schema}".src_tally'))
        await conn.execute(src.insert(), [{"id": 5, "tenant": "a", "events": 3, "reported_at": NOW}])
    assert (await totals(engine, table, "a"))[0] == {"cases": 1, "events": 3, "reported": 1}
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:  # a truncate rolled back keeps the tally as it was
            await conn.execute(sa.text(f'TRUNCATE "{schema}".src'))
            raise RuntimeError("roll back")
    assert (await totals(engine, table, "a"))[0] == {"cases": 1, "events": 3, "reported": 1}


async def test_a_compaction_that_fails_still_answers_the_totals(scratch):
    """Two readers compact one tenant at once in a database whose default isolation is REPEATABLE
    READ: the second one's DELETE waits for the first one's, then finds its rows deleted after its
    snapshot, a serialization failure. The totals were read before; the reader answers them."""
    engine, schema, table, src = scratch
    await install(engine, schema)
    n = COMPACT_ABOVE + 6
    async with engine.begin() as conn:  # an executemany: one statement, so one delta, per row
        await conn.execute(src.insert(), [{"id": i, "tenant": "a", "events": 1, "reported_at": None} for i in range(n)])
    assert await totals(engine, table, "a") == ({"cases": n, "events": n, "reported": 0}, n)
    repeatable = engine.execution_options(isolation_level="REPEATABLE READ")
    name = f'"{schema}".src_tally'
    async with engine.begin() as first:  # the first compaction, committed at the end of the block
        await first.execute(sa.text(f"WITH gone AS (DELETE FROM {name} WHERE tenant = 'a' RETURNING *) "
                                    f"INSERT INTO {name} SELECT tenant, sum(cases), sum(events), sum(reported) "
                                    "FROM gone GROUP BY tenant"))
        second = asyncio.create_task(tally(repeatable, table, "a"))
        async with engine.connect() as probe:  # until the second one waits for the first one's rows
            # autocommit: a transaction sees pg_stat_activity as of its first look
            probe = await probe.execution_options(isolation_level="AUTOCOMMIT")
            for _ in range(200):
                waiting = (await probe.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE :q"), {"q": f"%DELETE FROM {name}%"})).scalar()
                if waiting or second.done():
                    break
                await asyncio.sleep(0.05)
        assert waiting == 1
    assert await second == {"cases": n, "events": n, "reported": 0}
    assert await totals(engine, table, "a") == ({"cases": n, "events": n, "reported": 0}, 1)


def three_events(tenant: str) -> list:
    base = {"case_id": uuid.uuid4(), "tenant": tenant, "place_code": DEMO_GRID_GRID}
    return [
        CaseReported(event_id=uuid.uuid4(), occurred_at=at(2), reported_at=at(2), category_code="100401", **base),
        CaseDispatched(event_id=uuid.uuid4(), occurred_at=at(2, 9, 5), target_kind="department", department="housing",
                       rule="taxonomy:100401", **base),
        CaseTransferred(event_id=uuid.uuid4(), occurred_at=at(2, 10), from_department="housing",
                        to_department="urban_management", sequence=1, **base),
    ]


async def test_a_tally_nobody_reads_stays_small(infra):
    """The reporting fold appends a delta per statement, one per event type of a batch: 40 batches
    of one case's 3 events append 40 × 3 = 120 deltas. Nobody reads the progress; the service's
    upkeep folds them into one row."""
    async with own_database(infra, reporting_db.MIGRATIONS, reporting_db.SCHEMA) as engine:
        async with engine.begin() as conn:
            for _ in range(40):
                await apply_events(conn, three_events("t1"))
        assert await totals(engine, reporting_db.case_tally, None) == ({"reported_cases": 40, "events_applied": 120}, 120)
        await upkeep(engine, reporting_db.case_tally)
        assert await totals(engine, reporting_db.case_tally, None) == ({"reported_cases": 40, "events_applied": 120}, 1)
        async with engine.begin() as conn:  # as bench/kpi_data.py empties the facts: the tally follows (615ca2d1dfba)
            await conn.execute(sa.text("TRUNCATE reporting.case_facts, reporting.case_steps"))
        assert await totals(engine, reporting_db.case_tally, None) == ({"reported_cases": 0, "events_applied": 0}, 0)


async def test_a_batch_of_many_cases_adds_one_delta_per_event_type(infra):
    """One batch of 40 cases' 3 events: the fold sends each event type's rows of distinct cases as
    one statement (shared/domain/casefacts.py ``unnest_upsert``), so the batch appends 3 deltas,
    not 120, and counts the same totals (40 cases, 40 × 3 = 120 events)."""
    async with own_database(infra, reporting_db.MIGRATIONS, reporting_db.SCHEMA) as engine:
        async with engine.begin() as conn:
            await apply_events(conn, [ev for _ in range(40) for ev in three_events("t1")])
        assert await totals(engine, reporting_db.case_tally, None) == ({"reported_cases": 40, "events_applied": 120}, 3)


@pytest.mark.parametrize("service", ["dispatch", "reporting"])
async def test_the_tally_tables_match_their_migrations(infra, service):
    """Alembic's autogenerate finds nothing to change on the tally (its comment included)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db, migrations = (dispatch_db, DISPATCH_MIGRATIONS) if service == "dispatch" else (reporting_db, reporting_db.MIGRATIONS)
    async with own_database(infra, migrations, db.SCHEMA) as engine, engine.connect() as conn:
        def compare(sync):
            context = MigrationContext.configure(sync, opts={
                "include_schemas": True, "version_table_schema": db.SCHEMA,
                "include_name": lambda name, type_, parent: type_ != "schema" or name == db.SCHEMA})
            return compare_metadata(context, db.metadata)

        diff = await conn.run_sync(compare)
    assert [d for d in diff if "case_tally" in str(d)] == []


async def test_a_compact_tally_of_many_tenants_is_left_alone(scratch):
    """A province of more tenants than COMPACT_ABOVE: once each has one row, a reader of every
    tenant (and the upkeep every 10 s) leaves the rows as they are; a reader compacts again only
    when COMPACT_ABOVE deltas more have come."""
    engine, schema, table, src = scratch
    await install(engine, schema)
    n = COMPACT_ABOVE + 6
    async with engine.begin() as conn:  # one row of 1 event for each of n tenants, in one statement: n deltas
        await conn.execute(sa.text(f'INSERT INTO "{schema}".src (id, tenant, events) '
                                   "SELECT g, 't' || g, 1 FROM generate_series(1, :n) AS g"), {"n": n})
    ctids = sa.text(f'SELECT array_agg(ctid::text ORDER BY ctid) FROM "{schema}".src_tally')
    async with engine.connect() as conn:
        before = (await conn.execute(ctids)).scalar()
    assert len(before) == n
    assert await tally(engine, table, None) == {"cases": n, "events": n, "reported": 0}
    async with engine.connect() as conn:
        assert (await conn.execute(ctids)).scalar() == before  # not deleted and inserted again
    async with engine.begin() as conn:  # COMPACT_ABOVE + 1 deltas more, of tenant t1
        for i in range(COMPACT_ABOVE + 1):
            await conn.execute(src.insert(), [{"id": 1000 + i, "tenant": "t1", "events": 2, "reported_at": None}])
    # n + 65 rows, 65 cases of 2 events more
    assert await tally(engine, table, None) == {"cases": n + COMPACT_ABOVE + 1, "events": n + 2 * (COMPACT_ABOVE + 1),
                                                "reported": 0}
    assert await totals(engine, table, None) == ({"cases": n + COMPACT_ABOVE + 1, "events": n + 2 * (COMPACT_ABOVE + 1),
                                                  "reported": 0}, n)


async def test_a_truncate_during_a_compaction_leaves_no_sum_behind(scratch):
    """A compaction under way (its deltas deleted, their sum inserted, not committed) while the
    source is truncated: the truncate trigger waits for it and deletes its sum too, where a plain
    DELETE would skip the deleted deltas and not see the sum committed after it began."""
    engine, schema, table, src = scratch
    await install(engine, schema)
    async with engine.begin() as conn:  # three deltas of a: 3 cases, 6 events
        for i in (1, 2, 3):
            await conn.execute(src.insert(), [{"id": i, "tenant": "a", "events": 2, "reported_at": None}])
    name = f'"{schema}".src_tally'
    async with engine.begin() as compaction:
        await compaction.execute(sa.text(
            f"WITH gone AS (DELETE FROM {name} WHERE tenant = 'a' RETURNING *) "
            f"INSERT INTO {name} SELECT tenant, sum(cases), sum(events), sum(reported) FROM gone GROUP BY tenant"))

        async def truncate() -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text(f'TRUNCATE "{schema}".src'))

        truncating = asyncio.create_task(truncate())
        async with engine.connect() as probe:  # until the truncate waits (autocommit: fresh pg_stat_activity)
            probe = await probe.execution_options(isolation_level="AUTOCOMMIT")
            for _ in range(200):
                waiting = (await probe.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"),
                    {"q": f'%TRUNCATE "{schema}".src%'})).scalar()
                if waiting or truncating.done():
                    break
                await asyncio.sleep(0.05)
        assert waiting == 1
    await truncating
    assert await totals(engine, table, "a") == ({"cases": 0, "events": 0, "reported": 0}, 0)
