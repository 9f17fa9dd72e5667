"""Alembic environment of the intake schema."""

from services.intake.db import SCHEMA, metadata
from shared.platform.alembic_env import run

run(metadata, SCHEMA)
