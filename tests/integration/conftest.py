"""Fixtures for the integration tests: a migrated reporting schema on the session's real PostgreSQL."""

from __future__ import annotations

import pytest_asyncio

from services.reporting.db import MIGRATIONS as REPORTING_MIGRATIONS
from services.reporting.db import SCHEMA as REPORTING_SCHEMA
from shared.platform.db import make_engine, run_migrations_async


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def reporting_engine(infra):
    """An AsyncEngine on ``infra.database_url`` with the reporting migrations applied."""
    await run_migrations_async(infra.database_url, REPORTING_MIGRATIONS, REPORTING_SCHEMA)
    engine = make_engine(infra.database_url)
    yield engine
    await engine.dispose()
