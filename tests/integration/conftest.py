"""Fixtures for the integration tests: a migrated reporting schema on the session's real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.engine import make_url

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


@pytest_asyncio.fixture(loop_scope="session")
async def intake_own_db(infra):
    """An AsyncEngine on intake's schema, migrated, in a database of the test's own on the
    session's server (dropped afterwards): rows it writes reach no running service's relay."""
    name = f"intake_{uuid.uuid4().hex[:12]}"
    admin = make_engine(infra.database_url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(async_url(infra.database_url)).set(database=name).render_as_string(hide_password=False)
    await run_migrations_async(url, intake_db.MIGRATIONS, intake_db.SCHEMA)
    engine = make_engine(url)
    yield engine
    await engine.dispose()
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()
