"""case view: the shared closed-loop columns (one fold with reporting's case_facts)

Revision ID: abde09a85ec3
Revises: d843a91781c0
Create Date: 2026-12-08 10:00:00

Written by hand. intake.case_view now has shared/domain/casefacts.py ``closed_loop_columns`` and
is folded by the shared closed-loop rules, as reporting.case_facts; services/intake/caseview.py
keeps only the rung shown (``mediation_level``, ``unit``, ``rung_seq``). The view's own
``corrected_category`` becomes the shared ``category_code`` (with ``category_seq``, already there);
``urgency``, ``accepted_at``, ``final_closed_at``, ``close_seq`` and ``reopen_seq`` are added.

Existing rows are filled from the case's lifecycle events kept in ``intake.case_events`` (every
event the view has folded), with the shared rules: the newest closing transition (``close_seq``,
``final_closed_at``; a recorded closure's ``closed_at`` otherwise), the newest reopen
(``reopen_seq``), the earliest sign of acceptance (``accepted_at``), the place of the
recategorization (``place_code``); ``closed`` then clears on a case reopened since its last closure
(what GET /v1/cases/{id} and Open311 already showed). ``urgency`` comes from ``case.reported``,
which the view does not read: NULL.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "abde09a85ec3"
down_revision: str | Sequence[str] | None = "d843a91781c0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: New columns: (name, type, comment), as shared/domain/casefacts.py ``closed_loop_columns``.
COLUMNS = (
    ("urgency", sa.String(8), None),
    ("accepted_at", sa.DateTime(timezone=True), "受理: the earliest sign of acceptance"),
    ("final_closed_at", sa.DateTime(timezone=True), "the newest closure (closed_at: the first)"),
    ("close_seq", sa.Integer(), "sequence of the newest closing transition"),
    ("reopen_seq", sa.Integer(), "sequence of the newest reopen"),
)
#: Columns that stay, with the view's comment (revision d843a91781c0) and the shared one.
COMMENTS = (
    ("outcome", sa.String(24), "how the case ended (shared/contract/actions.py OUTCOMES)", None),
    ("duplicate_of", sa.UUID(), "the original case of a duplicate", None),
    ("satisfaction", sa.String(24), "the newest callback's rating", None),
    ("resident_resolved", sa.Boolean(), "the newest callback: resolved as the resident judges it", None),
    ("category_seq", sa.Integer(), "sequence of the event that wrote corrected_category",
     "sequence of the recategorization that wrote category_code"),
)
CORRECTED = ("corrected_category", sa.String(64), "the category set by the newest recategorization")

#: Per case, from its kept lifecycle events: the newest closing transition and its time, the newest
#: reopen, the earliest acceptance, a recorded closure's time.
FROM_EVENTS = """
UPDATE intake.case_view v
   SET close_seq = s.close_seq,
       reopen_seq = s.reopen_seq,
       final_closed_at = coalesce(s.final_closed_at, s.recorded_closed_at),
       accepted_at = s.accepted_at
  FROM (SELECT case_id,
               max(seq) FILTER (WHERE closing) AS close_seq,
               (array_agg(occurred_at ORDER BY seq DESC) FILTER (WHERE closing))[1] AS final_closed_at,
               max(seq) FILTER (WHERE action = 'reopen') AS reopen_seq,
               min(occurred_at) FILTER (WHERE accepting) AS accepted_at,
               max(closed_at) FILTER (WHERE event_type = 'case.closed') AS recorded_closed_at
          FROM (SELECT case_id, event_type, occurred_at,
                       (payload->>'sequence')::int AS seq,
                       payload->>'action' AS action,
                       (payload->>'closed_at')::timestamptz AS closed_at,
                       event_type = 'case.transitioned' AND payload->>'to_state' = 'closed'
                           AND payload->>'from_state' <> 'closed' AS closing,
                       event_type IN ('case.dispatched', 'case.transferred', 'case.closed', 'case.status_recorded')
                           OR (event_type = 'case.transitioned'
                               AND (payload->>'action' = 'accept' OR payload->>'from_state' <> 'reported')) AS accepting
                  FROM intake.case_events) e
         GROUP BY case_id) s
 WHERE s.case_id = v.case_id
"""

#: The place of the event that wrote the corrected category (its envelope's).
RECATEGORIZED_PLACE = """
UPDATE intake.case_view v
   SET place_code = e.payload->>'place_code'
  FROM intake.case_events e
 WHERE e.case_id = v.case_id
   AND e.event_type IN ('case.dispatched', 'case.transitioned')
   AND e.payload->>'category_code' IS NOT NULL
   AND (e.payload->>'sequence')::int = v.category_seq
"""


def upgrade() -> None:
    """Add the shared closed-loop columns to intake.case_view and fill them; drop corrected_category."""
    for name, type_, comment in COLUMNS:
        op.add_column("case_view", sa.Column(name, type_, comment=comment), schema="intake")
    for name, type_, old, new in COMMENTS:
        op.alter_column("case_view", name, existing_type=type_, comment=new, existing_comment=old, schema="intake")
    op.execute("UPDATE intake.case_view SET category_code = corrected_category, category_name = NULL"
               " WHERE category_seq IS NOT NULL")
    op.execute(RECATEGORIZED_PLACE)
    op.execute(FROM_EVENTS)
    op.execute("UPDATE intake.case_view SET closed = close_seq > coalesce(reopen_seq, -1) WHERE close_seq IS NOT NULL")
    op.drop_column("case_view", CORRECTED[0], schema="intake")


def downgrade() -> None:
    """Back to the view's own corrected_category and a closed flag that never clears."""
    name, type_, comment = CORRECTED
    op.add_column("case_view", sa.Column(name, type_, comment=comment), schema="intake")
    op.execute("UPDATE intake.case_view SET corrected_category = category_code, category_code = NULL,"
               " category_name = NULL WHERE category_seq IS NOT NULL")
    op.execute("UPDATE intake.case_view SET closed = true WHERE close_seq IS NOT NULL")
    for name, type_, old, new in COMMENTS:
        op.alter_column("case_view", name, existing_type=type_, comment=old, existing_comment=new, schema="intake")
    for name, _, _ in reversed(COLUMNS):
        op.drop_column("case_view", name, schema="intake")
