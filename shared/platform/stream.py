"""FastStream wiring for the consuming services (dispatch, reporting).

One ``KafkaBroker`` per service with FastStream's Prometheus middleware, and one batch subscriber
(``AckPolicy.MANUAL``) whose handler runs a :class:`shared.platform.consumer.BatchProcessor` and commits
offsets only after the batch's database transaction committed, and only while the group is not
re-joining (:class:`AssignmentGuard`, :func:`commit_consumed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter

from shared.platform.consumer import BatchOutcome, BatchProcessor, TransientFailure
from shared.platform.kafka import make_producer
from shared.platform.settings import ServiceSettings

log = logging.getLogger(__name__)


def build_broker(settings: ServiceSettings, registry: CollectorRegistry, app_name: str) -> KafkaBroker:
    """A KafkaBroker with FastStream's Prometheus middleware (``faststream_*`` metrics) and a 15 s
    graceful timeout: on stop, handlers in flight finish (or are not committed)."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        middlewares=(KafkaPrometheusMiddleware(registry=registry, app_name=app_name, metrics_prefix="faststream"),),
        graceful_timeout=15.0,
        client_id=app_name,
        # FastStream's own logger writes with a colour formatter to stdout; this one goes through the
        # service's handler (shared/platform/telemetry.py configure_logging: plain text or JSON lines)
        logger=logging.getLogger("faststream.access.kafka"),
    )


class DlqProducer:
    """Lazily started producer for dead letters, shared by a service's handlers."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        """Return the started producer, starting it on first use."""
        async with self._lock:
            if self._producer is None:
                producer = make_producer(self.bootstrap, self.client_id)
                await producer.start()
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        """Stop the producer if it was started."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class AssignmentGuard(ConsumerRebalanceListener):
    """Rebalance listener that knows whether the consumer holds a settled assignment: ``assigned`` is
    False from the moment the group starts re-joining (partitions revoked) until the new assignment
    is in place."""

    def __init__(self) -> None:
        self.assigned = False

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.assigned = False

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = True


async def commit_consumed(consumer: AIOKafkaConsumer, guard: AssignmentGuard) -> bool:
    """Commit the consumer's consumed positions once, in the group generation of its current
    assignment. Returns True when the commit was sent and accepted, False when it was skipped: the
    group is re-joining (``guard``), the member lost its generation (the broker no longer knows it),
    or the coordinator is unknown. A skipped commit only means the batch may be redelivered, and
    redelivered events are deduplicated.

    ``AIOKafkaConsumer.commit()`` is not used: it reads the positions of the assignment when called
    but sends the request with the generation current when it is sent, retrying until the
    coordinator answers. A batch acknowledged while the group re-joins — typically one in flight
    while the broker was down — is then committed with generation −1 in the middle of the join, which
    Tansu accepts; after a broker that came back with an empty log, those positions belong to the
    lost log and the new assignment starts at them, skipping every record below them (chaos scenario
    b; tests/integration/test_stream_commit.py). Here the checks and the building of the request
    happen in one step of the event loop, so the request carries the generation that was checked.
    aiokafka internals used: ``_subscription``, ``_coordinator`` (``generation``, ``coordinator_id``,
    ``_do_commit_offsets``: one OffsetCommit request, no retry).

    Raises:
        aiokafka.errors.KafkaError: the coordinator refused the commit or did not answer.
    """
    subscription = consumer._subscription.subscription  # noqa: SLF001
    assignment = subscription.assignment if subscription is not None else None
    coordinator = consumer._coordinator  # noqa: SLF001
    if not guard.assigned or assignment is None or not assignment.active:
        return False
    if coordinator.generation < 0 or coordinator.coordinator_id is None:
        return False
    offsets = assignment.all_consumed_offsets()
    if offsets:
        await coordinator._do_commit_offsets(assignment, offsets)  # noqa: SLF001
    return True


def subscribe_batches(
    broker: KafkaBroker,
    settings: ServiceSettings,
    *,
    topics: tuple[str, ...],
    group_id: str,
    processor: BatchProcessor,
    registry: CollectorRegistry,
    metric_prefix: str,
    after_batch: Callable[[BatchOutcome], Awaitable[None] | None] | None = None,
) -> None:
    """Register the batch subscriber for ``topics`` in consumer group ``group_id``.

    Exports ``<prefix>_events_applied_total{event_type}``, ``<prefix>_events_duplicate_total`` and
    ``<prefix>_dead_letters_total``.
    """
    applied = Counter(f"{metric_prefix}_events_applied_total", "Events applied", ["event_type"], registry=registry)
    duplicates = Counter(f"{metric_prefix}_events_duplicate_total", "Redelivered events skipped", registry=registry)
    dead = Counter(f"{metric_prefix}_dead_letters_total", "Records sent to a dead-letter topic", registry=registry)
    rewinds = Counter(f"{metric_prefix}_batch_rewinds_total", "Batches rewound after transient failures", registry=registry)
    guard = AssignmentGuard()

    @broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=settings.max_poll_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_decoder,
        listener=guard,
    )
    async def handle(body: list, msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        if not records:
            return
        try:
            outcome = await processor.process(records)
        except TransientFailure:
            rewinds.inc()
            log.exception("%s: batch of %d rewound", group_id, len(records))
            await msg.nack()
            await asyncio.sleep(2.0)
            return
        for ev in outcome.events:
            applied.labels(ev.event_type).inc()
        duplicates.inc(outcome.duplicates)
        dead.inc(outcome.dead_lettered)
        if after_batch is not None:
            res = after_batch(outcome)
            if asyncio.iscoroutine(res):
                await res
        try:
            if not await commit_consumed(msg.consumer, guard):
                log.warning("%s: offsets not committed (group re-joining or coordinator unknown); "
                            "the batch may be redelivered", group_id)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The effects are committed and idempotent: a redelivery after the rebalance is skipped.
            log.warning("%s: offset commit failed (%s); the batch may be redelivered and deduplicated", group_id, exc)


async def _raw_decoder(msg, original_decoder=None):  # noqa: ANN001 - FastStream decoder signature
    """Keep record values as raw bytes: decoding and validation happen in BatchProcessor, so a
    malformed record becomes a dead letter instead of failing the whole batch in FastStream."""
    raw = msg.raw_message
    records = raw if isinstance(raw, tuple) else (raw,)
    return [r.value for r in records]
