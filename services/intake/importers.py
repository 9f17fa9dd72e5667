"""Streaming importers: turn an import file into :class:`ReportIn` rows or :class:`RowError` rows.

Three formats are read (:data:`FORMATS`):

- ``nyc311``: an NYC Open Data "311 Service Requests" CSV export (historical records with the
  handling agency and status). Rules from ``/work/shared/data/README.md``, section
  "``nyc311_2018-10-21_sample.csv``" (Columns, Quirks, Right answer for statistics) and
  "How the ground-truth figures were computed" (share closed: ``Status == "Closed"``).
- ``fuzhou12345``: the Fuzhou 12345 hotline black-odorous-water work-order spreadsheet saved as
  CSV. Rules from the README section "``fuzhou12345_water_complaints_sample.csv``" (Columns,
  Right answer for routing / statistics, Quirks: "every record had at least one reply").
- ``jsonl``: gridcase's own format, one JSON object with the fields of :class:`ReportIn` per line.

:func:`iter_records` reads the text stream row by row (``csv`` reader or line iteration) and never
holds the whole file. The one exception is the ``fuzhou12345`` duplicate counter, which keeps one
20-byte digest and a count per distinct row (see :func:`iter_records`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from services.intake.schemas import ReportIn, RowError
from shared.events import TENANT_PATTERN

FORMATS: tuple[str, ...] = ("nyc311", "fuzhou12345", "jsonl")

#: Zone in which naive source times of each format are read (IANA names).
DEFAULT_TIMEZONE: dict[str, str] = {
    "nyc311": "America/New_York",
    "fuzhou12345": "Asia/Shanghai",
    "jsonl": "Asia/Shanghai",
}

_BOM = "\ufeff"
_DESCRIPTION_MAX = 4000  # ReportIn.description max_length

# --- nyc311 -----------------------------------------------------------------------------------

_NYC_REQUIRED = (
    "Unique Key",
    "Created Date",
    "Closed Date",
    "Agency",
    "Complaint Type",
    "Descriptor",
    "Status",
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

# --- fuzhou12345 ------------------------------------------------------------------------------

_FUZHOU_REQUIRED = (
    "区域",
    "性质",
    "信息来源",
    "标题",
    "时间",
    "投诉件内容",
    "转处理次数",
    "最终回复-投诉事件",
)
#: GB/T 2260 codes of the five Fuzhou districts named by the README's 区域 column.
_FUZHOU_DISTRICT_CODE = {
    "鼓楼区": "350102",
    "台江区": "350103",
    "仓山区": "350104",
    "马尾区": "350105",
    "晋安区": "350111",
}
_FUZHOU_CATEGORY_CODE = "200401"
_FUZHOU_CATEGORY_NAME = "黑臭水体 black and odorous water"
#: The README's Fuzhou section: "The spreadsheet has no per-row status; every record had at
#: least one reply." Every row is therefore closed, with this status.
_FUZHOU_STATUS = "已回复"


class UnknownFormat(ValueError):
    """The import format name is not one of :data:`FORMATS`."""


def iter_records(
    fmt: str, stream: TextIO, tenant: str, tz: str | None = None
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read an import file row by row and yield ``(row_number, ReportIn | RowError)``.

    Args:
        fmt: one of :data:`FORMATS`.
        stream: a text stream positioned at the start of the file. For the CSV formats open it
            with ``newline=""`` (quoted cells may contain line breaks). A UTF-8 byte-order mark
            at the start (``"\\ufeff"``, as from ``encoding="utf-8"`` on a BOM file) is ignored.
        tenant: the tenant every report is imported for (``shared.events.TENANT_PATTERN``).
        tz: IANA zone in which naive source times are read; default ``DEFAULT_TIMEZONE[fmt]``.
            Times are localised with :mod:`zoneinfo` (``fold=0`` for an ambiguous wall time).

    Yields:
        ``(n, ReportIn)`` for an accepted row, or ``(n, RowError(line=n, errors=[...]))`` for a
        rejected one, where each error is ``{"field": ..., "problem": ...}``: ``field`` is the
        source column (e.g. ``"Created Date"``, ``"区域"``) for a mapping problem, or the dotted
        :class:`ReportIn` location (e.g. ``"history.closed_at"``) for a validation problem
        (one entry per pydantic error, ``problem`` = its ``msg``). ``n`` is, for the CSV
        formats, the 1-based data row number (header excluded, fully blank rows skipped); for
        ``jsonl`` the 1-based physical line number (blank lines skipped but counted).
        A bad row never raises.

    Raises:
        UnknownFormat: ``fmt`` is not in :data:`FORMATS`.
        ValueError: ``tz`` is not a known zone, ``tenant`` does not match the tenant pattern,
            or (CSV formats) the file is empty or its header lacks required columns (named in
            the message) or repeats a column name. These are checked when this function is
            called, before the first row is read.
        UnicodeDecodeError: the stream's bytes do not decode (a whole-file problem), raised
            while iterating.

    Memory is constant in the number of rows except for ``fuzhou12345``, whose ``source_id``
    needs the number of earlier identical rows: one digest and count per distinct row is kept.
    """
    if fmt not in FORMATS:
        raise UnknownFormat(f"unknown import format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not isinstance(tenant, str) or not re.fullmatch(TENANT_PATTERN, tenant):
        raise ValueError(f"invalid tenant {tenant!r}: must match {TENANT_PATTERN}")
    zone_name = tz if tz is not None else DEFAULT_TIMEZONE[fmt]
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone_name!r}") from exc

    if fmt == "jsonl":
        return _iter_jsonl(stream, tenant, zone)
    required = _NYC_REQUIRED if fmt == "nyc311" else _FUZHOU_REQUIRED
    reader = csv.reader(stream)
    header = _read_header(reader, fmt, required)
    if fmt == "nyc311":
        return _iter_csv(reader, header, lambda n, row, values: _map_nyc(n, row, tenant, zone))
    counts: dict[bytes, int] = {}
    return _iter_csv(
        reader,
        header,
        lambda n, row, values: _map_fuzhou(n, row, values, tenant, zone, counts),
    )


