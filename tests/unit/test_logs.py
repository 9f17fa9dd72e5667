"""Logs: plain text or JSON lines without colour codes (shared/platform/telemetry.py), and the
services' warnings relayed to the console of ``gridcase up`` / ``gridcase demo`` (gridcase/logwatch.py)."""

from __future__ import annotations

import json
import logging

import pytest

from gridcase.logwatch import WarningRelay, warning_of
from shared.platform.telemetry import configure_logging

PII_WARNING = "no PII key configured (INTAKE_PII_KEYS): using a development key derived from the pseudonym key"


@pytest.fixture
def captured(capsys):
    """``read()`` → what configure_logging's handler wrote to stderr; the root logger restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    # the loggers these tests write to, as a fresh process has them: another test may have disabled
    # them (logging.config's disable_existing_loggers) or raised their level
    named = [logging.getLogger(n) for n in ("gridcase.crypto", "uvicorn", "uvicorn.error", "x")]
    kept = [(lg.disabled, lg.level, lg.propagate) for lg in named]
    for lg in named:
        lg.disabled, lg.propagate = False, True
        lg.setLevel(logging.NOTSET)
    capsys.readouterr()  # what earlier code wrote is not this test's
    yield lambda: capsys.readouterr().err
    for lg, (disabled, level, propagate) in zip(named, kept, strict=True):
        lg.disabled, lg.propagate = disabled, propagate
        lg.setLevel(level)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)


def test_text_lines_have_no_colour_codes_and_uvicorn_joins_them(captured):
    configure_logging("INFO", "intake", "text")
    logging.getLogger("gridcase.crypto").warning(PII_WARNING)
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    text = captured()
    lines = text.splitlines()
    assert len(lines) == 2 and "\x1b[" not in text
    assert lines[0].endswith(f" WARNING intake gridcase.crypto: {PII_WARNING}")
    assert lines[1].endswith(" INFO intake uvicorn.error: Started server process [1]")


def test_json_lines(captured):
    configure_logging("INFO", "reporting", "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed %s", "here")
    [line] = [ln for ln in captured().splitlines() if ln.startswith("{")]
    record = json.loads(line)
    assert (record["level"], record["service"], record["logger"], record["message"]) == ("ERROR", "reporting", "x", "failed here")
    assert "ValueError: boom" in record["exception"] and record["time"].endswith("Z")


def test_warning_of_reads_both_formats():
    text = f"2026-12-06 19:42:46,946 WARNING intake gridcase.crypto: {PII_WARNING}"
    assert warning_of(text + "\n") == f"WARNING intake gridcase.crypto: {PII_WARNING}"
    assert warning_of("2026-12-06 19:42:46,946 INFO intake alembic: Running upgrade") is None
    assert warning_of("Traceback (most recent call last):") is None
    as_json = json.dumps({"time": "t", "level": "ERROR", "service": "dispatch", "logger": "l", "message": "m"})
    assert warning_of(as_json) == "ERROR dispatch l: m"
    assert warning_of(json.dumps({"level": "INFO", "message": "m"})) is None
    assert warning_of("{not json") is None


def test_relay_emits_each_warning_once_and_waits_for_whole_lines(tmp_path):
    log = tmp_path / "intake.log"
    log.write_text("2026-12-06 19:42:46,001 INFO intake a: started\n"
                   f"2026-12-06 19:42:46,002 WARNING intake gridcase.crypto: {PII_WARNING}\n"
                   "2026-12-06 19:42:46,003 ERROR intake b: half a li", encoding="utf-8")
    shown: list[str] = []
    relay = WarningRelay(lambda: {"intake": log}, shown.append)
    assert relay.poll() == 1 and shown == [f"⚠ WARNING intake gridcase.crypto: {PII_WARNING}"]
    with log.open("a", encoding="utf-8") as f:
        f.write("ne\n" + f"2026-12-06 19:42:47,000 WARNING intake gridcase.crypto: {PII_WARNING}\n")
    assert relay.poll() == 1  # the completed ERROR line; the repeated warning is not shown again
    assert shown[-1] == "⚠ ERROR intake b: half a line"
    assert relay.poll() == 0
