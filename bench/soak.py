"""``bench/pipeline.py --soak N`` (issue 13): push N reports through the running stack in chunks
and print each service's memory after every chunk and its CPU time per report at the end (the
figures are described in bench/pipeline.py's docstring; docs/operations.md §3.1 uses them)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import cpu_seconds, peak_rss_mb
from bench.workload import TENANT, post_reports, synthetic_report
from gridcase.client import import_file
from gridcase.runtime import Stack


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

