"""Offsets of a batch acknowledged while the group re-joins a broker that came back empty.

Chaos scenario b (tests/chaos/test_chaos.py) stops the embedded broker for 30 s and starts it again
with an empty log. A batch whose handler was still running then acknowledges (commits) while the
consumer re-joins the group. aiokafka's ``commit()`` takes the positions of the consumer's old
assignment — positions in the *lost* log — and Tansu accepts the request while the join is under
way, so the group's new assignment starts at those positions and every record below them in the new
log is never read (the run then waits in ``wait_until_counted`` until it times out).

shared/platform/stream.py must not commit while the group re-joins: the batch is redelivered instead and
deduplicated by the processor.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from gridcase.infra import TansuBroker
from shared.platform.consumer import BatchOutcome
from shared.platform.kafka import ensure_topics
from shared.platform.settings import ServiceSettings
from shared.platform.stream import build_broker, subscribe_batches
from shared.platform.telemetry import new_registry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
        reason="stops and restarts the broker, so it runs on an embedded one",
    ),
]

TOPIC = "it.stream.commit"


async def produce(bootstrap: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(TOPIC, value, key=b"k")
    finally:
        await producer.stop()


class HoldingProcessor:
    """Records every value it is given; holds the batch holding ``old-9`` until ``release`` is set,
    so that batch's acknowledgement happens when the test chooses."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def process(self, records) -> BatchOutcome:
        values = [r.value for r in records]
        self.seen.extend(values)
        if b"old-9" in values and not self.release.is_set():
            self.holding.set()
            await self.release.wait()
        return BatchOutcome()


async def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_batch_acked_while_the_group_rejoins_an_emptied_broker_does_not_skip_the_new_log(tmp_path):
    tansu = TansuBroker(log_path=tmp_path / "tansu.log")
    tansu.start()
    settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=tansu.bootstrap)
    kafka = build_broker(settings, new_registry(), "it-commit")
    processor = HoldingProcessor()
    subscribe_batches(
        kafka, settings, topics=(TOPIC,), group_id="it-commit", processor=processor,  # type: ignore[arg-type]
        registry=new_registry(), metric_prefix="it_commit",
    )
    try:
        await ensure_topics(tansu.bootstrap, (TOPIC,), partitions=1)
        await produce(tansu.bootstrap, [b"old-%d" % i for i in range(10)])
        await kafka.start()
        await wait_for(processor.holding.is_set, 30, "the old log's batch")
        consumer = next(iter(kafka.subscribers)).consumer

        # The broker goes away and comes back empty; the relays publish again (here: 20 new records).
        tansu.stop()
        await asyncio.sleep(3)
        tansu.start()
        await ensure_topics(tansu.bootstrap, (TOPIC,), partitions=1)
        await produce(tansu.bootstrap, [b"new-%d" % i for i in range(20)])

        # The consumer learns that the broker does not know it (generation reset) and re-joins; Tansu
        # holds the join for a few seconds. The held batch is acknowledged in the middle of it.
        await wait_for(lambda: consumer._coordinator.generation < 0, 30, "the group re-join")  # noqa: SLF001
        await asyncio.sleep(1.0)
        processor.release.set()

        new = {b"new-%d" % i for i in range(20)}
        try:
            await wait_for(lambda: new <= set(processor.seen), 30, "every record of the new log")
        except AssertionError:
            missing = sorted(new - set(processor.seen), key=lambda v: int(v.split(b"-")[1]))
            pytest.fail(f"records of the new log never consumed: {missing}")
        # Outside a re-join, acknowledged batches are committed as before.
        deadline = time.monotonic() + 15
        while (committed := await consumer.committed(TopicPartition(TOPIC, 0))) != 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert committed == 20
    finally:
        processor.release.set()
        await kafka.stop()
        tansu.stop()
