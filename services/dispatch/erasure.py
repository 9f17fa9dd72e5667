"""Erasure of a case's personal data in dispatch's copies (issue 16), run by ``gridcase pii
anonymise`` with the known data intake opened before dropping it (services/intake/erasure.py).

Dispatch receives only what intake let out (free text masked with the reporter's known data since
issue 16), so for new cases this finds nothing; it rewrites what older cases may hold: the events
of the case in ``dispatch.outbox`` (its retained event log: the reasons carry action notes) and
actions parked in ``pending_actions``, every string masked with the known data
(shared/domain/personal.py ``scrub_event``). The case row holds no free text.
"""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.dispatch import db
from shared.domain.personal import KnownPersonal, scrub_event


async def erase_cases(engine: AsyncEngine, known: dict[uuid.UUID, KnownPersonal | None]) -> int:
    """Rewrite dispatch's copies of each case of ``known``; returns the number of rows changed."""
    o, p = db.outbox, db.pending_actions
    changed = 0
    async with engine.begin() as conn:
        for case_id, values in known.items():
            if not values:
                continue
            for row in (await conn.execute(sa.select(o.c.id, o.c.payload).where(o.c.key == str(case_id)))).all():
                payload = json.loads(row.payload)
                erased = scrub_event(payload, values)
                if erased != payload:
                    await conn.execute(o.update().where(o.c.id == row.id).values(
                        payload=json.dumps(erased, ensure_ascii=False, separators=(",", ":")).encode("utf-8")))
                    changed += 1
            for row in (await conn.execute(sa.select(p.c.event_id, p.c.payload).where(p.c.case_id == case_id))).all():
                erased = scrub_event(row.payload, values)
                if erased != row.payload:
                    await conn.execute(p.update().where(p.c.event_id == row.event_id).values(payload=erased))
                    changed += 1
    return changed
