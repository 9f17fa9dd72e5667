"""erasure of the audit trail's free text, request fingerprints, the security log (issue 16)

Revision ID: e5a1c7d9b2f4
Revises: abde09a85ec3
Create Date: 2026-12-06 20:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a1c7d9b2f4"
down_revision: str | Sequence[str] | None = "abde09a85ec3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The audit log stays append-only except for erasure: an UPDATE that changes ``detail`` only,
    inside a transaction that set ``gridcase.erasure = on`` (``SET LOCAL``), is let through.
    ``reports.request_hash`` and ``case_actions.request_hash``: the keyed fingerprint of the
    request body an Idempotency-Key first came with. ``security_log``: refused attempts from
    outside a case's tenant (the admin reads them; the tenant's audit trail does not hold them)."""
    op.execute("""
        CREATE OR REPLACE FUNCTION intake.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND current_setting('gridcase.erasure', true) = 'on'
               AND (to_jsonb(NEW) - 'detail') = (to_jsonb(OLD) - 'detail') THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'intake.audit_log is append-only (% refused)', TG_OP;
        END $$;
    """)
    op.add_column("reports", sa.Column("request_hash", sa.String(64),
                                       comment="keyed fingerprint of the body its Idempotency-Key came with"),
                  schema="intake")
    op.add_column("case_actions", sa.Column("request_hash", sa.String(64),
                                            comment="keyed fingerprint of the body its Idempotency-Key came with"),
                  schema="intake")
    op.create_table(
        "security_log",
        sa.Column("entry_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_ref", sa.String(64), nullable=False, comment="the refused credential's id"),
        sa.Column("actor_role", sa.String(40), nullable=False),
        sa.Column("actor_tenant", sa.String(40), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("target_tenant", sa.String(40), nullable=False, comment="the tenant of the case aimed at"),
        sa.Column("case_id", sa.UUID()),
        sa.Column("action", sa.String(40)),
        sa.Column("answer", sa.Integer(), nullable=False, comment="the HTTP status answered"),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_security_log")),
        schema="intake",
        comment="refused attempts from outside a case's tenant: who, what, when (GET /v1/security-log, admin)",
    )
    op.create_index("ix_intake_security_log_recorded", "security_log", ["recorded_at"], schema="intake")


def downgrade() -> None:
    """Drop the security log and the fingerprints; the audit log is strictly append-only again."""
    op.drop_table("security_log", schema="intake")
    op.drop_column("case_actions", "request_hash", schema="intake")
    op.drop_column("reports", "request_hash", schema="intake")
    op.execute("""
        CREATE OR REPLACE FUNCTION intake.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'intake.audit_log is append-only (% refused)', TG_OP;
        END $$;
    """)
