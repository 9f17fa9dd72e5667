"""Reporting's schema ``reporting``: one fact row per case, folded from events as they arrive.

Every column is written by exactly one kind of event and the merge rules are commutative (see
``services/reporting/facts.py``), so events may arrive late, out of order or twice and the row
still ends the same.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.db import NAMING_CONVENTION, processed_events_table

SCHEMA = "reporting"
metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

case_facts = sa.Table(
    "case_facts",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("place_code", sa.String(24), nullable=False),
    # from case.reported
    sa.Column("reported_at", sa.DateTime(timezone=True)),
    sa.Column("category_code", sa.String(64)),
    sa.Column("category_name", sa.String(200)),
    sa.Column("channel", sa.String(64)),
    sa.Column("request_type", sa.String(32)),
    sa.Column("source", sa.String(32)),
    sa.Column("history", sa.Boolean),
    # from case.dispatched / case.transferred (latest by occurred_at wins)
    sa.Column("target_kind", sa.String(16)),
    sa.Column("department", sa.String(100)),
    sa.Column("department_at", sa.DateTime(timezone=True)),
    sa.Column("department_seq", sa.Integer),
    sa.Column("dispatched_at", sa.DateTime(timezone=True)),
    sa.Column("deadline", sa.DateTime(timezone=True)),
    sa.Column("transfer_count", sa.Integer, nullable=False, server_default="0"),
    # from case.closed / case.status_recorded
    sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("source_status", sa.String(64)),
    sa.Column("event_count", sa.Integer, nullable=False, server_default="0", comment="events folded into this row"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_reporting_case_facts_tenant_reported", "tenant", "reported_at"),
    sa.Index("ix_reporting_case_facts_tenant_place", "tenant", "place_code"),
)

processed_events = processed_events_table(metadata, SCHEMA)
