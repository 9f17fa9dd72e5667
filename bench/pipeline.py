"""Benchmark: reports through the whole pipeline, against the bare broker and database limit
measured in the same run (issue 13). Prints one ``name=value`` line per figure (beside the stack's start-up
lines), so runs compare with ``farm-bench`` or a diff.

Starts the stack (env-named, testcontainers or embedded infrastructure, as ``gridcase up``), then,
all on the same machine (the client included):

1. ``bare_limit_per_s``: aiokafka produce (acks=all) → consume of report-sized messages, and a
   COPY of as many rows into PostgreSQL; the slowest of the three rates.
2. ``batch_end_to_end_per_s``: a JSON-lines file of N reports imported through ``/v1/imports``,
   from the start of the upload to the moment reporting has counted every case and every event
   dispatch derived; ``batch_ratio_to_bare_limit`` = that ÷ the bare limit.
3. ``single_post_per_s``: N reports POSTed one per request by C concurrent clients (202 answers/s).
4. ``p99_post_to_counted_ms_at_100_per_s``: reports offered at a steady 100/s (open loop) for S
   seconds; each from the start of its POST to its ``case.reported`` in
   ``reporting.processed_events`` (same clock).
5. ``goodput_ratio_at_4x_overload``: offered at 4 × ``single_post_per_s`` (open loop) for S seconds;
   accepted reports/s ÷ ``single_post_per_s``, with the refusals by status (503/429) and the
   client-side failures (timeouts) beside it.
6. ``peak_rss_mb_<service>``: each service process's peak resident memory (VmHWM).

``--soak N`` (instead of 1–5; N defaults to 1,000,000): N reports pushed through in chunks of
``--soak-chunk`` (each chunk: nine tenths as one JSON-lines import, one tenth POSTed singly by
``--concurrency`` clients, each part waited for until reporting has counted it). After every chunk each
service's resident memory is printed (``rss_mb_<service>_at_<reports>=``, VmRSS); at the end
``rss_peak_mb_<service>=`` (VmHWM) and ``rss_growth_mb_<service>=``, the resident memory after the
last chunk less that after the first (memory that grows with N shows here, not in the peak), and
``cpu_ms_per_report_<service>=``, the process's CPU time (user + system) per report over the run:
the load-independent figure the replica sizing in docs/operations.md §3 is derived from.

Usage: ``python bench/pipeline.py [--reports 20000] [--concurrency 64] [--seconds 20]``,
``python bench/pipeline.py --soak 100000``. Asserts nothing.

``--text-model MODEL`` (issue 15, docs/classifier.md §3): intake runs with that text model for the
tenant (``INTAKE_CLASSIFIER_MODELS``) and the POSTed reports carry no ``category_code``, so each
is classified in its request; compare ``single_post_per_s`` with a run without the option.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gridcase.client import auth_headers, import_file, wait_until_counted
from gridcase.runtime import Stack
from shared.contract.events import derive_id
from shared.platform.db import libpq_url

TENANT = "demo-grid"
GRIDS = ("990102001001001", "990102001001002", "990102001002001")
CATEGORIES = ("100401", "100102", "100110", "200101", "300102", "400101")


#: Reports without ``category_code`` (``--text-model``): the tenant's text model predicts it.
UNCATEGORISED = {"on": False}


def synthetic_report(i: int) -> dict:
    """The i-th synthetic report (no personal data; ~400 bytes of JSON); without ``category_code``
    under ``--text-model``."""
    report = {
        "tenant": TENANT,
        "category_code": CATEGORIES[i % len(CATEGORIES)],
        "place_code": GRIDS[i % len(GRIDS)],
        "description": f"基准测试上报 benchmark report #{i}: 网格员巡查发现问题，需要派遣处理。",
        "channel": "grid_worker",
        "reported_at": datetime.now(UTC).isoformat(),
    }
    if UNCATEGORISED["on"]:
        del report["category_code"]
    return report


async def post_reports(intake: str, n: int, concurrency: int, first: int = 0) -> dict[uuid.UUID, float]:
    """POST ``n`` reports (synthetic numbers from ``first``); return ``{case_id: POST start time
    (epoch seconds)}``."""
    started: dict[uuid.UUID, float] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(first, first + n):
        queue.put_nowait(i)

    async with httpx.AsyncClient(base_url=intake, timeout=60, headers=auth_headers()) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.time()
                resp = await client.post("/v1/reports", json=synthetic_report(i))
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

    # partitions assigned by hand (no group join to wait for): the clock runs from the first fetch
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    got = 0
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
                      ] or [TopicPartition(topic, p) for p in range(6)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        t1 = time.perf_counter()
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            got += sum(len(records) for records in batch.values())
        consume_s = time.perf_counter() - t1
    finally:
        await consumer.stop()
    return n / produce_s, n / consume_s if consume_s > 0 else float("inf")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation, as numpy's default."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


async def bare_copy(database_url: str, n: int) -> float:
    """COPY ``n`` report-sized rows into a scratch table; rows/s."""
    conn = await asyncpg.connect(libpq_url(database_url))
    table = f"bench_bare_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE UNLOGGED TABLE {table} (id uuid PRIMARY KEY, body text)")
        rows = [(uuid.uuid4(), "x" * 600) for _ in range(n)]
        t0 = time.perf_counter()
        await conn.copy_records_to_table(table, records=rows)
        return n / (time.perf_counter() - t0)
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


async def offer(intake: str, rate: float, seconds: float, first: int, timeout_s: float = 10.0) -> dict:
    """Open loop: start one POST every 1/``rate`` s for ``seconds``, whatever the answers (clients
    that do not wait for each other, as a city's residents). Returns the accepted reports' start
    times, the statuses, and the client-side failures."""
    started: dict[uuid.UUID, float] = {}
    statuses: Counter = Counter()
    # many small connection pools: one pool with thousands of queued requests costs the client
    # more CPU than the server (httpcore matches each request against each connection)
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    clients = [httpx.AsyncClient(base_url=intake, timeout=timeout_s, headers=auth_headers(), limits=limits)
               for _ in range(32)]
    try:

        async def one(i: int) -> None:
            t0 = time.time()
            try:
                resp = await clients[i % len(clients)].post("/v1/reports", json=synthetic_report(i))
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                return
            statuses[resp.status_code] += 1
            if resp.status_code == 202:
                started[uuid.UUID(resp.json()["case_id"])] = t0

        tasks, t_start, i = [], time.monotonic(), 0
        while (elapsed := time.monotonic() - t_start) < seconds:
            due = int(elapsed * rate) + 1
            while i < due:
                tasks.append(asyncio.create_task(one(first + i)))
                i += 1
            await asyncio.sleep(min(0.005, 1 / rate))
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()
    return {"started": started, "statuses": statuses, "offered": i}


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's peak resident set (VmHWM; ``field="VmRSS"``: the current one), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user + system), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(stack: Stack, n: int, chunk: int, concurrency: int, wait: Callable[[int], float],
         report: Callable[[str, object], None]) -> None:
    """Push ``n`` reports through in chunks (module docstring, ``--soak``); print memory per chunk."""
    intake = stack.url("intake")
    procs = {name: svc.proc.pid for name, svc in stack.services.items() if svc.proc is not None}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    cpu0 = {name: cpu_seconds(pid) for name, pid in procs.items()}
    intake_import_cpu = intake_post_cpu = 0.0
    imported = posted_total = 0
    folder = Path(tempfile.mkdtemp(prefix="gridcase-soak-"))
    t0, done = time.time(), 0
    while done < n:
        size = min(chunk, n - done)
        posted = size // 10
        path = folder / "chunk.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for i in range(size - posted):
                f.write(json.dumps(synthetic_report(10_000_000 + done + i), ensure_ascii=False) + "\n")
        # each part waited for until counted, so that intake's CPU of each (request, relay, case
        # view) falls into its own reading
        c0 = cpu_seconds(procs["intake"])
        wait(import_file(intake, path, "jsonl", TENANT, timeout_s=3600)["accepted"])
        c1 = cpu_seconds(procs["intake"])
        wait(len(asyncio.run(post_reports(intake, posted, concurrency, first=10_000_000 + done + size - posted))))
        intake_import_cpu += c1 - c0
        intake_post_cpu += cpu_seconds(procs["intake"]) - c1
        imported, posted_total = imported + size - posted, posted_total + posted
        done += size
        for name, pid in procs.items():
            last[name] = peak_rss_mb(pid, "VmRSS")
            first.setdefault(name, last[name])
            report(f"rss_mb_{name}_at_{done}", last[name])
    report("soak_reports", done)
    report("soak_end_to_end_per_s", done / (time.time() - t0))
    for name, pid in procs.items():
        report(f"rss_peak_mb_{name}", peak_rss_mb(pid))
        report(f"rss_growth_mb_{name}", last[name] - first[name])
        # CPU per report: replicas needed = peak reports/s × this ÷ 1000 (one core per process)
        report(f"cpu_ms_per_report_{name}", (cpu_seconds(pid) - cpu0[name]) * 1000 / done)
    # intake's share while importing vs while answering single POSTs (dispatch and reporting
    # consumed meanwhile on the same cores, so these are intake's own CPU, not wall time)
    report("cpu_ms_per_imported_row_intake", intake_import_cpu * 1000 / max(imported, 1))
    report("cpu_ms_per_posted_report_intake", intake_post_cpu * 1000 / max(posted_total, 1))


def main() -> None:
    """Run the measurements (module docstring) and print ``name=value`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20000, help="reports of the batch and single-POST runs")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the paced and overload runs")
    parser.add_argument("--skip", nargs="*", default=(), choices=("bare", "batch", "single", "paced", "overload"))
    parser.add_argument("--text-model", type=Path, default=None,
                        help="a text model (gridcase model train): POSTed reports without category_code are classified")
    parser.add_argument("--soak", type=int, nargs="?", const=1_000_000, default=None, metavar="N",
                        help="only push N reports through (default 1,000,000) and print memory per chunk")
    parser.add_argument("--soak-chunk", type=int, default=10_000)
    args = parser.parse_args()
    env = {"INTAKE_RATE_LIMIT": ""}
    if args.text_model is not None:
        env["INTAKE_CLASSIFIER_MODELS"] = f"{TENANT}={args.text_model.resolve()}"
        UNCATEGORISED["on"] = True
    out: dict[str, object] = {}
    n = args.reports

    def report(name: str, value) -> None:
        out[name] = value
        print(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}", flush=True)

    # one client key drives the whole load: intake's per-key rate limit is lifted for the run
    with Stack(Path(tempfile.mkdtemp(prefix="gridcase-bench-")), fresh=True, env=env) as stack:
        intake, dispatch, reporting = stack.url("intake"), stack.url("dispatch"), stack.url("reporting")
        report("infrastructure", f"kafka:{stack.infra.kafka_kind},postgresql:{stack.infra.database_kind}")
        counted_so_far = 0

        def wait(more: int) -> float:
            nonlocal counted_so_far
            counted_so_far += more
            wait_until_counted(dispatch, reporting, TENANT, counted_so_far, timeout_s=3600)
            return time.time()

        if args.soak is not None:
            soak(stack, args.soak, args.soak_chunk, args.concurrency, wait, report)
            return
        if "bare" not in args.skip:
            produce, consume = asyncio.run(bare_kafka(stack.infra.kafka_bootstrap, n))
            copy = asyncio.run(bare_copy(stack.infra.database_url, n))
            report("bare_produce_per_s", produce)
            report("bare_consume_per_s", consume)
            report("bare_copy_rows_per_s", copy)
            report("bare_limit_per_s", min(produce, consume, copy))
        if "batch" not in args.skip:
            path = Path(tempfile.mkdtemp(prefix="gridcase-bench-")) / "reports.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for i in range(n):
                    f.write(json.dumps(synthetic_report(1_000_000 + i), ensure_ascii=False) + "\n")
            t0 = time.time()
            result = import_file(intake, path, "jsonl", TENANT, timeout_s=3600)
            t_http = time.time()
            t_counted = wait(result["accepted"])
            report("batch_import_http_rows_per_s", n / (t_http - t0))
            report("batch_end_to_end_per_s", result["accepted"] / (t_counted - t0))
            if "bare_limit_per_s" in out:
                report("batch_ratio_to_bare_limit", out["batch_end_to_end_per_s"] / out["bare_limit_per_s"])
        if "single" not in args.skip:
            t0 = time.time()
            started = asyncio.run(post_reports(intake, n, args.concurrency))
            post_s = time.time() - t0
            wait(len(started))
            counted = asyncio.run(counted_times(stack.infra.database_url, list(started)))
            report("single_post_concurrency", args.concurrency)
            report("single_post_per_s", len(started) / post_s)
            report("single_post_end_to_end_per_s", len(started) / (max(counted.values()) - min(started.values())))
        if "paced" not in args.skip:
            run = asyncio.run(offer(intake, 100.0, args.seconds, 2_000_000))
            wait(len(run["started"]))
            counted = asyncio.run(counted_times(stack.infra.database_url, list(run["started"])))
            latencies = [counted[c] - t for c, t in run["started"].items()]
            report("p50_post_to_counted_ms_at_100_per_s", percentile(latencies, 0.5) * 1000)
            report("p99_post_to_counted_ms_at_100_per_s", percentile(latencies, 0.99) * 1000)
        if "overload" not in args.skip and "single_post_per_s" in out:
            capacity = float(out["single_post_per_s"])
            run = asyncio.run(offer(intake, 4 * capacity, args.seconds, 3_000_000))
            wait(len(run["started"]))
            report("overload_offered_per_s", run["offered"] / args.seconds)
            report("overload_accepted_per_s", len(run["started"]) / args.seconds)
            report("goodput_ratio_at_4x_overload", len(run["started"]) / args.seconds / capacity)
            for status, count in sorted(run["statuses"].items(), key=str):
                report(f"overload_answers_{status}", count)
        for name, svc in stack.services.items():
            if svc.proc is not None:
                report(f"peak_rss_mb_{name}", peak_rss_mb(svc.proc.pid))


if __name__ == "__main__":
    main()
