"""Intake's schema ``intake``: accepted reports (with the reporter's personal data), the outbox,
and a read model of each case's lifecycle (``case_view``, ``case_events``) fed by dispatch's events.

``reports.reporter`` is the only place personal data is kept; events carry none of it.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.casefacts import case_fact_columns
from shared.db import NAMING_CONVENTION, outbox_table, processed_events_table

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

case_view = sa.Table(
    "case_view",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    *case_fact_columns(),
    comment="each case's current state, folded from dispatch's lifecycle events (shared/casefacts.py)",
)

case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("case_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", pg.JSONB, nullable=False),
    sa.Index("ix_intake_case_events_case", "case_id", "occurred_at"),
    comment="each case's lifecycle events, for its history (GET /v1/cases/{id})",
)

processed_events = processed_events_table(metadata, SCHEMA)
