"""Alembic environment of the dispatch schema."""

from services.dispatch.db import SCHEMA, metadata
from shared.platform.alembic_env import run

run(metadata, SCHEMA)
