"""``read_connection`` (shared/platform/db.py, issue 13): reads outside a transaction, and the
pooled connection it used is back in transactions afterwards (writes stay atomic)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shared.platform.db import make_engine, read_connection

pytestmark = pytest.mark.integration


@pytest.mark.asyncio(loop_scope="session")
async def test_a_read_connection_has_no_transaction_and_its_connection_gets_transactions_back(infra):
    engine = make_engine(infra.database_url, pool_size=1)  # one connection: the same one every time
    table = f"read_connection_{id(engine)}"
    try:
        async with read_connection(engine) as conn:
            # outside a transaction each statement is its own: two statements, two transaction ids
            # (inside one transaction both would name the same)
            first = (await conn.execute(sa.text("SELECT pg_current_xact_id()::text"))).scalar()
            second = (await conn.execute(sa.text("SELECT pg_current_xact_id()::text"))).scalar()
            assert first != second
        async with engine.connect() as conn:
            # back in the pool, the (same) connection reads inside a transaction again
            first = (await conn.execute(sa.text("SELECT pg_current_xact_id()::text"))).scalar()
            second = (await conn.execute(sa.text("SELECT pg_current_xact_id()::text"))).scalar()
            assert first == second
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"CREATE TABLE {table} (n int PRIMARY KEY)"))
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:  # the second row fails: the first must roll back with it
                await conn.execute(sa.text(f"INSERT INTO {table} VALUES (1)"))
                await conn.execute(sa.text(f"INSERT INTO {table} VALUES (1)"))
        async with read_connection(engine) as conn:
            assert (await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar() == 0
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()
