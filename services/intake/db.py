"""Intake's schema ``intake``: accepted reports (with the reporter's personal data) and the outbox.

``reports.reporter`` is the only place personal data is kept; events carry none of it.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.db import NAMING_CONVENTION, outbox_table

SCHEMA = "intake"
metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(128)),
    sa.Column("category_code", sa.String(64), nullable=False),
    sa.Column("place_code", sa.String(24), nullable=False),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("report", pg.JSONB, nullable=False),
    sa.Column("reporter", pg.JSONB),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_intake_reports_tenant_reported", "tenant", "reported_at"),
    sa.UniqueConstraint("tenant", "idempotency_key", name="uq_reports_idempotency"),
)

outbox = outbox_table(metadata, SCHEMA)
