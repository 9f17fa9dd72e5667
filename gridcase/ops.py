"""Operator actions: replay the event log, list and re-drive dead letters.

- :func:`replay_events`: marks the outbox rows of intake and dispatch created since a time as
  unsent; the running relays publish them again in their original order. intake's outbox holds every
  accepted report's event and dispatch's every lifecycle event, so after a broker lost its log (a
  memory broker restarted) this puts everything back; consumers skip what they had already applied.
- :func:`list_dead_letters` / :func:`redrive_dead_letters`: read ``<topic>.dlq``; re-drive
  publishes each record's original bytes to its source topic (header ``dlq.source_topic``) and
  commits its position in consumer group ``gridcase-dlq-redrive``, so a record is re-driven once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contract.topics import SOURCE_TOPICS, TOPIC_REPORTED, dlq
from shared.platform.db import libpq_url
from shared.platform.kafka import ensure_topics, make_producer

OUTBOXES = ("intake", "dispatch")
REDRIVE_GROUP = "gridcase-dlq-redrive"


async def replay_events(database_url: str, since: datetime, bootstrap: str | None = None, *,
                        column: str = "created_at") -> dict[str, int]:
    """Mark outbox rows created at or after ``since`` (timezone-aware) as unsent, per service.

    ``column="sent_at"`` selects the rows *published* at or after ``since`` instead: after a memory
    broker that started at ``since`` lost its log, exactly the rows it had received (the supervisor
    of ``gridcase up``, gridcase/supervise.py). Creates the topics first when ``bootstrap`` is given
    (a broker that came back empty has none). Returns ``{"intake": n, "dispatch": m}``, the rows
    queued for publishing again.

    Raises:
        ValueError: ``since`` is naive, or ``column`` is neither ``created_at`` nor ``sent_at``.
    """
    if since.tzinfo is None:
        raise ValueError("since must carry a timezone, e.g. 2026-11-29T08:00:00+08:00")
    if column not in ("created_at", "sent_at"):
        raise ValueError(f"column must be created_at or sent_at, not {column!r}")
    if bootstrap:
        await ensure_topics(bootstrap)
    conn = await asyncpg.connect(libpq_url(database_url))
    out: dict[str, int] = {}
    try:
        for schema in OUTBOXES:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.outbox")
            if not exists:
                out[schema] = 0
                continue
            status = await conn.execute(
                f'UPDATE "{schema}".outbox SET sent_at = NULL WHERE {column} >= $1 AND sent_at IS NOT NULL', since
            )
            out[schema] = int(status.split()[-1])
    finally:
        await conn.close()
    return out


@dataclass(frozen=True)
class DeadLetterRecord:
    """One record of a dead-letter topic: where it sits, its key, headers and value size."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes


async def _read_to_end(bootstrap: str, topic: str, group_id: str | None):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first metadata fetch
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return consumer, []
        consumer.assign(tps)
        if group_id is None:
            await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records = []
        # Read until the end offsets are reached AND the log stays quiet for two polls: the
        # embedded Tansu build can report a high watermark below records it already serves.
        quiet = 0
        while quiet < 2:
            batch = await consumer.getmany(*tps, timeout_ms=1000)
            fetched = [r for tp_records in batch.values() for r in tp_records]
            records.extend(fetched)
            behind = False
            for tp in tps:
                if await consumer.position(tp) < end[tp]:
                    behind = True
            quiet = 0 if (fetched or behind) else quiet + 1
        return consumer, records
    except BaseException:
        await consumer.stop()
        raise


def _to_dead_letter(r) -> DeadLetterRecord:  # noqa: ANN001 - aiokafka ConsumerRecord
    return DeadLetterRecord(
        r.topic,
        r.partition,
        r.offset,
        r.key.decode("utf-8", "replace") if r.key else None,
        {k: v.decode("utf-8", "replace") for k, v in (r.headers or ())},
        r.value or b"",
    )


async def list_dead_letters(bootstrap: str, topic: str = TOPIC_REPORTED) -> list[DeadLetterRecord]:
    """All records currently in ``<topic>.dlq`` (``topic`` is the source topic)."""
    consumer, records = await _read_to_end(bootstrap, dlq(topic), None)
    await consumer.stop()
    return [_to_dead_letter(r) for r in records]


