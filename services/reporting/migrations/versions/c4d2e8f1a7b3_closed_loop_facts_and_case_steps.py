"""closed loop: case_facts acceptance, outcome, reopen, recategorization, callback columns; case_steps

Revision ID: c4d2e8f1a7b3
Revises: e8a4c6b2d913
Create Date: 2026-12-02 10:00:00

Written by hand (issue 12). Existing rows get what their columns allow: ``accepted_at`` from the
report (history, grid worker), the first dispatch or the report time of a case that left
``reported``; ``final_closed_at`` = ``closed_at``. ``case_steps`` starts empty. ``gridcase reporting
rebuild`` recomputes both exactly from the event log.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'c4d2e8f1a7b3'
down_revision: str | Sequence[str] | None = 'e8a4c6b2d913'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The lifetime index's expression before and after (services/reporting/db.py LIFETIME_END).
OLD_LIFETIME = ("(CASE WHEN closed THEN greatest(COALESCE(closed_at, reported_at), reported_at) "
                "ELSE 'infinity'::timestamptz END)")
NEW_LIFETIME = ("(CASE WHEN closed THEN greatest(COALESCE(final_closed_at, closed_at, reported_at), reported_at) "
                "ELSE 'infinity'::timestamptz END)")


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('case_facts', sa.Column('urgency', sa.String(length=8), nullable=True), schema='reporting')
    op.add_column('case_facts', sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True, comment='受理: the earliest sign of acceptance'), schema='reporting')
    op.add_column('case_facts', sa.Column('category_seq', sa.Integer(), nullable=True, comment='sequence of the recategorization that wrote category_code'), schema='reporting')
    op.add_column('case_facts', sa.Column('final_closed_at', sa.DateTime(timezone=True), nullable=True, comment='the newest closure (closed_at: the first)'), schema='reporting')
    op.add_column('case_facts', sa.Column('close_seq', sa.Integer(), nullable=True, comment='sequence of the newest closing transition'), schema='reporting')
    op.add_column('case_facts', sa.Column('reopen_seq', sa.Integer(), nullable=True, comment='sequence of the newest reopen'), schema='reporting')
    op.add_column('case_facts', sa.Column('outcome', sa.String(length=24), nullable=True), schema='reporting')
    op.add_column('case_facts', sa.Column('duplicate_of', sa.Uuid(), nullable=True), schema='reporting')
    op.add_column('case_facts', sa.Column('outcome_seq', sa.Integer(), nullable=True, comment='sequence of the step that wrote outcome'), schema='reporting')
    op.add_column('case_facts', sa.Column('reopen_count', sa.Integer(), server_default='0', nullable=False), schema='reporting')
    op.add_column('case_facts', sa.Column('recategorize_count', sa.Integer(), server_default='0', nullable=False), schema='reporting')
    op.add_column('case_facts', sa.Column('satisfaction', sa.String(length=24), nullable=True), schema='reporting')
    op.add_column('case_facts', sa.Column('resident_resolved', sa.Boolean(), nullable=True), schema='reporting')
    op.add_column('case_facts', sa.Column('callback_at', sa.DateTime(timezone=True), nullable=True), schema='reporting')
    op.add_column('case_facts', sa.Column('callback_seq', sa.Integer(), nullable=True, comment='sequence of the newest callback'), schema='reporting')
    op.execute(
        "UPDATE reporting.case_facts SET accepted_at = CASE"
        " WHEN history OR channel = 'grid_worker' THEN reported_at"
        " WHEN dispatched_at IS NOT NULL THEN dispatched_at"
        " WHEN state IS NOT NULL AND state NOT IN ('reported', 'rejected', 'cancelled') THEN reported_at END,"
        " final_closed_at = CASE WHEN closed THEN closed_at END"
    )
    op.drop_index('ix_reporting_case_facts_tenant_lifetime', table_name='case_facts', schema='reporting')
    op.create_index('ix_reporting_case_facts_tenant_lifetime', 'case_facts', ['tenant', sa.literal_column(NEW_LIFETIME), 'reported_at'], unique=False, schema='reporting')
    op.create_table('case_steps',
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('from_state', sa.String(length=24), nullable=True),
    sa.Column('to_state', sa.String(length=24), nullable=True),
    sa.Column('target_kind', sa.String(length=16), nullable=True),
    sa.Column('department', sa.String(length=100), nullable=True, comment="the case's department after the step"),
    sa.Column('from_department', sa.String(length=100), nullable=True, comment='before the step, as the event says'),
    sa.Column('mediation_level', sa.String(length=16), nullable=True),
    sa.Column('from_mediation_level', sa.String(length=16), nullable=True),
    sa.Column('unit', sa.String(length=24), nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('satisfaction', sa.String(length=24), nullable=True),
    sa.Column('resident_resolved', sa.Boolean(), nullable=True),
    sa.Column('history', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.PrimaryKeyConstraint('case_id', 'sequence', name=op.f('pk_case_steps')),
    schema='reporting'
    )
    op.create_index('ix_reporting_case_steps_tenant_at', 'case_steps', ['tenant', 'at'], unique=False, schema='reporting')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_reporting_case_steps_tenant_at', table_name='case_steps', schema='reporting')
    op.drop_table('case_steps', schema='reporting')
    op.drop_index('ix_reporting_case_facts_tenant_lifetime', table_name='case_facts', schema='reporting')
    op.create_index('ix_reporting_case_facts_tenant_lifetime', 'case_facts', ['tenant', sa.literal_column(OLD_LIFETIME), 'reported_at'], unique=False, schema='reporting')
    for column in ('callback_seq', 'callback_at', 'resident_resolved', 'satisfaction', 'recategorize_count',
                   'reopen_count', 'outcome_seq', 'duplicate_of', 'outcome', 'reopen_seq', 'close_seq',
                   'final_closed_at', 'category_seq', 'accepted_at', 'urgency'):
        op.drop_column('case_facts', column, schema='reporting')
