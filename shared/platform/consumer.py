"""Idempotent batch consumption with dead letters (docs/architecture.md §2, §5 pattern 3).

A FastStream batch subscriber (``AckPolicy.MANUAL``) hands each fetched batch to
:meth:`BatchProcessor.process`, which

1. decodes every record; a record that can never be processed (invalid JSON, unknown event type,
   unsupported schema version) goes to ``<topic>.dlq`` with headers naming the error, source topic,
   partition, offset and attempts;
2. in ONE database transaction inserts ``(consumer, event_id)`` into ``processed_events`` with
   ``ON CONFLICT DO NOTHING`` and applies only the events that were new (a redelivered event
   changes nothing);
3. returns; the caller then commits the Kafka offsets (``shared.platform.stream.commit_consumed``, skipped
   while the group re-joins), so offsets move only after the effects are durable (at-least-once
   transport, exactly-once effects).

Transient errors (database or broker unavailable) are retried with exponential backoff
``max_attempts`` times; after that :class:`TransientFailure` tells the caller to rewind the batch
(``msg.nack()``) so the offsets never move past an unprocessed record (faststream#2618).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.contract.events import Event, UnsupportedSchemaVersion, decode_event
from shared.contract.topics import dlq

log = logging.getLogger(__name__)

ApplyFn = Callable[[AsyncConnection, list[Event]], Awaitable[None]]


class TransientFailure(RuntimeError):
    """The batch could not be applied after all retries; rewind it and try again later."""


@dataclass
class BatchOutcome:
    """What one batch did: events applied, duplicates skipped, records dead-lettered."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class DeadLetter:
    """A record that can never be processed and why (``error`` is ``ExceptionType: message``)."""

    record: ConsumerRecord
    error: str


def decode_batch(records: Sequence[ConsumerRecord]) -> tuple[list[Event], list[DeadLetter]]:
    """Decode ``records`` into events; records that fail validation become :class:`DeadLetter`."""
    events: list[Event] = []
    poison: list[DeadLetter] = []
    for record in records:
        try:
            if record.value is None:
                raise ValueError("empty message value")
            events.append(decode_event(record.value))
        except (ValidationError, UnsupportedSchemaVersion, ValueError, UnicodeDecodeError) as exc:
            poison.append(DeadLetter(record, f"{type(exc).__name__}: {str(exc)[:500]}"))
    return events, poison


def dead_letter_headers(letter: DeadLetter, attempts: int, consumer: str) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: error, source topic/partition/offset, attempts, consumer."""
    r = letter.record
    return [
        ("dlq.error", letter.error.encode("utf-8")),
        ("dlq.source_topic", r.topic.encode()),
        ("dlq.source_partition", str(r.partition).encode()),
        ("dlq.source_offset", str(r.offset).encode()),
        ("dlq.attempts", str(attempts).encode()),
        ("dlq.consumer", consumer.encode()),
    ]


class BatchProcessor:
    """Applies batches of events exactly once per ``consumer`` name.

    - ``apply(conn, events)`` performs the effects inside the given transaction; it sees each
      event at most once per consumer, and only events not processed before.
    - ``dlq_producer``: started producer for dead letters.
    """

    def __init__(
        self,
        consumer: str,
        engine: AsyncEngine,
        processed_table: sa.Table,
        apply: ApplyFn,
        dlq_producer: Callable[[], Awaitable[AIOKafkaProducer]],
        *,
        max_attempts: int = 5,
        base_backoff_seconds: float = 0.5,
    ) -> None:
        self.consumer = consumer
        self.engine = engine
        self.processed = processed_table
        self.apply = apply
        self.dlq_producer = dlq_producer
        self.max_attempts = max_attempts
        self.base_backoff_seconds = base_backoff_seconds
        # one statement for any batch size: the ids as one array parameter (unnest), so it is
        # compiled once and cached, where a multi-row VALUES was compiled anew for every batch
        # (the top of reporting's profile under a batch import, issue 13)
        ids = sa.bindparam("ids", type_=pg.ARRAY(pg.UUID(as_uuid=True)))
        self._record = (
            insert(processed_table)
            .from_select(["consumer", "event_id"],
                         sa.select(sa.literal(consumer, sa.String), sa.func.unnest(ids)))
            .on_conflict_do_nothing()
            .returning(processed_table.c.event_id)
        )

    async def process(self, records: Sequence[ConsumerRecord]) -> BatchOutcome:
        """Process one fetched batch (see module docstring).

        Raises:
            TransientFailure: the effects could not be committed after ``max_attempts`` tries.
        """
        events, poison = decode_batch(records)
        outcome = BatchOutcome()
        if poison:
            await self._retry(lambda: self._dead_letter(poison))
            outcome.dead_lettered = len(poison)
        unique: dict[uuid.UUID, Event] = {}
        for ev in events:
            unique.setdefault(ev.event_id, ev)
        outcome.duplicates = len(events) - len(unique)
        if unique:
            applied = await self._retry(lambda: self._apply(list(unique.values())))
            outcome.applied = len(applied)
            outcome.duplicates += len(unique) - len(applied)
            outcome.events = applied
        return outcome

    async def _apply(self, events: list[Event]) -> list[Event]:
        async with self.engine.begin() as conn:
            result = await conn.execute(self._record, {"ids": [e.event_id for e in events]})
            fresh = {row[0] for row in result}
            new_events = [e for e in events if e.event_id in fresh]
            if new_events:
                await self.apply(conn, new_events)
        return new_events

    async def _dead_letter(self, poison: list[DeadLetter]) -> None:
        producer = await self.dlq_producer()
        futures = []
        for letter in poison:
            r = letter.record
            log.warning(
                "dead-lettering %s[%d]@%d: %s", r.topic, r.partition, r.offset, letter.error
            )
            futures.append(
                await producer.send(
                    dlq(r.topic),
                    value=r.value,
                    key=r.key,
                    headers=dead_letter_headers(letter, 1, self.consumer),
                )
            )
        await asyncio.gather(*futures)

    async def _retry(self, action: Callable[[], Awaitable]):
        delay = self.base_backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await action()
            except (ValidationError, UnsupportedSchemaVersion):
                raise
            except Exception as exc:  # database or broker unavailable
                if attempt == self.max_attempts:
                    raise TransientFailure(f"{self.consumer}: gave up after {attempt} attempts: {exc!r}") from exc
                log.warning("%s: attempt %d failed (%r); retrying in %.1fs", self.consumer, attempt, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")
