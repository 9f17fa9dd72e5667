"""case view: outcome, callback, reopen and recategorize counts, mediation rung and unit, corrected category

Revision ID: d843a91781c0
Revises: 4f1e9f239402
Create Date: 2026-12-06 04:30:00

Issue 12: what GET /v1/cases/{id} and Open311 show of the closed loop (services/intake/caseview.py).
Existing rows get NULLs and zero counts: the events that filled them carried none of these fields.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d843a91781c0"
down_revision: str | Sequence[str] | None = "4f1e9f239402"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("outcome", sa.String(24), "how the case ended (shared/contract/actions.py OUTCOMES)"),
    ("duplicate_of", sa.UUID(), "the original case of a duplicate"),
    ("outcome_seq", sa.Integer(), "sequence of the step that wrote outcome"),
    ("satisfaction", sa.String(24), "the newest callback's rating"),
    ("resident_resolved", sa.Boolean(), "the newest callback: resolved as the resident judges it"),
    ("callback_at", sa.DateTime(timezone=True), None),
    ("callback_seq", sa.Integer(), "sequence of the newest callback"),
    ("mediation_level", sa.String(16), "the current mediation rung"),
    ("unit", sa.String(24), "place code of the current coordinating unit / rung"),
    ("rung_seq", sa.Integer(), "sequence of the event that wrote mediation_level and unit"),
    ("corrected_category", sa.String(64), "the category set by the newest recategorization"),
    ("category_seq", sa.Integer(), "sequence of the event that wrote corrected_category"),
)
COUNTS = ("reopen_count", "recategorize_count")


def upgrade() -> None:
    """Add the closed-loop columns to intake.case_view."""
    for name, type_, comment in COLUMNS:
        op.add_column("case_view", sa.Column(name, type_, comment=comment), schema="intake")
    for name in COUNTS:
        op.add_column("case_view", sa.Column(name, sa.Integer(), server_default="0", nullable=False), schema="intake")


def downgrade() -> None:
    """Drop them."""
    for name in (*(c[0] for c in COLUMNS), *COUNTS):
        op.drop_column("case_view", name, schema="intake")
