"""Alembic environment of the ``auth`` schema (shared/authstore.py)."""

from shared.alembic_env import run
from shared.authstore import SCHEMA, metadata

run(metadata, SCHEMA)
