"""Erasure of a case's personal data (issue 6 item 3, issue 16): ``INTAKE_ANONYMISE_AFTER_DAYS``
after closure (the hourly sweep, services/intake/workers.py) or on demand (``gridcase pii
anonymise``, also for named cases).

Every copy intake keeps is rewritten in one transaction per batch, with the reporter's known data
(the sealed part, opened just before it is dropped; shared/domain/personal.py) and the patterns:

- ``reports``: the sealed part dropped, the free text and identifier fields masked again
  (services/intake/domain/privacy.py ``anonymised_report``);
- ``outbox`` (intake's retained event log, the source of ``gridcase replay-events``): each event of
  the case rewritten in place — strings masked, ``reporter_ref`` removed (shared/domain/personal.py
  ``scrub_event``); a replay re-emits only the erased version;
- ``case_events`` (the history a case view shows) the same way;
- ``audit_log``: the ``detail`` of the case's records masked (the trigger lets erasure, and only
  erasure, rewrite ``detail``: ``SET LOCAL gridcase.erasure = on``).

The known data of each erased case is handed to ``collect`` so that the operator's command can
erase dispatch's copies too (services/dispatch/erasure.py); reporting keeps no free text and no
reporter reference. Records already published to Kafka are not rewritten: they expire with the
topics' retention (docs/operations.md), and since issue 16 they never carry the known data.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake import db
from services.intake.caseview import closed_now_clause
from services.intake.domain.privacy import anonymised_report
from shared.domain.personal import KnownPersonal, mask_personal, scrub_event
from shared.platform.crypto import Keyring, KeyringError


async def anonymise_closed(engine: AsyncEngine, after: timedelta, now: datetime | None = None,
                           batch: int = 1000, keyring: Keyring | None = None,
                           case_ids: list[uuid.UUID] | None = None,
                           collect: dict[uuid.UUID, KnownPersonal | None] | None = None) -> int:
    """Erase the personal data of cases closed more than ``after`` ago (default 365 days,
    ``IntakeSettings.anonymise_after_days``; a reopened case only while closed again), only of
    ``case_ids`` when given. ``keyring`` opens the sealed parts (without it, or for a part it cannot
    open, only the patterns and the dropped ``reporter_ref`` apply). Returns the number of cases
    erased; ``collect`` receives each one's known data. Safe to run from several instances
    (``SKIP LOCKED``)."""
    r, v = db.reports, db.case_view
    cutoff = (now or datetime.now(UTC)) - after
    done = 0
    while True:
        async with engine.begin() as conn:
            query = (sa.select(r.c.case_id, r.c.report, r.c.reporter_sealed)
                     .select_from(r.join(v, v.c.case_id == r.c.case_id))
                     .where(r.c.anonymised_at.is_(None), closed_now_clause(), v.c.closed_at < cutoff))
            if case_ids is not None:
                query = query.where(r.c.case_id.in_(case_ids))
            rows = (await conn.execute(query.limit(batch).with_for_update(of=r, skip_locked=True))).all()
            if rows:
                await conn.execute(sa.text("SET LOCAL gridcase.erasure = 'on'"))
            for row in rows:
                known = _known(keyring, row.case_id, row.reporter_sealed)
                await erase_case(conn, row.case_id, row.report, known)
                if collect is not None:
                    collect[row.case_id] = known
        done += len(rows)
        if len(rows) < batch:
            return done


def _known(keyring: Keyring | None, case_id: uuid.UUID, sealed: bytes | None) -> KnownPersonal | None:
    if keyring is None or not sealed:
        return None
    try:
        part = keyring.open(sealed, case_id.bytes)
    except KeyringError:
        return None
    return KnownPersonal.of(part.get("reporter"))


async def erase_case(conn: AsyncConnection, case_id: uuid.UUID, report: dict, known: KnownPersonal | None) -> None:
    """Rewrite every copy intake keeps of one case (see the module's docstring); the caller's
    transaction must have set ``gridcase.erasure``."""
    r, o, e, a = db.reports, db.outbox, db.case_events, db.audit_log
    erased = anonymised_report(report, known)
    await conn.execute(r.update().where(r.c.case_id == case_id).values(
        reporter_sealed=None, reporter_key_id=None, report=erased, source=erased.get("source") or "",
        source_id=erased.get("source_id"), anonymised_at=sa.func.now(),
        **({"category_code": erased["category_code"]} if erased.get("category_code") else {})))
    for row in (await conn.execute(sa.select(o.c.id, o.c.payload).where(o.c.key == str(case_id)))).all():
        payload = scrub_event(json.loads(row.payload), known)
        await conn.execute(o.update().where(o.c.id == row.id).values(
            payload=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")))
    for row in (await conn.execute(sa.select(e.c.event_id, e.c.payload).where(e.c.case_id == case_id))).all():
        await conn.execute(e.update().where(e.c.event_id == row.event_id).values(payload=scrub_event(row.payload, known)))
    for row in (await conn.execute(sa.select(a.c.audit_id, a.c.detail).where(a.c.case_id == case_id))).all():
        detail = mask_personal(row.detail, known)
        if detail != row.detail:
            await conn.execute(a.update().where(a.c.audit_id == row.audit_id).values(detail=detail[:500]))