# --- shared helpers ---------------------------------------------------------------------------


def _read_header(reader: Iterator[list[str]], fmt: str, required: Iterable[str]) -> list[str]:
    """Read the header row, strip a BOM and surrounding spaces, check required columns."""
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{fmt} import: the file is empty (no header row)") from None
    header = [name.strip() for name in header]
    if header and header[0].startswith(_BOM):
        header[0] = header[0].lstrip(_BOM).strip()
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ValueError(f"{fmt} import: header repeats column(s) {', '.join(duplicated)}")
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(
            f"{fmt} import: header lacks required column(s) {', '.join(missing)}"
        )
    return header


def _iter_csv(
    reader: Iterator[list[str]],
    header: list[str],
    map_row: Callable[[int, dict[str, str], list[str]], ReportIn | RowError],
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Yield ``(n, map_row(n, row_as_dict, raw_values))`` per non-blank data row.

    A row whose field count differs from the header's, or that the csv module cannot read,
    becomes a RowError with field ``""``.
    """
    n = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over csv.field_size_limit(); reader goes on
            n += 1
            yield n, _row_error(n, [("", f"unreadable CSV row: {exc}")])
            continue
        if not values:  # a fully blank line; csv.DictReader skips these too
            continue
        n += 1
        if len(values) != len(header):
            problem = f"row has {len(values)} fields, the header has {len(header)}"
            yield n, _row_error(n, [("", problem)])
            continue
        yield n, map_row(n, dict(zip(header, values)), values)


def _row_error(n: int, problems: list[tuple[str, str]]) -> RowError:
    return RowError(line=n, errors=[{"field": f, "problem": p} for f, p in problems])


def _build(n: int, data: dict[str, Any]) -> ReportIn | RowError:
    """Validate ``data`` as a ReportIn; a ValidationError becomes a RowError (one entry each)."""
    try:
        return ReportIn.model_validate(data)
    except ValidationError as exc:
        return _row_error(
            n,
            [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()],
        )


def _finite_float(text: str) -> float | None:
    """``float(text)`` if it is a finite number, else ``None``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- nyc311 -----------------------------------------------------------------------------------


def _parse_nyc_time(text: str, zone: ZoneInfo) -> datetime | None:
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
    ``Closed Date`` is closed with ``closed_at=None``.
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
        return _row_error(n, problems)

    status = row["Status"]
    closed = status == "Closed"
    closed_at = _parse_nyc_time(row["Closed Date"], zone) if closed else None
    complaint_type = row["Complaint Type"]
    return _build(
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
            },
        },
    )


# --- fuzhou12345 ------------------------------------------------------------------------------


