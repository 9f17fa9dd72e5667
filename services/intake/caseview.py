"""The case view's own columns (services/intake/db.py ``case_view``, beside the shared fact columns of
shared/domain/casefacts.py): what ``GET /v1/cases/{id}`` and Open311 show of the closed loop
(issue 12) — how the case ended, the newest callback, how often it was reopened and recategorized,
the current mediation rung and unit, the corrected category — folded from dispatch's lifecycle
events, and the rules that read them.

Fold rules (each column keeps the sequence of the event that wrote it, so the row does not depend
on the order events arrive in):

- A step that ends the case (a transition into closed, rejected or cancelled from another state)
  writes ``outcome`` and ``duplicate_of`` when it is the newest such step (``outcome_seq``).
- A ``callback`` writes ``satisfaction``, ``resident_resolved`` and ``callback_at`` when it is the
  newest callback (``callback_seq``).
- ``reopen_count`` and ``recategorize_count`` take the maximum (they only grow).
- Every transition and dispatch writes ``mediation_level`` and ``unit`` when it is the newest
  (``rung_seq``).
- A transition or dispatch carrying a ``category_code`` (a recategorization, or the dispatch that
  follows it) writes ``corrected_category`` when it is the newest such event (``category_seq``).

Reading: a case reopened (``reopen_count`` > 0) is closed only while its state is ``closed`` (the
shared fold's ``closed`` flag never clears); the outcome is shown only while the case is ended.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import db
from shared.contract.events import CaseDispatched, CaseTransitioned

#: States that end a case (Open311 shows them ``closed``; final unless a closed case is reopened):
#: the step into one records the outcome.
ENDED_STATES: tuple[str, ...] = ("closed", "rejected", "cancelled")


def _params() -> dict[str, sa.BindParameter]:
    typed = {"case_id": pg.UUID(as_uuid=True), "outcome": sa.String, "duplicate_of": pg.UUID(as_uuid=True),
             "outcome_seq": sa.Integer, "satisfaction": sa.String, "resident_resolved": sa.Boolean,
             "callback_at": sa.DateTime(timezone=True), "callback_seq": sa.Integer, "reopen_count": sa.Integer,
             "recategorize_count": sa.Integer, "mediation_level": sa.String, "unit": sa.String,
             "rung_seq": sa.Integer, "corrected_category": sa.String, "category_seq": sa.Integer}
    # names apart from the columns' (an UPDATE reserves those for its SET clause)
    return {name: sa.bindparam(f"p_{name}", type_=type_) for name, type_ in typed.items()}


def _update() -> sa.Update:
    """The one UPDATE every folded event runs (executemany), with the rules of the module docstring."""
    v, p = db.case_view, _params()

    def by(seq: str, *columns: str) -> dict:
        newer = sa.and_(p[seq].is_not(None), sa.or_(v.c[seq].is_(None), p[seq] > v.c[seq]))
        return {**{c: sa.case((newer, p[c]), else_=v.c[c]) for c in columns}, seq: sa.func.greatest(v.c[seq], p[seq])}

    return v.update().where(v.c.case_id == p["case_id"]).values(
        **by("outcome_seq", "outcome", "duplicate_of"),
        **by("callback_seq", "satisfaction", "resident_resolved", "callback_at"),
        **by("rung_seq", "mediation_level", "unit"),
        **by("category_seq", "corrected_category"),
        reopen_count=sa.func.greatest(v.c.reopen_count, p["reopen_count"]),
        recategorize_count=sa.func.greatest(v.c.recategorize_count, p["recategorize_count"]),
    )


_UPDATE = _update()


def view_values(ev: CaseTransitioned | CaseDispatched) -> dict:
    """The parameters of the view's UPDATE for one transition or dispatch (``p_<column>``)."""
    ends = isinstance(ev, CaseTransitioned) and ev.to_state in ENDED_STATES and ev.from_state != ev.to_state
    callback = isinstance(ev, CaseTransitioned) and ev.action == "callback"
    values = {
        "case_id": ev.case_id,
        "outcome_seq": ev.sequence if ends else None,
        "outcome": ev.outcome if ends else None,
        "duplicate_of": ev.duplicate_of if ends else None,
        "callback_seq": ev.sequence if callback else None,
        "satisfaction": ev.satisfaction if callback else None,
        "resident_resolved": ev.resident_resolved if callback else None,
        "callback_at": ev.occurred_at if callback else None,
        "reopen_count": getattr(ev, "reopen_count", None),
        "recategorize_count": getattr(ev, "recategorize_count", None),
        "rung_seq": ev.sequence,
        "mediation_level": ev.mediation_level,
        "unit": ev.unit,
        "category_seq": ev.sequence if ev.category_code else None,
        "corrected_category": ev.category_code,
    }
    return {f"p_{name}": value for name, value in values.items()}


async def fold_view(conn: AsyncConnection, events) -> None:
    """Fold ``events`` into the view's own columns, after shared/domain/casefacts.py's fold has
    created the rows (same transaction)."""
    rows = [view_values(e) for e in events if isinstance(e, (CaseTransitioned, CaseDispatched))]
    if rows:
        await conn.execute(_UPDATE, rows)


def closed_now(state: str | None, closed: bool | None, reopen_count: int | None) -> bool:
    """The fold's closed flag, except that a reopened case is closed only while its state is
    ``closed`` (the flag never clears)."""
    return bool(closed) and (not reopen_count or state == "closed")


def closed_now_clause() -> sa.ColumnElement[bool]:
    """:func:`closed_now` in SQL over ``intake.case_view`` (NULL columns: an outer join without a view row)."""
    v = db.case_view
    return sa.and_(sa.func.coalesce(v.c.closed, False),
                   sa.or_(sa.func.coalesce(v.c.reopen_count, 0) == 0, v.c.state == "closed"))
