"""Folding events into ``reporting.case_facts`` (one row per case).

Merge rules, chosen so that the final row does not depend on the order events arrive in (a
closure may arrive before its report, a transfer before its dispatch):

- ``case.reported`` writes the report columns (category, channel, reported_at, …).
- ``case.dispatched`` / ``case.transferred`` write ``department`` only if their
  ``(occurred_at, sequence)`` is not older than the one that wrote it last; ``dispatched_at`` keeps
  the earliest dispatch; each transfer adds 1 to ``transfer_count``.
- ``case.closed`` sets ``closed``, ``closed_at`` and the source status; a recorded open status
  (``case.status_recorded``) never overwrites the status a closure wrote.

Each event is applied once: :class:`shared.consumer.BatchProcessor` filters redeliveries through
``processed_events`` in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import case_facts as cf
from shared.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseStatusRecorded,
    CaseTransferred,
    Event,
)

_ins = insert(cf)
_x = _ins.excluded
_newer = sa.or_(cf.c.department_at.is_(None), sa.tuple_(_x.department_at, _x.department_seq) >= sa.tuple_(cf.c.department_at, cf.c.department_seq))

UPSERT = {
    "case.reported": _ins.on_conflict_do_update(
        index_elements=[cf.c.case_id],
        set_={
            "place_code": _x.place_code,
            "reported_at": _x.reported_at,
            "category_code": _x.category_code,
            "category_name": _x.category_name,
            "channel": _x.channel,
            "request_type": _x.request_type,
            "source": _x.source,
            "history": _x.history,
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
    ),
    "case.dispatched": _ins.on_conflict_do_update(
        index_elements=[cf.c.case_id],
        set_={
            # Only dispatches write target_kind (a transfer keeps it), so the newest dispatch
            # wins, and any dispatch fills a row a transfer created first.
            "target_kind": sa.case((sa.or_(_newer, cf.c.target_kind.is_(None)), _x.target_kind), else_=cf.c.target_kind),
            "department": sa.case((_newer, _x.department), else_=cf.c.department),
            "department_seq": sa.case((_newer, _x.department_seq), else_=cf.c.department_seq),
            "department_at": sa.case((_newer, _x.department_at), else_=cf.c.department_at),
            "dispatched_at": sa.func.least(cf.c.dispatched_at, _x.dispatched_at),
            "deadline": sa.func.coalesce(_x.deadline, cf.c.deadline),
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
    ),
    "case.transferred": _ins.on_conflict_do_update(
        index_elements=[cf.c.case_id],
        set_={
            "department": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department), else_=cf.c.department),
            "department_seq": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department_seq), else_=cf.c.department_seq),
            "department_at": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department_at), else_=cf.c.department_at),
            "transfer_count": cf.c.transfer_count + 1,
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
    ),
    "case.closed": _ins.on_conflict_do_update(
        index_elements=[cf.c.case_id],
        set_={
            "closed": True,
            "closed_at": _x.closed_at,
            "source_status": sa.func.coalesce(_x.source_status, cf.c.source_status),
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
    ),
    "case.status_recorded": _ins.on_conflict_do_update(
        index_elements=[cf.c.case_id],
        set_={
            "source_status": sa.case((cf.c.closed, cf.c.source_status), else_=_x.source_status),
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
    ),
}


def fact_values(ev: Event) -> dict:
    """The column values an event contributes to its case's fact row (insert form)."""
    row = {"case_id": ev.case_id, "tenant": ev.tenant, "place_code": ev.place_code, "event_count": 1}
    if isinstance(ev, CaseReported):
        row.update(
            reported_at=ev.reported_at,
            category_code=ev.category_code,
            category_name=ev.category_name,
            channel=ev.channel,
            request_type=ev.request_type,
            source=ev.source,
            history=ev.history is not None,
        )
    elif isinstance(ev, CaseDispatched):
        row.update(
            target_kind=ev.target_kind,
            department=ev.department,
            department_at=ev.occurred_at,
            department_seq=0,
            dispatched_at=ev.occurred_at,
            deadline=ev.deadline,
        )
    elif isinstance(ev, CaseTransferred):
        row.update(
            department=ev.to_department,
            department_at=ev.occurred_at if ev.to_department else None,
            department_seq=ev.sequence if ev.to_department else None,
            transfer_count=1,
        )
    elif isinstance(ev, CaseClosed):
        row.update(closed=True, closed_at=ev.closed_at, source_status=ev.source_status)
    elif isinstance(ev, CaseStatusRecorded):
        row.update(source_status=ev.source_status)
    return row


async def apply_events(conn: AsyncConnection, events: list[Event]) -> None:
    """Fold ``events`` (each new to this consumer) into ``case_facts`` in the caller's transaction.

    Events are grouped by type and each group is sent as one executemany; the merge rules above
    make the order of groups irrelevant.
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for ev in events:
        groups[ev.event_type].append(fact_values(ev))
    for event_type, rows in groups.items():
        await conn.execute(UPSERT[event_type], rows)

