"""sealed reporter data, anonymisation mark, append-only audit log

Revision ID: b7e2a9c41d03
Revises: 31a9fa9a83ab
Create Date: 2026-11-29 12:50:00

The plaintext ``reporter`` column is dropped, not converted: a migration has no access to the
encryption keys, and no deployment holds real reporter data yet (pre-release).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b7e2a9c41d03"
down_revision: str | Sequence[str] | None = "31a9fa9a83ab"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Seal reporter data; add intake.audit_log with its append-only trigger."""
    op.drop_column("reports", "reporter", schema="intake")
    op.add_column("reports", sa.Column("reporter_sealed", sa.LargeBinary(),
                                       comment="reporter contact, AES-256-GCM (shared/platform/crypto.py)"), schema="intake")
    op.add_column("reports", sa.Column("reporter_key_id", sa.String(32),
                                       comment="id of the key that sealed reporter_sealed"), schema="intake")
    op.add_column("reports", sa.Column("anonymised_at", sa.DateTime(timezone=True),
                                       comment="reporter data erased after closure"), schema="intake")
    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("tenant", sa.String(40), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_ref", sa.String(64), comment="credential id (k…/t…); 'system' for dispatch's own steps"),
        sa.Column("actor_role", sa.String(40), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32)),
        sa.Column("outcome", sa.String(16), nullable=False, comment="requested | applied | rejected | refused"),
        sa.Column("detail", sa.String(500), server_default="", nullable=False),
        sa.Column("event_id", sa.UUID(), comment="the event recorded (dedupes redelivery)"),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_log_event_id")),
        schema="intake",
        comment="append-only (a trigger refuses UPDATE, DELETE and TRUNCATE): who did what to a case",
    )
    op.create_index("ix_intake_audit_log_case", "audit_log", ["case_id", "audit_id"], schema="intake")
    op.execute("""
        CREATE FUNCTION intake.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'intake.audit_log is append-only (% refused)', TG_OP;
        END $$;
    """)
    op.execute("CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON intake.audit_log "
               "FOR EACH ROW EXECUTE FUNCTION intake.audit_log_append_only()")
    op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON intake.audit_log "
               "FOR EACH STATEMENT EXECUTE FUNCTION intake.audit_log_append_only()")


def downgrade() -> None:
    """Drop the audit log and the sealed columns (sealed data is lost)."""
    op.drop_table("audit_log", schema="intake")
    op.execute("DROP FUNCTION intake.audit_log_append_only()")
    op.drop_column("reports", "anonymised_at", schema="intake")
    op.drop_column("reports", "reporter_key_id", schema="intake")
    op.drop_column("reports", "reporter_sealed", schema="intake")
    op.add_column("reports", sa.Column("reporter", postgresql.JSONB()), schema="intake")
