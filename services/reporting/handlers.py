"""Reporting's event handler: the fold of every case and patrol event into
``reporting.case_facts``, ``reporting.case_steps`` and ``reporting.patrols`` (services/reporting/db.py).

The merge rules live in :mod:`shared.domain.casefacts` (shared with intake's case view); the
consumer (services/reporting/main.py) hands each batch to :data:`apply_events` in one
transaction, and ``gridcase reporting rebuild`` (gridcase/ops.py) folds the event log with it.
"""

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import case_facts, case_steps, case_texts, patrols
from shared.contract.events import CaseReported
from shared.domain.casefacts import CaseFold

fold = CaseFold(case_facts, patrols, case_steps)

#: Characters of a case's text kept for hot issues (enough to group by; the events carry up to 4000).
TEXT_MAX = 1000


def text_row(ev: CaseReported) -> dict:
    return {"case_id": ev.case_id, "tenant": ev.tenant, "place_code": ev.place_code, "category_code": ev.category_code,
            "reported_at": ev.reported_at, "reporter_ref": ev.reporter_ref, "description": ev.description[:TEXT_MAX]}


async def apply_events(conn: AsyncConnection, events: list) -> None:
    """Fold events in the caller's transaction; a ``CaseReported`` also keeps its masked text
    (``reporting.case_texts``, once per case)."""
    await fold(conn, events)
    texts = [text_row(ev) for ev in events if isinstance(ev, CaseReported)]
    if texts:
        await conn.execute(insert(case_texts).on_conflict_do_nothing(), texts)
