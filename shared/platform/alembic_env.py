"""The body of every service's Alembic ``env.py`` (online, async, one schema per service)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def run(target_metadata: sa.MetaData, schema: str) -> None:
    """Run migrations for ``schema`` with ``target_metadata``; version table inside the schema.

    Takes ``pg_advisory_xact_lock(hashtext(schema))`` first, so two instances starting together
    migrate one after the other.
    """
    config = context.config
    url = config.attributes["url"]

    def do_run(connection: sa.Connection) -> None:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, parent: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    asyncio.run(main())
