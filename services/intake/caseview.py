"""What intake's case view (services/intake/db.py ``case_view``) has beyond the shared fact table,
and how ``GET /v1/cases/{id}`` and Open311 read it.

The view is folded by shared/domain/casefacts.py ``CaseFold`` with the fact columns and the
closed-loop columns (issue 12: outcome and ``duplicate_of``, the newest callback, reopen and
recategorize counts, the corrected category, ``closed`` clearing on a reopen), the same rules
reporting's ``case_facts`` follows. Intake adds only the rung it shows: every transition and dispatch
writes ``mediation_level`` and ``unit`` when it is the newest (``rung_seq``; the row does not depend
on the order events arrive in). Reporting keeps the rung of every step instead
(shared/domain/casesteps.py).

Reading: a case reopened (``reopen_count`` > 0) is closed only while its state is ``closed``; the
outcome is shown only while the case is ended (:data:`~shared.domain.casefacts.ENDING_STATES`); the
category shown is the corrected one once recategorized (``category_seq`` set), else the report's.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import db
from shared.contract.events import CaseDispatched, CaseTransitioned


def _update() -> sa.Update:
    """The one UPDATE every folded transition and dispatch runs (executemany): the newest rung wins."""
    v = db.case_view
    # parameter names apart from the columns' (an UPDATE reserves those for its SET clause)
    case_id = sa.bindparam("p_case_id", type_=pg.UUID(as_uuid=True))
    seq = sa.bindparam("p_rung_seq", type_=sa.Integer)
    newer = sa.and_(seq.is_not(None), sa.or_(v.c.rung_seq.is_(None), seq > v.c.rung_seq))
    return v.update().where(v.c.case_id == case_id).values(
        mediation_level=sa.case((newer, sa.bindparam("p_mediation_level", type_=sa.String)), else_=v.c.mediation_level),
        unit=sa.case((newer, sa.bindparam("p_unit", type_=sa.String)), else_=v.c.unit),
        rung_seq=sa.func.greatest(v.c.rung_seq, seq),
    )


_UPDATE = _update()


def view_values(ev: CaseTransitioned | CaseDispatched) -> dict:
    """The parameters of the view's rung UPDATE for one transition or dispatch (``p_<column>``)."""
    return {"p_case_id": ev.case_id, "p_rung_seq": ev.sequence, "p_mediation_level": ev.mediation_level,
            "p_unit": ev.unit}


async def fold_view(conn: AsyncConnection, events) -> None:
    """Fold ``events`` into the view's rung columns, after shared/domain/casefacts.py's fold has
    created the rows (same transaction)."""
    rows = [view_values(e) for e in events if isinstance(e, (CaseTransitioned, CaseDispatched))]
    if rows:
        await conn.execute(_UPDATE, rows)


def closed_now(state: str | None, closed: bool | None, reopen_count: int | None) -> bool:
    """The view's closed flag, except that a reopened case is closed only while its state is
    ``closed``."""
    return bool(closed) and (not reopen_count or state == "closed")


def closed_now_clause() -> sa.ColumnElement[bool]:
    """:func:`closed_now` in SQL over ``intake.case_view`` (NULL columns: an outer join without a view row)."""
    v = db.case_view
    return sa.and_(sa.func.coalesce(v.c.closed, False),
                   sa.or_(sa.func.coalesce(v.c.reopen_count, 0) == 0, v.c.state == "closed"))


def corrected_category(row: dict) -> str | None:
    """The category a recategorization set (the view's ``category_code`` once ``category_seq`` is
    set), else ``None``: the report's stands."""
    return row.get("category_code") if row.get("category_seq") is not None else None
