"""Intake's background tasks, run by the app's lifespan: the anonymisation sweep over closed cases,
the outbox backlog sampler, and the case-view subscriber's start loop (intake does not wait for the
broker: it keeps taking reports while Kafka is unreachable)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import db
from services.intake.handlers import CONSUMER, GROUP_ID, TOPICS, apply_lifecycle
from services.intake.settings import IntakeSettings
from services.intake.store import anonymise_closed
from shared.platform.consumer import BatchProcessor
from shared.platform.kafka import ensure_topics
from shared.platform.outbox import OutboxRelay
from shared.platform.stream import DlqProducer, build_broker, subscribe_batches

log = logging.getLogger("gridcase.intake")


async def sweep_closed(engine: AsyncEngine, settings: IntakeSettings, anonymised: Counter) -> None:
    """Every ``anonymise_interval_seconds``: erase the reporter data of cases closed more than
    ``anonymise_after_days`` ago (store.py ``anonymise_closed``); a failed round is retried next
    round."""
    while True:
        try:
            erased = await anonymise_closed(engine, timedelta(days=settings.anonymise_after_days))
            if erased:
                anonymised.inc(erased)
                log.info("anonymised the reporter data of %d closed cases", erased)
        except Exception:  # noqa: BLE001 - retried next round
            log.warning("anonymisation sweep failed", exc_info=True)
        await asyncio.sleep(settings.anonymise_interval_seconds)


async def sample_backlog(relay: OutboxRelay, pending: Gauge) -> None:
    """Every 5 s: set ``pending`` to the number of outbox events not yet published (best effort)."""
    while True:
        try:
            pending.set(await relay.backlog())
        except Exception:  # noqa: BLE001 - the gauge is best effort
            log.debug("backlog sample failed", exc_info=True)
        await asyncio.sleep(5)


class CaseViewConsumer:
    """The subscriber of :mod:`services.intake.handlers` (consumer group ``gridcase-intake-view``).
    It starts in the background and retries while the broker is unreachable: intake keeps taking
    reports meanwhile."""

    def __init__(self, settings: IntakeSettings, engine: AsyncEngine, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.dlq = DlqProducer(settings.kafka_bootstrap_servers, "gridcase-intake-view-dlq")
        self.broker = build_broker(settings, registry, "intake")
        processor = BatchProcessor(CONSUMER, engine, db.processed_events, apply_lifecycle, self.dlq.get,
                                   max_attempts=settings.max_attempts)
        subscribe_batches(self.broker, settings, topics=TOPICS, group_id=GROUP_ID,
                          processor=processor, registry=registry, metric_prefix="intake_view")
        self.started = False

    async def run(self) -> None:
        """Start the subscriber, retrying every few seconds until the broker answers."""
        delay = 1.0
        while not self.started:
            try:
                await ensure_topics(self.settings.kafka_bootstrap_servers, timeout_s=10)
                await self.broker.start()
                self.started = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker not there yet
                log.info("case view: broker not reachable (%s); retrying", type(exc).__name__)
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def stop(self) -> None:
        """Stop the subscriber (graceful) and the dead-letter producer."""
        if self.started:
            await self.broker.stop()
        await self.dlq.stop()
