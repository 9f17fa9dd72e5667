"""Dispatch's schema ``dispatch``: each case's current state, processed events, the outbox."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.db import NAMING_CONVENTION, outbox_table, processed_events_table

SCHEMA = "dispatch"
metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("place_code", sa.String(24), nullable=False),
    sa.Column("category_code", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("target_kind", sa.String(16), nullable=False),
    sa.Column("department", sa.String(100), nullable=False),
    sa.Column("rule", sa.String(120), nullable=False),
    sa.Column("mediation_level", sa.String(16)),
    sa.Column("history", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dispatched_at", sa.DateTime(timezone=True)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("transfer_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("events_emitted", sa.Integer, nullable=False, server_default="0", comment="lifecycle events written to the outbox"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_dispatch_cases_tenant_status", "tenant", "status"),
)

processed_events = processed_events_table(metadata, SCHEMA)
outbox = outbox_table(metadata, SCHEMA)
