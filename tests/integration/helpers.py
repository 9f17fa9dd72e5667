"""Helpers for integration tests: read a topic back from the real broker, build events and records.

Reading is group-less (``group_id=None``, all partitions assigned, from the beginning), so the test
sees every record on the topic without joining or disturbing the services' consumer groups.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

CST = timezone(timedelta(hours=8))

#: The 15-digit grid code from deploy/tenants/demo-grid.yaml (幸福社区第1网格).
DEMO_GRID_GRID = "990102001001001"


def unique_tenant() -> str:
    """A tenant name of its own for tests that write ``case_facts`` directly (not via intake)."""
    return f"it-{uuid.uuid4().hex[:16]}"


def make_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord:
    """A ``ConsumerRecord`` as aiokafka 0.14 builds it (see its constructor's signature)."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=int(time.time() * 1000),
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key) if key is not None else -1,
        serialized_value_size=len(value) if value is not None else -1,
        headers=[],
    )


async def _open_from_beginning(bootstrap: str, topic: str) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        client_id=f"it-reader-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 10
        while not partitions:
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} has no partitions")
            await asyncio.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
    except BaseException:
        await consumer.stop()
        raise
    return consumer, tps


async def wait_for_records(
    bootstrap: str,
    topic: str,
    match: Callable[[ConsumerRecord], bool],
    *,
    count: int = 1,
    timeout_s: float = 30.0,
) -> list[ConsumerRecord]:
    """Read ``topic`` from the earliest offset until ``count`` records satisfy ``match`` (or the
    timeout passes); return the matching records found (the caller asserts on them)."""
    consumer, _ = await _open_from_beginning(bootstrap, topic)
    found: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batch.values():
                found.extend(r for r in records if match(r))
            if len(found) >= count:
                break
    finally:
        await consumer.stop()
    return found


async def read_all(
    bootstrap: str, topic: str, match: Callable[[ConsumerRecord], bool], timeout_s: float = 30.0
) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to its current end offsets that satisfies ``match``."""
    consumer, tps = await _open_from_beginning(bootstrap, topic)
    found: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end offsets {ends} in {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batch.values():
                found.extend(r for r in records if match(r))
    finally:
        await consumer.stop()
    return found


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    """A fixed Asia/Shanghai time in March 2024 (event times in the facts tests)."""
    return datetime(2024, 3, day, hour, minute, tzinfo=CST)
