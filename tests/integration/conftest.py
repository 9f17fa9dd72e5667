"""Fixtures for the integration tests: a migrated reporting schema on the session's real PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid

import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from services.dispatch import db as dispatch_db
from services.dispatch.main import MIGRATIONS as DISPATCH_MIGRATIONS
from services.intake import db as intake_db
from services.reporting.db import MIGRATIONS as REPORTING_MIGRATIONS
from services.reporting.db import SCHEMA as REPORTING_SCHEMA
from shared.platform.db import async_url, make_engine, run_migrations_async


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def reporting_engine(infra):
    """An AsyncEngine on ``infra.database_url`` with the reporting migrations applied."""
    await run_migrations_async(infra.database_url, REPORTING_MIGRATIONS, REPORTING_SCHEMA)
    engine = make_engine(infra.database_url)
    yield engine
    await engine.dispose()


@contextlib.asynccontextmanager
async def own_database(infra, migrations, schema: str):
    """An AsyncEngine on ``schema``, migrated, in a database of the test's own on the session's
    server (dropped afterwards): rows written there reach no running service's relay, and sweeps
    over every row see only the test's."""
    name = f"{schema}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(infra.database_url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(async_url(infra.database_url)).set(database=name).render_as_string(hide_password=False)
    await run_migrations_async(url, migrations, schema)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def intake_own_db(infra):
    """Intake's schema in a database of the test's own (:func:`own_database`)."""
    async with own_database(infra, intake_db.MIGRATIONS, intake_db.SCHEMA) as engine:
        yield engine


@pytest_asyncio.fixture(loop_scope="session")
async def dispatch_own_db(infra):
    """Dispatch's schema in a database of the test's own (:func:`own_database`)."""
    async with own_database(infra, DISPATCH_MIGRATIONS, dispatch_db.SCHEMA) as engine:
        yield engine
