"""Alembic environment of the ``auth`` schema (shared/platform/authstore.py)."""

from shared.platform.alembic_env import run
from shared.platform.authstore import SCHEMA, metadata

run(metadata, SCHEMA)
