"""The outbox relay wakes on commit (issue 13, shared/platform/notify.py) and never loses a row.

Each test runs on intake's migrated schema in a database of its own (``intake_own_db``), so the
``intake_outbox`` notifications and rows seen here come from the test alone. The relay publishes
to a recording producer (no broker needed): what is asserted is when it claims rows, not Kafka.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from services.intake import db as intake_db
from shared.platform.db import libpq_url
from shared.platform.notify import CommitListener, outbox_channel
from shared.platform.outbox import OutboxRelay

pytestmark = pytest.mark.integration

CHANNEL = outbox_channel("intake")


def dsn(engine) -> str:
    return libpq_url(engine.url.render_as_string(hide_password=False))


async def insert_rows(conn: asyncpg.Connection, n: int) -> None:
    """``n`` outbox rows in one statement (the way add_to_outbox writes a batch)."""
    await conn.executemany(
        "INSERT INTO intake.outbox (event_id, topic, key, event_type, payload) VALUES ($1, 't', 'k', 'x', $2)",
        [(uuid.uuid4(), b"{}") for _ in range(n)],
    )


async def until(predicate, timeout_s: float) -> float:
    """Seconds until ``predicate()`` holds; fails after ``timeout_s``."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout_s, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


class RecordingProducer:
    """Stands in for AIOKafkaProducer: remembers what was sent, acks at once."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic, value, key, headers):
        self.sent.append(value)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_notification_arrives_at_commit_once_per_transaction(intake_own_db):
    """A transaction inserting rows in two statements notifies once, and only when it commits."""
    seen: list[float] = []
    listener = CommitListener(dsn(intake_own_db), CHANNEL, lambda: seen.append(time.monotonic()))
    task = asyncio.create_task(listener.run())
    writer = await asyncpg.connect(dsn(intake_own_db))
    try:
        await until(lambda: listener.listening, 10)
        await until(lambda: len(seen) == 1, 5)  # the wake it gives itself on connecting
        tx = writer.transaction()
        await tx.start()
        await insert_rows(writer, 3)
        await insert_rows(writer, 2)
        await asyncio.sleep(0.3)
        assert len(seen) == 1, "notified before the commit"
        await tx.commit()
        await until(lambda: len(seen) == 2, 5)
        await asyncio.sleep(0.3)
        assert len(seen) == 2, "one transaction, one notification"

        tx = writer.transaction()
        await tx.start()
        await insert_rows(writer, 1)
        await tx.rollback()
        await asyncio.sleep(0.3)
        assert len(seen) == 2, "a rolled-back insert must not wake the relay"
    finally:
        task.cancel()
        await writer.close()


async def test_listener_reconnects_after_its_connection_is_killed(intake_own_db):
    """The server ends the listening session (as a PostgreSQL restart does); the listener connects
    again, wakes the relay once for what it may have missed, and later commits wake it again."""
    seen: list[float] = []
    listener = CommitListener(dsn(intake_own_db), CHANNEL, lambda: seen.append(time.monotonic()))
    task = asyncio.create_task(listener.run())
    admin = await asyncpg.connect(dsn(intake_own_db))
    try:
        await until(lambda: listener.connections == 1 and listener.listening, 10)
        killed = await admin.fetchval(
            # this test's own database: a running stack's relays on the same server listen too
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            f"gridcase-listen-{CHANNEL}")
        assert killed == 1
        await until(lambda: listener.connections == 2 and listener.listening, 15)
        before = len(seen)
        await insert_rows(admin, 1)
        await until(lambda: len(seen) == before + 1, 5)
    finally:
        task.cancel()
        await admin.close()


async def test_relay_publishes_on_commit_not_on_poll(intake_own_db):
    """With the fallback poll at 60 s, rows committed by another connection are published within
    seconds: the notification woke the relay."""
    producer = RecordingProducer()
    relay = OutboxRelay(intake_own_db, intake_db.outbox, lambda: producer, idle_seconds=60, poll_seconds=60,
                        listener_factory=lambda wake: CommitListener(dsn(intake_own_db), CHANNEL, wake))
    task = asyncio.create_task(relay.run())
    writer = await asyncpg.connect(dsn(intake_own_db))
    try:
        await until(lambda: relay.listener.listening, 10)
        await asyncio.sleep(0.5)  # the relay has gone to sleep on an empty outbox
        for round_ in range(1, 4):
            await insert_rows(writer, 5)
            await until(lambda n=5 * round_: len(producer.sent) == n, 15)  # far below the 60 s poll
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)
        await writer.close()


async def test_a_lost_notification_loses_no_row(intake_own_db):
    """Rows that arrive without a notification (here: re-queued by an UPDATE, which fires no
    trigger, as `gridcase` replay does) are still published by the fallback poll."""
    producer = RecordingProducer()
    relay = OutboxRelay(intake_own_db, intake_db.outbox, lambda: producer, idle_seconds=60, poll_seconds=0.5,
                        listener_factory=lambda wake: CommitListener(dsn(intake_own_db), CHANNEL, wake))
    task = asyncio.create_task(relay.run())
    writer = await asyncpg.connect(dsn(intake_own_db))
    try:
        await until(lambda: relay.listener.listening, 10)
        await insert_rows(writer, 4)
        await until(lambda: len(producer.sent) == 4, 5)
        await writer.execute("UPDATE intake.outbox SET sent_at = NULL")
        await until(lambda: len(producer.sent) == 8, 5)
        # the relay marks them sent when its transaction commits, just after the sends
        t0 = time.monotonic()
        while await writer.fetchval("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL"):
            assert time.monotonic() - t0 < 5, "re-queued rows not marked sent"
            await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)
        await writer.close()


async def test_relay_polls_fast_while_it_cannot_listen(intake_own_db):
    """A listener that cannot connect leaves the relay on its fast poll (``idle_seconds``)."""
    producer = RecordingProducer()
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    relay = OutboxRelay(intake_own_db, intake_db.outbox, lambda: producer, idle_seconds=0.2, poll_seconds=60,
                        listener_factory=lambda wake: CommitListener(unreachable, CHANNEL, wake))
    assert relay.idle_interval() == 0.2
    task = asyncio.create_task(relay.run())
    writer = await asyncpg.connect(dsn(intake_own_db))
    try:
        await asyncio.sleep(0.5)
        assert not relay.listener.listening
        await insert_rows(writer, 3)
        await until(lambda: len(producer.sent) == 3, 15)  # far below the 60 s fallback poll
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)
        await writer.close()
