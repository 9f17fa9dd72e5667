"""Transactional outbox relay (docs/architecture.md §2.1): publish rows of a service's outbox to Kafka.

The relay claims the oldest unsent rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (several instances
can run side by side without publishing a row twice at once), sends them, waits for the broker's
acks, and marks them sent in the same transaction. A crash between the ack and the commit sends
those rows again: delivery is at-least-once and consumers deduplicate on ``event_id``. While Kafka is
down the rows stay unsent and the relay retries with exponential backoff (capped).

The relay wakes on commit (issue 13): in-process writers call :meth:`OutboxRelay.wake`, and with a
``listener`` (:class:`~shared.platform.notify.CommitListener` on the table's ``pg_notify`` trigger)
every commit of outbox rows by any process wakes it too. Then the poll is only a fallback
(``poll_seconds``); while the listener is not connected the relay polls every ``idle_seconds``.
A notification that never arrives therefore delays a row, it never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.contract.events import Envelope, encode_event
from shared.platform.db import any_of, insert_unnest
from shared.platform.notify import CommitListener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxRow:
    """An event ready to be written to an outbox: target topic, key (case id) and the event."""

    topic: str
    event: Envelope


async def add_to_outbox(conn: AsyncConnection, table: sa.Table, rows: Iterable[OutboxRow]) -> int:
    """Insert ``rows`` into ``table`` in the caller's transaction; return the number inserted.

    An event whose ``event_id`` is already in the outbox is skipped (``ON CONFLICT DO NOTHING``), so
    re-deriving the same event is harmless. One statement per batch, the rows as arrays
    (shared/platform/db.py ``insert_unnest``), not a statement per row (issue 13).
    """
    values = [
        {
            "event_id": r.event.event_id,
            "topic": r.topic,
            "key": str(r.event.case_id),
            "event_type": r.event.event_type,  # type: ignore[attr-defined]
            "payload": encode_event(r.event),
        }
        for r in rows
    ]
    if not values:
        return 0
    return len(await insert_unnest(conn, table, values, on_conflict_do_nothing=True, returning="event_id"))


class OutboxRelay:
    """Publishes a service's outbox to Kafka until :meth:`stop` is called.

    - ``batch``: rows claimed per transaction.
    - ``idle_seconds``: poll interval when the outbox is empty and no ``listener`` listens.
    - ``listener_factory(wake)``: builds a :class:`~shared.platform.notify.CommitListener` calling
      ``wake`` (run beside the relay); while it listens, the relay polls only every ``poll_seconds``.
    - ``on_published(n)``/``on_error(exc)``: optional hooks for metrics.
    - ``prepare()``: awaited before each (re)connection of the producer, e.g. to create topics.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        producer_factory: Callable[[], AIOKafkaProducer],
        *,
        batch: int = 500,
        idle_seconds: float = 0.2,
        poll_seconds: float = 5.0,
        listener_factory: Callable[[Callable[[], None]], CommitListener] | None = None,
        max_backoff_seconds: float = 10.0,
        on_published=None,
        on_error=None,
        prepare: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.producer_factory = producer_factory
        self.producer: AIOKafkaProducer | None = None
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.poll_seconds = poll_seconds
        self.listener = listener_factory(self.wake) if listener_factory is not None else None
        self.max_backoff_seconds = max_backoff_seconds
        self.on_published = on_published
        self.on_error = on_error
        self.prepare = prepare
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask the relay to poll now (called after a transaction added outbox rows)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop after the current batch (a batch in flight is finished or rolled back)."""
        self._stopping.set()
        self._wake.set()

    async def publish_once(self) -> int:
        """Claim, send and mark one batch; return the number of rows published (0 if none)."""
        t = self.table
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.event_type)
                    .where(t.c.sent_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            if self.producer is None:
                if self.prepare is not None:
                    # e.g. create the topics again: a memory broker comes back empty
                    await self.prepare()
                producer = self.producer_factory()
                await producer.start()
                self.producer = producer
            futures = [
                await self.producer.send(
                    r.topic,
                    value=r.payload,
                    key=r.key.encode(),
                    headers=[("event_type", r.event_type.encode())],
                )
                for r in rows
            ]
            await asyncio.gather(*futures)
            # any_of: one statement text whatever the batch's size (issue 13)
            await conn.execute(sa.update(t).where(any_of(t.c.id, [r.id for r in rows])).values(sent_at=sa.func.now()))
        if self.on_published:
            self.on_published(len(rows))
        return len(rows)

    async def backlog(self) -> int:
        """Number of unsent rows (the ``*_outbox_pending_messages`` gauge)."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(sa.select(sa.func.count()).select_from(self.table).where(self.table.c.sent_at.is_(None)))
            ).scalar_one()

    async def run(self) -> None:
        """Loop until stopped: publish while rows are waiting, sleep when idle, back off on errors.

        The wake flag is cleared *before* each claim, so a commit that lands while a batch is in
        flight (after its ``SELECT``) makes the next sleep return at once instead of waiting a poll.
        """
        listening = None
        if self.listener is not None:
            listening = asyncio.create_task(self.listener.run(), name=f"outbox-listener-{self.listener.channel}")
        backoff = 0.2
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    n = await self.publish_once()
                    backoff = 0.2
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker or database unavailable: retry later, lose nothing
                    if self.on_error:
                        self.on_error(exc)
                    log.warning("outbox relay: publish failed (%s: %s); retrying in %.1fs",
                                type(exc).__name__, exc, backoff)
                    await self._drop_producer()
                    if not self._stopping.is_set():
                        self._wake.clear()
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_seconds)
                    continue
                if n == 0:
                    await self._sleep(self.idle_interval())
                elif n < self.batch:
                    # A partial batch: let a few more rows gather instead of one transaction per row
                    # under load (wake() calls land here as one poll per 20 ms at most).
                    await asyncio.sleep(0.02)
        finally:
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening
            await self._drop_producer()

    def idle_interval(self) -> float:
        """How long an idle relay sleeps unless woken: the slow fallback poll while the listener
        listens, the fast poll otherwise."""
        if self.listener is not None and self.listener.listening:
            return self.poll_seconds
        return self.idle_seconds

    async def _drop_producer(self) -> None:
        """Close the producer (best effort); the next batch starts a fresh one."""
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001 - the connection may already be broken
                log.debug("outbox relay: producer stop failed", exc_info=True)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until woken (a wake that came before the call returns at once)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
