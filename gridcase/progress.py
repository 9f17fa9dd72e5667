"""Progress of a long upload (``gridcase import``): rows sent, rows per second and the time left.

On a terminal it is a rich progress bar; otherwise (a pipe, a log file, CI) one plain line every
:data:`PLAIN_EVERY_S` seconds and one at the end, so logs stay readable. Rows are counted as the
file's line breaks (a CSV's header line is not a row; a quoted cell with a line break makes the
count an estimate, hence "≈"); the time left follows from the bytes still to send.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

PLAIN_EVERY_S = 5.0


def count_lines(path: Path, chunk: int = 1 << 20) -> int:
    """Line breaks in ``path`` (+1 when the last line has none), read in chunks (constant memory)."""
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while block := f.read(chunk):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (0 if last == b"\n" else 1)


def rate_text(rows: int, seconds: float) -> str:
    """``"1,234 rows/s"`` (``"– rows/s"`` before any time has passed)."""
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "– rows/s"


def eta_text(sent: int, total: int, seconds: float) -> str:
    """Time left at the rate so far, as ``m:ss`` (``"–"`` before anything was sent)."""
    if sent <= 0 or seconds <= 0:
        return "–"
    left = max(0.0, (total - sent) * seconds / sent)
    return f"{int(left // 60)}:{int(left % 60):02d}"


class UploadProgress:
    """Context manager: ``update(bytes_sent, total_bytes, lines_sent)`` as the body streams.

    ``header_lines`` (1 for the CSV formats, 0 for ``jsonl``) are not counted as rows.
    ``stream`` (default stderr) decides the display: rich when it is a terminal, plain lines else.
    """

    def __init__(self, path: Path, header_lines: int, stream: TextIO | None = None, label: str = "上传 uploading") -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.header_lines = header_lines
        self.total_bytes = path.stat().st_size
        self.total_rows = max(0, count_lines(path) - header_lines)
        self.rows = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._last_line = 0.0
        self._rich = None
        self._task = None

    def __enter__(self) -> UploadProgress:
        self.started = time.monotonic()
        if self.stream.isatty():
            from rich.console import Console  # noqa: PLC0415
            from rich.progress import (  # noqa: PLC0415
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._rich = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows ≈"),
                TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total_rows or None, rate=rate_text(0, 0))
        else:
            self._print(f"{self.label}: {self.total_rows:,} rows ≈, {self.total_bytes:,} bytes")
        return self

    def update(self, bytes_sent: int, total_bytes: int, lines_sent: int) -> None:
        """Record progress: bytes and line breaks sent so far."""
        self.bytes = bytes_sent
        self.rows = max(0, min(self.total_rows, lines_sent - self.header_lines))
        elapsed = time.monotonic() - self.started
        if self._rich is not None:
            self._rich.update(self._task, completed=self.rows, rate=rate_text(self.rows, elapsed))
        elif elapsed - self._last_line >= PLAIN_EVERY_S:
            self._last_line = elapsed
            self._print(self.line(elapsed))

    def line(self, elapsed: float) -> str:
        """The plain progress line: rows sent of the total, share, rate, time left."""
        share = 100 * self.bytes / self.total_bytes if self.total_bytes else 100.0
        return (f"{self.label}: {self.rows:,}/{self.total_rows:,} rows ≈ ({share:.0f} %), "
                f"{rate_text(self.rows, elapsed)}, ETA {eta_text(self.bytes, self.total_bytes, elapsed)}")

    def __exit__(self, *exc) -> None:
        elapsed = time.monotonic() - self.started
        if self._rich is not None:
            self._rich.stop()
        elif exc[0] is None:
            self._print(f"{self.label}: sent {self.rows:,} rows ≈ in {elapsed:.1f} s ({rate_text(self.rows, elapsed)}); "
                        "waiting for intake's counts …")

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
