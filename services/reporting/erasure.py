"""Reporting's one trace of a reporter (issue 16 with issue 15): ``reporting.case_texts`` keeps a
``reporter_key`` per case (services/reporting/handlers.py: derived from the pseudonymous reference,
one per reporter, community and month; not the reference itself) only to count the distinct
reporters of a hot issue (shared/domain/hotspots.py). It is forgotten when intake erases the case's
personal data:

- by ``gridcase pii anonymise`` (named cases, or the cases it erased), right after intake's and
  dispatch's copies;
- by reporting's own sweep (hourly), for the cases closed more than ``anonymise_after_days`` ago
  (``REPORTING_ANONYMISE_AFTER_DAYS``, default 365 like ``INTAKE_ANONYMISE_AFTER_DAYS``), so the
  key goes also where intake's hourly sweep erased the case.

The masked text stays: it is the text of the ``case.reported`` event, masked by intake with the
reporter's known data and the patterns (issue 16), as retained on the topic.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.db import case_facts, case_texts

log = logging.getLogger("gridcase.reporting")


async def forget_reporters(engine: AsyncEngine, case_ids: Iterable[uuid.UUID] | None = None,
                           closed_before: datetime | None = None) -> int:
    """Null ``case_texts.reporter_key`` of ``case_ids`` and/or of the cases closed before
    ``closed_before``; returns the number of rows changed (0 where reporting's schema does not exist)."""
    t, f = case_texts, case_facts
    conditions = []
    if case_ids is not None:
        conditions.append(t.c.case_id.in_(list(case_ids)))
    if closed_before is not None:
        conditions.append(t.c.case_id.in_(sa.select(f.c.case_id).where(f.c.closed, f.c.closed_at < closed_before)))
    if not conditions:
        return 0
    async with engine.begin() as conn:
        if not await conn.scalar(sa.text("SELECT to_regclass('reporting.case_texts') IS NOT NULL")):
            return 0  # reporting has never run on this database
        result = await conn.execute(t.update().where(t.c.reporter_key.is_not(None), sa.or_(*conditions))
                                    .values(reporter_key=None))
    return result.rowcount or 0


async def sweep(engine: AsyncEngine, after_days: float, interval_seconds: float) -> None:
    """Every ``interval_seconds``: :func:`forget_reporters` of the cases closed ``after_days`` ago."""
    while True:
        try:
            done = await forget_reporters(engine, closed_before=datetime.now(UTC) - timedelta(days=after_days))
            if done:
                log.info("forgot the reporter reference of %d closed cases", done)
        except Exception:  # noqa: BLE001 - retried next round
            log.warning("reporter-reference sweep failed", exc_info=True)
        await asyncio.sleep(interval_seconds)
