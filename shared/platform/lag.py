"""Consumer lag per group and topic (docs/architecture.md §2.6): log-end offset minus
committed offset, summed over the topic's partitions; a partition with no commit counts from its
log start. Exported as ``<svc>_consumer_lag_messages{group,topic}``.

Tansu exports no lag metric, and its memory build can report a high watermark below a committed
offset; a negative difference is counted as 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)


def lag_by_topic(end: dict[TopicPartition, int], start: dict[TopicPartition, int],
                 committed: dict[TopicPartition, int | None]) -> dict[str, int]:
    """Sum of ``max(0, end − (committed or start))`` per topic (pure; offsets are message counts)."""
    out: dict[str, int] = {}
    for tp, end_offset in end.items():
        position = committed.get(tp)
        if position is None or position < 0:
            position = start.get(tp, 0)
        out[tp.topic] = out.get(tp.topic, 0) + max(0, end_offset - position)
    return out


async def measure_lag(bootstrap: str, group: str, topics: tuple[str, ...]) -> dict[str, int]:
    """Read end, start and committed offsets from the broker and return lag per topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return {t: 0 for t in topics}
        end = await consumer.end_offsets(tps)
        start = await consumer.beginning_offsets(tps)
        offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
        committed = {tp: (meta.offset if meta is not None else None) for tp, meta in offsets.items()}
        return {t: 0 for t in topics} | lag_by_topic(end, start, committed)
    finally:
        await admin.close()
        await consumer.stop()


def lag_gauge(registry: CollectorRegistry, service: str) -> Gauge:
    """The ``<service>_consumer_lag_messages{group,topic}`` gauge."""
    return Gauge(f"{service}_consumer_lag_messages", "Messages not yet consumed (log end − committed)",
                 ["group", "topic"], registry=registry)


async def every(interval_s: float, action: Callable[[], Awaitable[None]], name: str) -> None:
    """Run ``action`` every ``interval_s`` seconds until cancelled; failures are logged, not fatal."""
    while True:
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a sampler must never take the service down
            log.debug("%s failed: %r", name, exc)
        await asyncio.sleep(interval_s)
