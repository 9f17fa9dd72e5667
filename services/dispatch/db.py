"""Dispatch's schema ``dispatch``: each case's current state, processed events, the outbox."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.platform.db import NAMING_CONVENTION, outbox_table, processed_events_table
from shared.platform.tally import tally_table

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
    sa.Column("urgency", sa.String(8)),
    sa.Column("lifecycle", pg.JSONB, comment="the lifecycle Case (services/dispatch/lifecycle.py) as JSON"),
    sa.Column("seq", sa.Integer, nullable=False, server_default="1", comment="last transition sequence"),
    sa.Column("events_emitted", sa.Integer, nullable=False, server_default="0", comment="lifecycle events written to the outbox"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_dispatch_cases_tenant_status", "tenant", "status"),
    # the cases merged into a case as its duplicates (store.py CaseBook.merged_into): only cases
    # that name an original are in it, so a lookup reads those, not every cancelled case
    sa.Index("ix_dispatch_cases_duplicate_of", sa.text("(lifecycle ->> 'duplicate_of')"),
             postgresql_where=sa.text("(lifecycle ->> 'duplicate_of') IS NOT NULL")),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True, comment="yellow | red | higher"),
    sa.Column("generation", sa.Integer, primary_key=True, comment="the case's deadline version"),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fired_at", sa.DateTime(timezone=True)),
    sa.Index("ix_dispatch_timers_due", "due_at", postgresql_where=sa.text("fired_at IS NULL")),
    comment="deadline alerts; a row fires once (SELECT … FOR UPDATE SKIP LOCKED, fired_at in the same transaction)",
)

pending_actions = sa.Table(
    "pending_actions",
    metadata,
    sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("case_id", pg.UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("payload", pg.JSONB, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    comment="actions that arrived before their case's report; applied right after it",
)

#: cases and lifecycle events emitted per tenant, as deltas appended by triggers on ``cases``
#: (shared/platform/tally.py; migration c5a1f0e7d342): ``GET /v1/progress`` without a scan
case_tally = tally_table(metadata, "case_tally", ["cases", "events_emitted"], "cases")

processed_events = processed_events_table(metadata, SCHEMA)
outbox = outbox_table(metadata, SCHEMA)
