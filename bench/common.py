"""Measuring the stack's processes from outside, shared by the bench scripts: a process's CPU
time and resident memory (/proc), and one figure printed as the ``name=value`` line the scripts
compare by (``farm-bench`` or a diff)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, /proc/<pid>/stat), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's peak resident set (VmHWM; ``field="VmRSS"``: the current one), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def print_figure(name: str, value) -> None:
    """Print one figure as ``name=value`` (floats to 4 significant digits)."""
    print(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}", flush=True)
