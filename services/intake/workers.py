"""Intake's own background work, run by the service kit while the app runs (kit.background): the
anonymisation sweep over closed cases. The outbox relay, its backlog sampler and the case-view
subscriber's start loop are the kit's (shared/platform/kit.py)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.erasure import anonymise_closed
from services.intake.settings import IntakeSettings
from shared.platform.crypto import Keyring

log = logging.getLogger("gridcase.intake")


async def sweep_closed(engine: AsyncEngine, settings: IntakeSettings, anonymised: Counter, keyring: Keyring) -> None:
    """Every ``anonymise_interval_seconds``: erase the reporter data of cases closed more than
    ``anonymise_after_days`` ago (services/intake/erasure.py ``anonymise_closed``, the sealed parts opened with ``keyring``) and count them in ``anonymised``;
    a failed round is retried next round."""
    while True:
        try:
            erased = await anonymise_closed(engine, timedelta(days=settings.anonymise_after_days), keyring=keyring)
            if erased:
                anonymised.inc(erased)
                log.info("anonymised the reporter data of %d closed cases", erased)
        except Exception:  # noqa: BLE001 - retried next round
            log.warning("anonymisation sweep failed", exc_info=True)
        await asyncio.sleep(settings.anonymise_interval_seconds)
