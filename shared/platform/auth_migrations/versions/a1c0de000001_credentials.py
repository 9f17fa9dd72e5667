"""credentials: API keys (hashed) and issued JWTs

Revision ID: a1c0de000001
Revises:
Create Date: 2026-11-29 12:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c0de000001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create auth.credentials."""
    op.create_table(
        "credentials",
        sa.Column("credential_id", sa.String(40), primary_key=True, comment="API key id (k…) or JWT jti (t…)"),
        sa.Column("kind", sa.String(8), nullable=False, comment="api_key | jwt"),
        sa.Column("secret_sha256", sa.String(64), comment="hex SHA-256 of an API key's secret; NULL for JWTs"),
        sa.Column("tenant", sa.String(40), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(24), nullable=False, server_default=""),
        sa.Column("department", sa.String(100)),
        sa.Column("label", sa.String(200), nullable=False, server_default="", comment="what the credential is for"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_credentials")),
        schema="auth",
    )


def downgrade() -> None:
    """Drop auth.credentials."""
    op.drop_table("credentials", schema="auth")
