"""Alembic environment of the reporting schema."""

from services.reporting.db import SCHEMA, metadata
from shared.platform.alembic_env import run

run(metadata, SCHEMA)
