"""Benchmark: reports through the whole pipeline, and the bare broker rate beside it.

Starts the stack (env-named, testcontainers or embedded infrastructure, as ``gridcase up``), then:

1. POSTs N synthetic reports to intake's ``/v1/reports`` with C concurrent clients, and measures
   for each report the time from the start of its POST to the moment reporting counted it
   (``reporting.processed_events.processed_at`` of its ``case.reported`` event, same clock);
   prints reports/s end to end (first POST → last counted) and p50/p99 latency.
2. On the same broker, produces N report-sized (~600 B) messages with aiokafka to a scratch topic
   and consumes them back; prints messages/s for produce and for consume.

Usage: ``python bench/pipeline.py --reports 20000 --concurrency 32``. Prints figures; asserts nothing.

``--text-model MODEL`` (issue 15, docs/classifier.md §3): intake runs with that text model for the
tenant (``INTAKE_CLASSIFIER_MODELS``) and the reports carry no ``category_code``, so every one is
classified in its request; compare the intake rate with a run without the option.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gridcase.client import wait_until_counted
from gridcase.runtime import Stack
from shared.contract.events import derive_id
from shared.platform.db import libpq_url

TENANT = "demo-grid"
GRIDS = ("990102001001001", "990102001001002", "990102001002001")
CATEGORIES = ("100401", "100102", "100110", "200101", "300102", "400101")


def synthetic_report(i: int, classified: bool = False) -> dict:
    """The i-th synthetic report (no personal data; ~400 bytes of JSON); ``classified``: without
    ``category_code`` (the text model predicts it)."""
    report = {
        "tenant": TENANT,
        "category_code": CATEGORIES[i % len(CATEGORIES)],
        "place_code": GRIDS[i % len(GRIDS)],
        "description": f"基准测试上报 benchmark report #{i}: 网格员巡查发现问题，需要派遣处理。",
        "channel": "grid_worker",
        "reported_at": datetime.now(UTC).isoformat(),
    }
    if classified:
        del report["category_code"]
    return report


async def post_reports(intake: str, n: int, concurrency: int, classified: bool = False) -> dict[uuid.UUID, float]:
    """POST ``n`` reports; return ``{case_id: POST start time (epoch seconds)}``."""
    started: dict[uuid.UUID, float] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    from gridcase.client import auth_headers

    async with httpx.AsyncClient(base_url=intake, timeout=60, headers=auth_headers()) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.time()
                resp = await client.post("/v1/reports", json=synthetic_report(i, classified))
                resp.raise_for_status()
                started[uuid.UUID(resp.json()["case_id"])] = t0

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return started


async def counted_times(database_url: str, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, float]:
    """When reporting counted each case's report (epoch seconds), from ``processed_events``."""
    event_to_case = {derive_id(cid, "case.reported"): cid for cid in case_ids}
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        rows = await conn.fetch(
            "SELECT event_id, processed_at FROM reporting.processed_events "
            "WHERE consumer = 'reporting' AND event_id = ANY($1::uuid[])",
            list(event_to_case),
        )
    finally:
        await conn.close()
    return {event_to_case[r["event_id"]]: r["processed_at"].timestamp() for r in rows}


async def bare_kafka(bootstrap: str, n: int) -> tuple[float, float]:
    """Produce then consume ``n`` ~600-byte messages on a scratch topic; return (produce/s, consume/s)."""
    topic = f"bench.bare.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()
    payload = b"x" * 600
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    t0 = time.perf_counter()
    futures = [await producer.send(topic, payload, key=str(i).encode()) for i in range(n)]
    await asyncio.gather(*futures)
    produce_s = time.perf_counter() - t0
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
        session_timeout_ms=6000, heartbeat_interval_ms=2000, enable_auto_commit=False,
    )
    await consumer.start()
    got = 0
    t1 = None
    try:
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                if records and t1 is None:
                    t1 = time.perf_counter()
                got += len(records)
        consume_s = time.perf_counter() - (t1 or time.perf_counter())
    finally:
        await consumer.stop()
    return n / produce_s, n / consume_s if consume_s > 0 else float("inf")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation, as numpy's default."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--bare-messages", type=int, default=None, help="default: same as --reports")
    parser.add_argument("--text-model", type=Path, default=None,
                        help="a text model (gridcase model train): reports without category_code are classified")
    args = parser.parse_args()
    env = {"INTAKE_RATE_LIMIT": ""}
    if args.text_model is not None:
        env["INTAKE_CLASSIFIER_MODELS"] = f"{TENANT}={args.text_model.resolve()}"

    # one client key drives the whole load: intake's per-key rate limit is lifted for the run
    with Stack(Path(tempfile.mkdtemp(prefix="gridcase-bench-")), fresh=True, env=env) as stack:
        t0 = time.time()
        started = asyncio.run(post_reports(stack.url("intake"), args.reports, args.concurrency,
                                           classified=args.text_model is not None))
        post_s = time.time() - t0
        wait_until_counted(stack.url("dispatch"), stack.url("reporting"), TENANT, args.reports, timeout_s=1800)
        counted = asyncio.run(counted_times(stack.infra.database_url, list(started)))
        latencies = [counted[c] - started[c] for c in started]
        end_to_end_s = max(counted.values()) - min(started.values())
        produce_rate, consume_rate = asyncio.run(bare_kafka(stack.infra.kafka_bootstrap, args.bare_messages or args.reports))

        print(f"infrastructure: Kafka {stack.infra.kafka_kind}, PostgreSQL {stack.infra.database_kind}")
        print(f"reports: {args.reports}, concurrency {args.concurrency}, text model: {args.text_model or 'none'}")
        print(f"intake accepted (HTTP 202): {args.reports / post_s:,.0f} reports/s")
        print(f"end to end (first POST → last counted in reporting): {args.reports / end_to_end_s:,.0f} reports/s")
        print(
            f"latency POST → counted: p50 {percentile(latencies, 0.5) * 1000:,.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:,.0f} ms, max {max(latencies) * 1000:,.0f} ms"
        )
        print(f"bare aiokafka on the same broker: produce {produce_rate:,.0f} msg/s (acks=all, awaited), "
              f"consume {consume_rate:,.0f} msg/s (from the first fetched record, after the group join)")
        print(f"(median latency check: {statistics.median(latencies) * 1000:,.0f} ms)")


if __name__ == "__main__":
    main()
