"""The services' logs on the running stack: plain text lines without colour codes, and the
warnings that matter relayed to the console as ``gridcase up`` and the demo do (gridcase/logwatch.py).

The session stack sets no ``INTAKE_PII_KEYS``, so intake seals reporter data with the development
key and says so (shared/platform/crypto.py): that warning must reach the console.
"""

from __future__ import annotations

import re

import pytest

from gridcase.logwatch import WarningRelay, stack_logs

pytestmark = pytest.mark.e2e

RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} [\d:,]+ [A-Z]+ (intake|dispatch|reporting) ")


def test_logs_are_plain_lines_and_warnings_reach_the_console(stack):
    for name in ("intake", "dispatch", "reporting"):
        text = stack.services[name].log_path.read_text(encoding="utf-8", errors="replace")
        assert "\x1b[" not in text, name  # no ANSI colour codes
        lines = [line for line in text.splitlines() if line.strip()]
        # every line is a record of the service (or a traceback's continuation), uvicorn's included
        assert any(RECORD.match(line) and "uvicorn" in line for line in lines), name
        assert not any(line.startswith("INFO:") for line in lines), name  # uvicorn's own format
    shown: list[str] = []
    WarningRelay(stack_logs(stack), shown.append).poll()
    assert any("INTAKE_PII_KEYS" in line and line.startswith("⚠ WARNING intake") for line in shown), shown[:5]
