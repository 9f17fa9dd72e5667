"""The ``nyc311`` import format: NYC Open Data "311 Service Requests" CSV (``Agency``,
``Status == "Closed"``, the recorded ``Due Date``). Rules from ``/work/shared/data/README.md``,
section "nyc311…" (Columns, Quirks) and "How the ground-truth figures were computed" (share
closed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import TextIO
from zoneinfo import ZoneInfo

from services.intake.importers.readers import (
    TIME_CACHE_SIZE,
    build,
    read_csv,
    row_error,
)
from services.intake.schemas import ReportIn, RowError

_NYC_REQUIRED = (
    "Unique Key",
    "Created Date",
    "Closed Date",
    "Agency",
    "Complaint Type",
    "Descriptor",
    "Status",
    "Due Date",
    "Community Board",
    "Borough",
    "Open Data Channel Type",
)
#: README "nyc311…" Quirks: "parse with %m/%d/%y %H:%M". The second format is NYC Open Data's
#: native export format (e.g. "10/21/2018 12:00:00 AM"), accepted for unmodified exports.
_NYC_DATE_FORMATS = ("%m/%d/%y %H:%M", "%m/%d/%Y %I:%M:%S %p")
#: NYC borough codes as used in community-district numbers (e.g. 405 = Queens CD 5).
_NYC_BOROUGH_DIGIT = {
    "MANHATTAN": "1",
    "BRONX": "2",
    "BROOKLYN": "3",
    "QUEENS": "4",
    "STATEN ISLAND": "5",
}
_NYC_COMMUNITY_BOARD = re.compile(r"^\s*(\d{1,2})\s+([A-Za-z ]+?)\s*$")


@lru_cache(maxsize=TIME_CACHE_SIZE)
def _parse_nyc_time(text: str, zone: ZoneInfo) -> datetime | None:
    """``text`` in one of :data:`_NYC_DATE_FORMATS`, in ``zone``; ``None`` if neither fits.
    Cached (bounded): an export's times are to the minute and repeat, and ``strptime`` was a
    tenth of intake's time during an NYC import (issue 13)."""
    text = text.strip()
    for fmt in _NYC_DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    return None


def _nyc_place_code(community_board: str, borough: str) -> str:
    """NYC community-district code: borough digit + 2-digit board ("05 QUEENS" -> "405").

    Falls back to the borough digit from ``Borough`` alone, and to ``"0"`` when the borough is
    ``Unspecified`` or unknown (README "nyc311…" Columns: ``Community Board``, ``Borough``).
    """
    match = _NYC_COMMUNITY_BOARD.match(community_board)
    if match:
        board = int(match.group(1))
        digit = _NYC_BOROUGH_DIGIT.get(match.group(2).upper())
        if digit is not None and board > 0:
            return f"{digit}{board:02d}"
    return _NYC_BOROUGH_DIGIT.get(borough.strip().upper(), "0")


def _map_nyc(n: int, row: dict[str, str], tenant: str, zone: ZoneInfo) -> ReportIn | RowError:
    """Map one NYC 311 row (README "nyc311…" Columns, Quirks); closed iff ``Status == "Closed"``.

    A non-Closed row that has a ``Closed Date`` is not closed (README "How the ground-truth
    figures were computed", share closed). A Closed row with an empty or unparseable
    ``Closed Date`` is closed with ``closed_at=None``. ``Due Date`` (README "Right answer for
    statistics") is the recorded deadline of every row, open or closed; empty or unparseable:
    none.
    """
    problems: list[tuple[str, str]] = []
    source_id = row["Unique Key"].strip()
    if not source_id:
        problems.append(("Unique Key", "missing request id"))
    created_text = row["Created Date"]
    reported_at = _parse_nyc_time(created_text, zone)
    if reported_at is None:
        problem = (
            "missing date"
            if not created_text.strip()
            else f"cannot parse {created_text.strip()!r} as %m/%d/%y %H:%M"
        )
        problems.append(("Created Date", problem))
    if problems:
        return row_error(n, problems)

    status = row["Status"]
    closed = status == "Closed"
    closed_at = _parse_nyc_time(row["Closed Date"], zone) if closed else None
    complaint_type = row["Complaint Type"]
    return build(
        n,
        {
            "tenant": tenant,
            "source": "nyc311",
            "source_id": source_id,
            "category_code": complaint_type.strip(),
            "category_name": complaint_type,
            "description": row["Descriptor"],
            "channel": row["Open Data Channel Type"],
            "place_code": _nyc_place_code(row["Community Board"], row["Borough"]),
            "reported_at": reported_at,
            "history": {
                "department": row["Agency"].strip() or None,
                "status": status or None,
                "closed": closed,
                "closed_at": closed_at,
                "transfers": (),
                "deadline": _parse_nyc_time(row["Due Date"], zone),
            },
        },
    )



def read(stream: TextIO, tenant: str, zone: ZoneInfo) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read an NYC 311 file (header checked now, rows as they are iterated)."""
    return read_csv(stream, "nyc311", _NYC_REQUIRED, lambda n, row, values: _map_nyc(n, row, tenant, zone))
