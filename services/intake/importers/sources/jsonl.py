"""The ``jsonl`` import format: gridcase's own, one JSON object with the fields of ``ReportIn``
per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from services.intake.importers.readers import BOM, build, row_error
from services.intake.schemas import ReportIn, RowError


def _localise_iso(value: Any, zone: ZoneInfo) -> Any:
    """Give a naive ISO-8601 date/time string the zone ``zone``; leave anything else as it is
    (pydantic then reports what is wrong with it)."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return value
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=zone).isoformat()
    return value


def read(
    stream: TextIO, tenant: str, zone: ZoneInfo
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """One JSON object per line with :class:`ReportIn` fields (gridcase's own format).

    ``tenant`` may be omitted (or null) and then is the import's tenant; another tenant is a
    RowError on field ``tenant``. Naive ``reported_at``, ``history.closed_at``,
    ``history.deadline`` and ``history.transfers[].at`` strings are read in ``zone``. Blank lines are skipped; line
    numbers are physical, 1-based.
    """
    for n, line in enumerate(stream, start=1):
        if n == 1 and line.startswith(BOM):
            line = line[len(BOM):]
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, row_error(n, [("", f"invalid JSON: {exc}")])
            continue
        except RecursionError:
            yield n, row_error(n, [("", "invalid JSON: nested too deeply")])
            continue
        if not isinstance(obj, dict):
            yield n, row_error(n, [("", f"expected a JSON object, got {type(obj).__name__}")])
            continue
        line_tenant = obj.get("tenant")
        if line_tenant is not None and line_tenant != tenant:
            problem = f"line is for tenant {line_tenant!r}, the import is for {tenant!r}"
            yield n, row_error(n, [("tenant", problem)])
            continue
        obj["tenant"] = tenant
        if "reported_at" in obj:
            obj["reported_at"] = _localise_iso(obj["reported_at"], zone)
        history = obj.get("history")
        if isinstance(history, dict):
            for key in ("closed_at", "deadline"):
                if key in history:
                    history[key] = _localise_iso(history[key], zone)
            transfers = history.get("transfers")
            if isinstance(transfers, list):
                for transfer in transfers:
                    if isinstance(transfer, dict) and "at" in transfer:
                        transfer["at"] = _localise_iso(transfer["at"], zone)
        yield n, build(n, obj)