def _map_fuzhou(
    n: int,
    row: dict[str, str],
    values: list[str],
    tenant: str,
    zone: ZoneInfo,
    counts: dict[bytes, int],
) -> ReportIn | RowError:
    """Map one Fuzhou 12345 work order (README "fuzhou12345…" Columns and Quirks).

    - ``source_id``: the file has no id column, so it is the first 16 hex digits of the SHA-1 of
      the row's raw values joined by ``"\x1f"`` (header order), ``-k`` where ``k`` counts earlier
      identical rows in the file (the README notes a complaint naming several rivers appears
      once per river; fully identical rows stay distinct). Re-importing a file gives the same ids.
    - ``reported_at``: ``时间`` (YYYY-MM-DD) at 00:00 in ``zone``.
    - ``history``: closed with status ``已回复`` (every record had a reply); ``closed_at`` =
      ``reported_at`` + ``最终回复-投诉事件`` days when that cell is a finite number, else ``None``;
      one empty :class:`RecordedTransfer` per ``转处理次数`` (an empty cell counts as 0; a
      negative, fractional or non-numeric count is a RowError).
    """
    digest = hashlib.sha1("\x1f".join(values).encode("utf-8")).digest()
    k = counts.get(digest, 0)
    counts[digest] = k + 1
    source_id = f"{digest.hex()[:16]}-{k}"

    problems: list[tuple[str, str]] = []
    district = row["区域"].strip()
    place_code = _FUZHOU_DISTRICT_CODE.get(district)
    if place_code is None:
        known = ", ".join(_FUZHOU_DISTRICT_CODE)
        problems.append(("区域", f"unknown district {district!r}; expected one of {known}"))
    day_text = row["时间"].strip()
    try:
        day = datetime.strptime(day_text, "%Y-%m-%d")
        reported_at: datetime | None = day.replace(tzinfo=zone)
    except ValueError:
        reported_at = None
        problems.append(("时间", f"cannot parse {day_text!r} as YYYY-MM-DD"))
    transfers_text = row["转处理次数"].strip()
    transfer_count = _finite_float(transfers_text or "0")
    if transfer_count is None or transfer_count < 0 or not transfer_count.is_integer():
        problems.append(("转处理次数", f"not a non-negative whole number: {transfers_text!r}"))
    if problems:
        return _row_error(n, problems)
    assert reported_at is not None and transfer_count is not None

    days = _finite_float(row["最终回复-投诉事件"].strip())
    closed_at = reported_at + timedelta(days=days) if days is not None else None
    description = f"{row['标题']}\n{row['投诉件内容']}"[:_DESCRIPTION_MAX]
    return _build(
        n,
        {
            "tenant": tenant,
            "source": "fuzhou12345",
            "source_id": source_id,
            "category_code": _FUZHOU_CATEGORY_CODE,
            "category_name": _FUZHOU_CATEGORY_NAME,
            "description": description,
            "channel": row["信息来源"].strip(),
            "request_type": row["性质"].strip(),
            "place_code": place_code,
            "reported_at": reported_at,
            "history": {
                "department": None,
                "status": _FUZHOU_STATUS,
                "closed": True,
                "closed_at": closed_at,
                "transfers": [{} for _ in range(int(transfer_count))],
            },
        },
    )


# --- jsonl ------------------------------------------------------------------------------------


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


def _iter_jsonl(
    stream: TextIO, tenant: str, zone: ZoneInfo
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """One JSON object per line with :class:`ReportIn` fields (gridcase's own format).

    ``tenant`` may be omitted (or null) and then is the import's tenant; another tenant is a
    RowError on field ``tenant``. Naive ``reported_at``, ``history.closed_at`` and
    ``history.transfers[].at`` strings are read in ``zone``. Blank lines are skipped; line
    numbers are physical, 1-based.
    """
    for n, line in enumerate(stream, start=1):
        if n == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, _row_error(n, [("", f"invalid JSON: {exc}")])
            continue
        if not isinstance(obj, dict):
            yield n, _row_error(n, [("", f"expected a JSON object, got {type(obj).__name__}")])
            continue
        line_tenant = obj.get("tenant")
        if line_tenant is not None and line_tenant != tenant:
            problem = f"line is for tenant {line_tenant!r}, the import is for {tenant!r}"
            yield n, _row_error(n, [("tenant", problem)])
            continue
        obj["tenant"] = tenant
        if "reported_at" in obj:
            obj["reported_at"] = _localise_iso(obj["reported_at"], zone)
        history = obj.get("history")
        if isinstance(history, dict):
            if "closed_at" in history:
                history["closed_at"] = _localise_iso(history["closed_at"], zone)
            transfers = history.get("transfers")
            if isinstance(transfers, list):
                for transfer in transfers:
                    if isinstance(transfer, dict) and "at" in transfer:
                        transfer["at"] = _localise_iso(transfer["at"], zone)
        yield n, _build(n, obj)
