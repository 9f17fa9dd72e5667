"""The services' warnings on the console of ``gridcase up`` and ``gridcase demo``.

The services log to files in the stack's state folder (gridcase/runtime.py), which ``gridcase up``
removes at stop unless ``--state-dir`` is given. :class:`WarningRelay` follows those files and hands
every record at WARNING or above to the console (e.g. "no PII key configured (INTAKE_PII_KEYS):
using a development key …"), one line each, prefixed with the service's name; the lines that
follow a record (a traceback) stay in the log. Records are recognised in both log formats of
shared/platform/telemetry.py: text (``<date> <time> LEVEL service logger: message``) and JSON
lines (``"level"``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

LEVELS = ("WARNING", "ERROR", "CRITICAL")
_TEXT_RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} [\d:,.]+ (?P<level>[A-Z]+) (?P<rest>.*)$")


def warning_of(line: str) -> str | None:
    """The console text of a log line at WARNING or above (``"WARNING intake logger: message"``),
    else ``None``."""
    line = line.rstrip("\r\n")
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if isinstance(record, dict) and record.get("level") in LEVELS:
            return f"{record['level']} {record.get('service', '')} {record.get('logger', '')}: {record.get('message', '')}"
        return None
    match = _TEXT_RECORD.match(line)
    if match and match["level"] in LEVELS:
        return f"{match['level']} {match['rest']}"
    return None


class WarningRelay:
    """Follows log files (``logs()`` → ``{name: path}``, asked again each round, so restarted or
    added services are followed too) and calls ``emit(line)`` for each warning, from a daemon thread
    every ``interval_s`` seconds; :meth:`poll` does one round (and is what the tests call). Use as
    a context manager; leaving it reads what is left once more. A warning repeated within
    ``repeat_s`` seconds (e.g. a broker that stays away) is shown once."""

    def __init__(self, logs: Callable[[], dict[str, Path]], emit: Callable[[str], None], interval_s: float = 0.5,
                 repeat_s: float = 60.0) -> None:
        self.logs = logs
        self.repeat_s = repeat_s
        self._shown: dict[str, float] = {}
        self.emit = emit
        self.interval_s = interval_s
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> int:
        """Read what was appended since the last round; emit its warnings; return how many."""
        sent = 0
        for _name, path in sorted(self.logs().items()):
            try:
                with path.open("rb") as f:
                    f.seek(self._offsets.get(path, 0))
                    chunk = f.read()
            except OSError:
                continue
            self._offsets[path] = self._offsets.get(path, 0) + len(chunk)
            data = self._partial.pop(path, b"") + chunk
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[path] = rest  # a line still being written
            for raw in lines:
                text = warning_of(raw.decode("utf-8", errors="replace"))
                now = time.monotonic()
                if text is not None and now - self._shown.get(text, -self.repeat_s) >= self.repeat_s:
                    self._shown[text] = now
                    self.emit(f"⚠ {text}")
                    sent += 1
        return sent

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def __enter__(self) -> WarningRelay:
        self._thread = threading.Thread(target=self._run, name="gridcase-warning-relay", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.poll()


def stack_logs(stack) -> Callable[[], dict[str, Path]]:
    """``logs`` for :class:`WarningRelay` of a :class:`gridcase.runtime.Stack`."""
    return lambda: {name: svc.log_path for name, svc in list(stack.services.items())}
