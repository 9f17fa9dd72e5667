"""Reporting's schema ``reporting``: one fact row per case, folded from events as they arrive.

Every column is written by exactly one kind of event and the merge rules are commutative (see
``services/reporting/facts.py``), so events may arrive late, out of order or twice and the row
still ends the same.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.casefacts import case_fact_columns
from shared.db import NAMING_CONVENTION, processed_events_table

SCHEMA = "reporting"
metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

case_facts = sa.Table(
    "case_facts",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    *case_fact_columns(),
    sa.Index("ix_reporting_case_facts_tenant_reported", "tenant", "reported_at"),
    sa.Index("ix_reporting_case_facts_tenant_place", "tenant", "place_code"),
)

patrols = sa.Table(
    "patrols",
    metadata,
    sa.Column("patrol_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("place_code", sa.String(24), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("findings", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_reporting_patrols_tenant_started", "tenant", "started_at"),
)

processed_events = processed_events_table(metadata, SCHEMA)
