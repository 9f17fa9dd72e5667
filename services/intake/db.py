"""Intake's schema ``intake``: accepted reports (with the reporter's personal data), the outbox,
a read model of each case's lifecycle (``case_view``, ``case_events``) fed by dispatch's events,
the actions asked for and what dispatch decided about each (``case_actions``), and the
append-only audit trail of who did what to a case (``audit_log``).

``reports.reporter_sealed`` is the only place personal data is kept, AES-256-GCM encrypted
(shared/platform/crypto.py, bound to the case id); events carry none of it. ``anonymised_at`` is set when the
reporter data of a closed case has been erased (``IntakeSettings.anonymise_after_days``).
"""

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.domain.casefacts import case_fact_columns, closed_loop_columns
from shared.platform.db import NAMING_CONVENTION, outbox_table, processed_events_table

SCHEMA = "intake"
#: The schema's Alembic migrations (env.py and versions/).
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
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
    sa.Column("reporter_sealed", sa.LargeBinary, comment="reporter contact, AES-256-GCM (shared/platform/crypto.py)"),
    sa.Column("reporter_key_id", sa.String(32), comment="id of the key that sealed reporter_sealed"),
    sa.Column("anonymised_at", sa.DateTime(timezone=True), comment="reporter data erased after closure"),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64), comment="keyed fingerprint of the body its Idempotency-Key came with"),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # how the category came about (issue 15, docs/classifier.md §3); "corrected" is read from the case view
    sa.Column("category_source", sa.String(16), nullable=False, server_default="reported",
              comment="reported | predicted | unclassified (corrected: case view)"),
    sa.Column("model_version", sa.String(64), comment="the text model that predicted"),
    sa.Column("category_confidence", sa.Float(), comment="probability of the predicted class"),
    sa.Column("category_suggestions", pg.JSONB(), comment="top three [{category_code, confidence}] when predicted"),
    # the category a recategorization set, copied from the case view by its consumer
    # (services/intake/textstore.py keep_corrected_categories): the duplicate probe selects by the category now
    sa.Column("category_corrected", sa.String(64),
              comment="the case view's corrected category (NULL: never recategorized); possible duplicates"),
    sa.Index("ix_intake_reports_tenant_reported", "tenant", "reported_at"),
    sa.UniqueConstraint("tenant", "idempotency_key", name="uq_reports_idempotency"),
)

#: A stored report's category now: the corrected one once recategorized, else the one reported.
category_now = sa.func.coalesce(reports.c.category_corrected, reports.c.category_code)
# the possible-duplicate probe's index (services/intake/textstore.py, docs/classifier.md §4)
sa.Index("ix_intake_reports_tenant_category_now_reported", reports.c.tenant, category_now, reports.c.reported_at)

outbox = outbox_table(metadata, SCHEMA)

case_view = sa.Table(
    "case_view",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    *case_fact_columns(),
    *closed_loop_columns(),
    # the rung shown, intake's own (services/intake/caseview.py)
    sa.Column("mediation_level", sa.String(16), comment="the current mediation rung"),
    sa.Column("unit", sa.String(24), comment="place code of the current coordinating unit / rung"),
    sa.Column("rung_seq", sa.Integer, comment="sequence of the event that wrote mediation_level and unit"),
    comment="each case's current state, folded from dispatch's lifecycle events (shared/domain/casefacts.py, "
            "services/intake/caseview.py)",
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

case_actions = sa.Table(
    "case_actions",
    metadata,
    sa.Column("action_id", pg.UUID(as_uuid=True), primary_key=True,
              comment="the request's id (its CaseActionRequested event id and action_id)"),
    sa.Column("case_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("actor_ref", sa.String(64), comment="the requesting credential's id"),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending", comment="pending | applied | refused"),
    sa.Column("reason", sa.String(500), nullable=False, server_default="", comment="dispatch's reason for a refusal"),
    sa.Column("state", sa.String(24), comment="the case's state after the action (applied) or when refused"),
    sa.Column("allowed_actions", pg.JSONB, comment="the actions allowed in that state (refused)"),
    sa.Column("sequence", sa.Integer, comment="sequence of the newest transition that applied it"),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("request_hash", sa.String(64), comment="keyed fingerprint of the body its Idempotency-Key came with"),
    sa.Index("ix_intake_case_actions_case", "case_id", "requested_at"),
    comment="each action asked for through POST /v1/cases/{id}/actions and dispatch's decision on it",
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("audit_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("case_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor_ref", sa.String(64), comment="credential id (k…/t…); 'system' for dispatch's own steps"),
    sa.Column("actor_role", sa.String(40), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("from_state", sa.String(32)),
    sa.Column("to_state", sa.String(32)),
    sa.Column("outcome", sa.String(16), nullable=False, comment="requested | applied | rejected | refused"),
    sa.Column("detail", sa.String(500), nullable=False, server_default=""),
    sa.Column("event_id", pg.UUID(as_uuid=True), unique=True, comment="the event recorded (dedupes redelivery)"),
    sa.Index("ix_intake_audit_log_case", "case_id", "audit_id"),
    comment="append-only (a trigger refuses UPDATE, DELETE and TRUNCATE; erasure alone may rewrite detail): "
            "who did what to a case",
)

security_log = sa.Table(
    "security_log",
    metadata,
    sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("actor_ref", sa.String(64), nullable=False, comment="the refused credential's id"),
    sa.Column("actor_role", sa.String(40), nullable=False),
    sa.Column("actor_tenant", sa.String(40), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(300), nullable=False),
    sa.Column("target_tenant", sa.String(40), nullable=False, comment="the tenant of the case aimed at"),
    sa.Column("case_id", pg.UUID(as_uuid=True)),
    sa.Column("action", sa.String(40)),
    sa.Column("answer", sa.Integer, nullable=False, comment="the HTTP status answered"),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Index("ix_intake_security_log_recorded", "recorded_at"),
    comment="refused attempts from outside a case's tenant: who, what, when (GET /v1/security-log, admin)",
)