async def redrive_dead_letters(bootstrap: str, topic: str = TOPIC_REPORTED) -> int:
    """Publish every not yet re-driven record of ``<topic>.dlq`` back to its source topic; return
    how many. Positions are committed in group ``gridcase-dlq-redrive`` after the broker acked."""
    consumer, records = await _read_to_end(bootstrap, dlq(topic), REDRIVE_GROUP)
    producer = make_producer(bootstrap, f"gridcase-redrive-{uuid.uuid4().hex[:6]}")
    await producer.start()
    try:
        futures = []
        for r in records:
            headers = dict(r.headers or ())
            source = headers.get("dlq.source_topic", topic.encode()).decode()
            if source not in SOURCE_TOPICS:
                source = topic
            redrives = int(headers.get("dlq.redrives", b"0")) + 1
            futures.append(
                await producer.send(source, r.value, key=r.key, headers=[("dlq.redrives", str(redrives).encode())])
            )
        for f in futures:
            await f
        if records:
            await consumer.commit()
        return len(records)
    finally:
        await producer.stop()
        await consumer.stop()


async def rebuild_reporting(database_url: str, page: int = 5000) -> dict[str, int]:
    """Recompute reporting's tables from the event log (issue 4 item 2).

    The log is intake's and dispatch's outboxes, which hold every event either ever published.
    In one transaction, with reporting's tables locked (the running consumer waits, then skips
    what the rebuild applied): empty ``case_facts``, ``case_steps`` and ``patrols``, the KPI rollups
    (``kpi_cells``, ``kpi_spans``, ``kpi_sketches``, ``kpi_zones`` and the month cuboids
    ``kpi_month_*``: issue 14), the step cells and their month cuboids
    (services/reporting/step_rollup.py) and reporting's processed-event records, fold every logged
    event again with the same code the consumer uses (facts, rollups and step cells together, each
    tenant's days in its zone from ``$GRIDCASE_TENANTS_DIR``), and record each as processed. The
    merge rules do not depend on order and the rollups are sums, so the figures and the cells come
    out as the consumer's.
    Returns ``{"events": n, "cases": m}``.
    """
    import sqlalchemy as sa  # noqa: PLC0415
    from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415

    from services.reporting import db as rdb  # noqa: PLC0415
    from services.reporting.handlers import apply_events  # noqa: PLC0415
    from services.reporting.step_rollup import STEP_TABLES  # noqa: PLC0415
    from shared.contract.events import decode_event  # noqa: PLC0415
    from shared.platform.db import make_engine  # noqa: PLC0415

    step_tables = ", ".join(f"reporting.{t}" for t in STEP_TABLES)  # the step cells, by day and by month
    engine = make_engine(database_url)
    events = 0
    try:
        async with engine.begin() as write, engine.connect() as read:
            await write.execute(sa.text(
                "LOCK TABLE reporting.case_facts, reporting.case_tally, reporting.case_steps, reporting.patrols, reporting.processed_events, "
                "reporting.kpi_cells, reporting.kpi_spans, reporting.kpi_sketches, reporting.kpi_zones, "
                "reporting.kpi_month_cells, reporting.kpi_month_spans, reporting.kpi_month_sketches, "
                f"{step_tables} IN EXCLUSIVE MODE"))
            await write.execute(sa.delete(rdb.processed_events).where(rdb.processed_events.c.consumer == "reporting"))
            await write.execute(sa.text("TRUNCATE reporting.case_facts, reporting.case_tally, reporting.case_steps, reporting.patrols, reporting.case_texts, "
                                        "reporting.kpi_cells, reporting.kpi_spans, reporting.kpi_sketches, reporting.kpi_zones, "
                                        "reporting.kpi_month_cells, reporting.kpi_month_spans, reporting.kpi_month_sketches, "
                                        f"{step_tables}"))
            for schema in OUTBOXES:
                last_id = 0
                while True:
                    rows = (await read.execute(sa.text(
                        f'SELECT id, payload FROM "{schema}".outbox WHERE id > :last ORDER BY id LIMIT :n'),
                        {"last": last_id, "n": page})).all()
                    if not rows:
                        break
                    last_id = rows[-1].id
                    batch = {}
                    for row in rows:
                        event = decode_event(bytes(row.payload))
                        batch.setdefault(event.event_id, event)
                    await apply_events(write, list(batch.values()), exclusive=True)
                    await write.execute(insert(rdb.processed_events).on_conflict_do_nothing(),
                                        [{"consumer": "reporting", "event_id": e} for e in batch])
                    events += len(batch)
            cases = (await write.execute(sa.select(sa.func.count()).select_from(rdb.case_facts))).scalar_one()
    finally:
        await engine.dispose()
    return {"events": events, "cases": cases}
