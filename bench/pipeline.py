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
3. ``single_post_per_s``: N reports POSTed one per request by C concurrent clients (202 answers/s);
   ``single_cpu_ms_per_report_<service>``: each service's CPU time (/proc) from the first POST until
   reporting has counted them all, ÷ the reports.
4. ``p99_post_to_counted_ms_at_100_per_s``: reports offered at a steady 100/s (open loop) for S
   seconds; each from the start of its POST to its ``case.reported`` in
   ``reporting.processed_events`` (same clock).
5. ``goodput_ratio_at_4x_overload``: offered at 4 × ``single_post_per_s`` (open loop) for S seconds;
   accepted reports/s ÷ ``single_post_per_s``, with the refusals by status (503/429) and the
   client-side failures (timeouts) beside it.
   ``batch_cpu_ms_per_report_<service>``: each service's CPU time (/proc) over the batch ÷ its
   reports, with the load average before and after: the figure to compare changes by on a shared machine.
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

``--text-model [MODEL]`` (issue 15 "intake throughput with the model on stays within 10 % of
without", docs/classifier.md §3): intake runs with a text model for tenant demo-grid
(``INTAKE_CLASSIFIER_MODELS``) — MODEL, or without it one trained at the start of the run. The
same reports are then POSTed in two ways in the same run, interleaved: ``--rounds`` rounds, each
N/rounds reports of each kind (the order alternating), by C concurrent clients: *with the model*
description-only (no ``category_code``: intake classifies each in its request), *without* the
same description with the category given (the reports of before issue 15: nothing to predict).
The category given is the model's own prediction, computed by the bench beforehand, and only texts
the model classifies at or above the tenant's threshold are used, so both kinds are stored, routed,
dispatched and counted alike: the two paths differ by the prediction alone. Each report names a
building code of its own (no possible duplicates to rank). Prints
``single_post_per_s_with_model``, ``single_post_per_s_without_model`` and
``model_throughput_ratio`` (with ÷ without), the per-round rates and the load average before and
after (the machine may be shared), and, less dependent on that load, intake's CPU time per report
of each kind (``intake_cpu_ms_per_report_*``, /proc) and ``model_cpu_ratio`` (without ÷ with: the
throughput ratio intake's own CPU allows). The trained model learns from the
shared Teddy Cup labelled messages when ../shared/data (or ``$GRIDCASE_SHARED_DATA``) holds them —
read in place, never copied, and said so (``text_source``) — else from made-up messages
(:func:`synthetic_messages`); the POSTed descriptions come from the same source.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from bench.common import cpu_seconds, peak_rss_mb, print_figure  # noqa: E402
from bench.soak import soak  # noqa: E402
from bench.workload import GRIDS, TENANT, post_reports, synthetic_report  # noqa: E402
from gridcase.client import auth_headers, import_file, wait_until_counted  # noqa: E402
from gridcase.runtime import Stack  # noqa: E402
from shared.contract.events import derive_id  # noqa: E402
from shared.platform.db import libpq_url  # noqa: E402

#: The shared Teddy Cup labelled messages (``--text-model`` without MODEL): read in place, if present.
SHARED_DATA = Path(os.environ.get("GRIDCASE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TEDDY_FILES = (("teddycup_labelled", "teddycup2020c_fj2full_labelled_details_sample.csv"),
               ("teddycup_messages", "teddycup2020c_fj2_messages_sample.csv"))
#: Words of made-up messages per category (from the categories' names, shared/data/taxonomy.yaml).
SYNTHETIC_TOPICS = {
    "100102": ("垃圾", "垃圾桶", "清运", "堆放", "苍蝇", "满溢", "臭味"),
    "100110": ("油烟", "饭店", "排烟", "厨房", "呛人", "烧烤", "净化器"),
    "100401": ("下水道", "堵塞", "污水", "井盖", "外溢", "管道", "返水"),
    "200101": ("异味", "刺鼻", "气味", "工厂", "排放", "熏人", "化工"),
    "300102": ("邻居", "噪音", "吵闹", "装修", "纠纷", "楼上", "漏水"),
    "400101": ("消防", "通道", "堵占", "电瓶车", "充电", "楼道", "隐患"),
}
SYNTHETIC_FILLER = ("小区", "门口", "最近", "一直", "希望", "尽快", "处理", "我们", "附近", "居民", "已经",
                    "多次", "反映", "没有", "解决", "晚上", "影响", "休息", "老人", "孩子")


def synthetic_messages(n_per_class: int, seed: int = 15) -> list[tuple[str, str]]:
    """``(text, category)`` made-up resident messages (no data set, no personal data): three
    sentences of topic and filler words, about 60 characters, as a short 12345 message."""
    rng = random.Random(seed)
    out = []
    for code, words in SYNTHETIC_TOPICS.items():
        for _ in range(n_per_class):
            sentences = ["".join(rng.sample(words, 2) + rng.sample(SYNTHETIC_FILLER, 3)) for _ in range(3)]
            out.append(("，".join(sentences) + "。", code))
    return out


def text_model_source() -> tuple[str, list[tuple[str, str]]]:
    """Where ``--text-model`` learns and what it POSTs: ``(source, [(text, label)])``: the shared
    Teddy Cup labelled messages if present (read in place), else :func:`synthetic_messages`."""
    specs = [(fmt, SHARED_DATA / name) for fmt, name in TEDDY_FILES]
    if all(path.exists() for _, path in specs):
        from gridcase.model import read_labelled

        return f"teddycup:{SHARED_DATA} (shared data, read in place, not in the repo)", read_labelled(specs)
    return "synthetic (bench/pipeline.py synthetic_messages)", synthetic_messages(200)


def train_text_model(pairs: list[tuple[str, str]], out: Path) -> str:
    """Train a text model on ``pairs`` (no cross-validation) into ``out``; its version."""
    from shared.platform import textmodel

    model = textmodel.train([t for t, _ in pairs], [label for _, label in pairs], folds=None)
    model.save(out)
    return model.version


def description_report(i: int, texts: list[tuple[str, str]], with_category: bool) -> dict:
    """The i-th report of the ``--text-model`` comparison: text ``texts[i]`` (``(text, category the
    model predicts)``), with that category or without any, at a building code of its own."""
    text, category = texts[i % len(texts)]
    report = {
        "tenant": TENANT,
        "place_code": f"{GRIDS[i % len(GRIDS)]}{i % 10**6:06d}",
        "description": text,
        "channel": "grid_worker",
        "reported_at": datetime.now(UTC).isoformat(),
    }
    if with_category:
        report["category_code"] = category
    return report


def confidently_classified(model_path: Path, texts: list[str]) -> list[tuple[str, str]]:
    """``(text, category)`` of the texts the model classifies at or above demo-grid's threshold
    (shared/domain/textclass.py ``decide``, as intake does)."""
    from shared.domain.tenants import load_tenant
    from shared.domain.textclass import decide
    from shared.platform import textmodel

    model, threshold = textmodel.load(model_path), load_tenant(TENANT).text.threshold
    decided = ((text, decide(model.probabilities(text), threshold).category_code) for text in texts)
    return [(text, code) for text, code in decided if code is not None]


def model_rounds(intake: str, n: int, concurrency: int, rounds: int, texts: list[tuple[str, str]], intake_pid: int
                 ) -> dict[str, list[tuple[int, float, float]]]:
    """``--text-model``: ``rounds`` rounds of n/rounds description-only POSTs (the model predicts)
    and as many of the same reports with their category, interleaved (the order alternating round
    by round); ``{"with": [(reports, seconds, intake's CPU seconds), …], "without": […]}``."""
    per = max(1, n // rounds)
    out: dict[str, list[tuple[int, float, float]]] = {"with": [], "without": []}
    first = 4_000_000
    for k in range(rounds):
        order = (("with", False), ("without", True))
        for name, with_category in order if k % 2 == 0 else reversed(order):
            t0, cpu0 = time.perf_counter(), cpu_seconds(intake_pid)
            done = asyncio.run(post_reports(
                intake, per, concurrency, lambda i, c=with_category: description_report(i, texts, c), first))
            out[name].append((len(done), time.perf_counter() - t0, cpu_seconds(intake_pid) - cpu0))
            first += per
    return out


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


def main() -> None:
    """Run the measurements (module docstring) and print ``name=value`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20000, help="reports of the batch and single-POST runs")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the paced and overload runs")
    parser.add_argument("--skip", nargs="*", default=(), choices=("bare", "batch", "single", "paced", "overload"))
    parser.add_argument("--text-model", nargs="?", const="train", default=None,
                        help="a text model (gridcase model train) for demo-grid, or none: train one at the start; "
                             "adds the with/without-model throughput of description-only reports (module docstring)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the --text-model comparison")
    parser.add_argument("--soak", type=int, nargs="?", const=1_000_000, default=None, metavar="N",
                        help="only push N reports through (default 1,000,000) and print memory per chunk")
    parser.add_argument("--soak-chunk", type=int, default=10_000)
    args = parser.parse_args()
    env = {"INTAKE_RATE_LIMIT": ""}
    out: dict[str, object] = {}
    n = args.reports

    def report(name: str, value) -> None:
        out[name] = value
        print_figure(name, value)

    texts: list[str] = []
    if args.text_model is not None:
        source, pairs = text_model_source()
        texts = [t for t, _ in pairs]
        random.Random(15).shuffle(texts)
        if args.text_model == "train":
            model_path = Path(tempfile.mkdtemp(prefix="gridcase-bench-model-")) / f"{TENANT}.joblib"
            t0 = time.perf_counter()
            report("text_model_version", train_text_model(pairs, model_path))
            report("text_model_train_s", time.perf_counter() - t0)
            report("text_model_trained_on", len(pairs))
        else:
            model_path = Path(args.text_model).resolve()
        report("text_source", source)
        env["INTAKE_CLASSIFIER_MODELS"] = f"{TENANT}={model_path}"
        classified = confidently_classified(model_path, texts)
        report("texts_classified_at_threshold", f"{len(classified)} of {len(texts)}")

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
            pids = {name: svc.proc.pid for name, svc in stack.services.items() if svc.proc is not None}
            report("load_average_1m_before_batch", os.getloadavg()[0])
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            t0 = time.time()
            result = import_file(intake, path, "jsonl", TENANT, timeout_s=3600)
            t_http = time.time()
            t_counted = wait(result["accepted"])
            report("load_average_1m_after_batch", os.getloadavg()[0])
            report("batch_import_http_rows_per_s", n / (t_http - t0))
            report("batch_end_to_end_per_s", result["accepted"] / (t_counted - t0))
            # each service's CPU per report of the batch: less dependent on a shared machine's load
            for name, pid in pids.items():
                report(f"batch_cpu_ms_per_report_{name}", 1000 * (cpu_seconds(pid) - cpu0[name]) / max(result["accepted"], 1))
            if "bare_limit_per_s" in out:
                report("batch_ratio_to_bare_limit", out["batch_end_to_end_per_s"] / out["bare_limit_per_s"])
        if "single" not in args.skip:
            pids = {name: svc.proc.pid for name, svc in stack.services.items() if svc.proc is not None}
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            t0 = time.time()
            started = asyncio.run(post_reports(intake, n, args.concurrency))
            post_s = time.time() - t0
            wait(len(started))
            # each service's CPU per POSTed report (stored, dispatched, counted): less dependent on
            # a shared machine's load than the rate
            for name, pid in pids.items():
                report(f"single_cpu_ms_per_report_{name}", 1000 * (cpu_seconds(pid) - cpu0[name]) / max(len(started), 1))
            counted = asyncio.run(counted_times(stack.infra.database_url, list(started)))
            report("single_post_concurrency", args.concurrency)
            report("single_post_per_s", len(started) / post_s)
            report("single_post_end_to_end_per_s", len(started) / (max(counted.values()) - min(started.values())))
        if "paced" not in args.skip:
            # a steady rate: two seconds at it first, not counted (a fresh stack's first reports
            # wait on statement preparation and the consumers' first fetches)
            warm = asyncio.run(offer(intake, 100.0, 2.0, 1_900_000))
            wait(len(warm["started"]))
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
        if args.text_model is not None:
            report("load_average_1m_before", os.getloadavg()[0])
            rounds = model_rounds(intake, n, args.concurrency, args.rounds, classified, stack.services["intake"].proc.pid)
            report("load_average_1m_after", os.getloadavg()[0])
            rates = {name: sum(r[0] for r in runs) / sum(r[1] for r in runs) for name, runs in rounds.items()}
            cpu_ms = {name: 1000 * sum(r[2] for r in runs) / sum(r[0] for r in runs) for name, runs in rounds.items()}
            report("model_concurrency", args.concurrency)
            for name in ("with", "without"):
                report(f"rounds_per_s_{name}_model", " ".join(f"{k / s:.1f}" for k, s, _ in rounds[name]))
                report(f"intake_cpu_ms_per_report_{name}_model", cpu_ms[name])
            report("single_post_per_s_with_model", rates["with"])
            report("single_post_per_s_without_model", rates["without"])
            report("model_throughput_ratio", rates["with"] / rates["without"])
            # what intake's own CPU allows, whatever else the machine runs: without ÷ with
            report("model_cpu_ratio", cpu_ms["without"] / cpu_ms["with"])
            wait(sum(r[0] for r in rounds["with"] + rounds["without"]))
        for name, svc in stack.services.items():
            if svc.proc is not None:
                report(f"peak_rss_mb_{name}", peak_rss_mb(svc.proc.pid))


if __name__ == "__main__":
    main()
