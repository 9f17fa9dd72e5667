"""Streaming importers: turn an import file into :class:`ReportIn` rows or :class:`RowError` rows.

Formats (:data:`FORMATS`); every rule below comes from ``/work/shared/data/README.md``, the section
named after the sample file (Columns, Quirks, Right answer for routing / statistics) and
"How the ground-truth figures were computed" (share-closed rules, date formats):

- ``nyc311``: NYC Open Data "311 Service Requests" CSV (``Agency``, ``Status == "Closed"``).
- ``fuzhou12345``: the Fuzhou 12345 black-odorous-water work orders ("every record had at
  least one reply"; ``转处理次数`` re-routings).
- ``jsonl``: gridcase's own format, one JSON object with the fields of :class:`ReportIn` per line.
- ``sf311``: DataSF "Case Data from San Francisco 311" (:data:`SF311_MAPPING`).
- ``baltimore311``: Open Baltimore "311 Customer Service Requests" (:data:`BALTIMORE311_MAPPING`).
- ``boston311``: City of Boston "311 Service Requests" 2015 (:data:`BOSTON311_MAPPING`).
- ``teddycup_messages``: 泰迪杯 2020 C题 附件2 messages, ``一级分类`` as category, no outcome
  (:data:`TEDDYCUP_MESSAGES_MAPPING`).
- ``teddycup_labelled``: 附件2 full release, labelled bodies only (:func:`_iter_teddycup_labelled`).
- ``teddycup_replies``: 附件4 messages with the official reply and its time
  (:data:`TEDDYCUP_REPLIES_MAPPING`).
- ``csv``: any CSV, described by a column mapping (:func:`load_mapping`, passed to
  :func:`iter_records` as ``mapping=``). The US city formats and two Teddy Cup formats are
  built-in mappings of this same engine.

Recorded departments become gridcase department codes with :func:`department_code` (identity for
names that already are valid codes, such as NYC's ``HPD``; ``"Solid Waste"`` -> ``Solid_Waste``);
each tenant file lists the codes with the source's own name as ``name_en``.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from services.intake.schemas import ReportIn, RowError
from shared.contract.events import PLACE_CODE_PATTERN, TENANT_PATTERN

FORMATS: tuple[str, ...] = (
    "nyc311",
    "fuzhou12345",
    "jsonl",
    "sf311",
    "baltimore311",
    "boston311",
    "teddycup_messages",
    "teddycup_labelled",
    "teddycup_replies",
    "csv",
)

#: Zone in which naive source times of each format are read (IANA names). The US cities' own
#: zones; the Teddy Cup platform is Chinese (China Standard Time); ``csv`` defaults to
#: Asia/Shanghai like ``jsonl`` (pass ``tz`` for other sources).
DEFAULT_TIMEZONE: dict[str, str] = {
    "nyc311": "America/New_York",
    "fuzhou12345": "Asia/Shanghai",
    "jsonl": "Asia/Shanghai",
    "sf311": "America/Los_Angeles",
    "baltimore311": "America/New_York",
    "boston311": "America/New_York",
    "teddycup_messages": "Asia/Shanghai",
    "teddycup_labelled": "Asia/Shanghai",
    "teddycup_replies": "Asia/Shanghai",
    "csv": "Asia/Shanghai",
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
    fmt: str,
    stream: TextIO,
    tenant: str,
    tz: str | None = None,
    *,
    mapping: Mapping[str, Any] | None = None,
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read an import file row by row and yield ``(row_number, ReportIn | RowError)``.

    Args:
        fmt: one of :data:`FORMATS`.
        stream: a text stream positioned at the start of the file. For the CSV formats open it
            with ``newline=""`` (quoted cells may contain line breaks). A UTF-8 byte-order mark
            at the start (``"\\ufeff"``, as from ``encoding="utf-8"`` on a BOM file) is ignored.
        tenant: the tenant every report is imported for (``shared.contract.events.TENANT_PATTERN``).
        tz: IANA zone in which naive source times are read; default ``DEFAULT_TIMEZONE[fmt]``.
            Times are localised with :mod:`zoneinfo` (``fold=0`` for an ambiguous wall time).
        mapping: for ``fmt="csv"`` only (required there): the column mapping, as returned by
            :func:`load_mapping` (a plain dict of the YAML mapping file; validated again here).

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
            ``fmt="csv"`` without a ``mapping`` (or with an invalid one), a ``mapping`` given
            for another format, or (CSV formats) the file is empty or its header lacks required
            columns (named in the message) or repeats a column name. These are checked when this function is
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

    if fmt == "csv":
        if mapping is None:
            raise ValueError("csv import: a column mapping is required (see load_mapping)")
        spec = _compile_mapping(mapping)
    elif mapping is not None:
        raise ValueError(f"{fmt} import: a column mapping is only taken by the csv format")
    else:
        spec = _BUILTIN_SPECS.get(fmt)
    if spec is not None:
        reader = csv.reader(stream)
        header = _read_header(reader, fmt, spec.columns)
        return _iter_csv(reader, header, lambda n, row, values: _map_spec(n, row, spec, tenant, zone))
    if fmt == "teddycup_labelled":
        reader = csv.reader(stream)
        header = _read_header(reader, fmt, _TEDDY_LABELLED_REQUIRED)
        return _iter_csv(reader, header, lambda n, row, values: _map_teddycup_labelled(n, row, tenant))
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


#: Most recorded transfers one imported row may carry: each becomes an object in the report and an
#: event in dispatch, so a cell like ``1e8`` must not be taken at its word.
MAX_RECORDED_TRANSFERS = 1000


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
    elif transfer_count > MAX_RECORDED_TRANSFERS:
        problems.append(("转处理次数", f"more than {MAX_RECORDED_TRANSFERS} transfers: {transfers_text!r}"))
    if problems:
        return _row_error(n, problems)
    assert reported_at is not None and transfer_count is not None

    days = _finite_float(row["最终回复-投诉事件"].strip())
    try:
        closed_at = reported_at + timedelta(days=days) if days is not None else None
    except OverflowError:  # e.g. 1e300 or -1e6 days: no date
        return _row_error(n, [("最终回复-投诉事件", f"not a plausible number of days: {row['最终回复-投诉事件'].strip()!r}")])
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
        except RecursionError:
            yield n, _row_error(n, [("", "invalid JSON: nested too deeply")])
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


# --- department codes -------------------------------------------------------------------------

#: A tenant-local department code (shared/domain/tenants.py ``_LOCAL_DEPT_RE``), kept at most 64 long.
_DEPARTMENT_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_CODE_MAX = 64


def _digest(text: str, n: int) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def department_code(name: str) -> str:
    """The gridcase department code of a source's department or queue name.

    Tenant files and routing rules name departments by code (``^[A-Za-z][A-Za-z0-9_.-]*$``,
    shared/domain/tenants.py), while sources write names (Baltimore ``"Solid Waste"``, SF
    ``"311 HA SR Queue"``). Rules, in order:

    - ``name`` stripped; a name that already is a valid code of at most 64 characters is kept
      (NYC ``HPD``, SF ``Recology_Abandoned``), so NYC history is unchanged;
    - else every run of characters other than ASCII letters and digits becomes ``_``, leading
      and trailing ``_`` are dropped (``"PG and E - Streetlights Queue"`` ->
      ``PG_and_E_Streetlights_Queue``); a result that does not start with a letter gets a ``D``
      in front (``"311 HA SR Queue"`` -> ``D311_HA_SR_Queue``);
    - a name with non-ASCII characters, or whose code would exceed 64 characters, gets ``_`` and
      the first 8 hex digits of the SHA-1 of the stripped name appended (truncating the slug to
      fit), so distinct names stay distinct (``"市城管局"`` -> ``D_<8 hex>``).

    The mapping is deterministic and never changes a valid code; distinct ASCII names that differ
    only in punctuation (``"A-B"``, ``"A B"``) map to one code. Tenant files list each code with
    the source's name as ``name_en`` (scripts/make_routing_rules.py writes them).

    Raises:
        ValueError: ``name`` is empty or blank.
    """
    name = name.strip()
    if not name:
        raise ValueError("department name is empty")
    if _DEPARTMENT_CODE_RE.match(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    if not slug[:1].isalpha():
        slug = "D" + slug
    if not name.isascii() or len(slug) > _CODE_MAX:
        suffix = "_" + _digest(name, 8)
        slug = slug[: _CODE_MAX - len(suffix)].rstrip("_") + suffix
    return slug


def category_code(text: str) -> str:
    """A source category as a ``ReportIn.category_code`` (1-64 characters).

    The stripped text itself when it fits; a longer one is cut to 55 characters and given ``~``
    and the first 8 hex digits of the SHA-1 of the full stripped text (SF and Baltimore have
    request types of 65-67 characters), so distinct types stay distinct. The full text stays in
    ``category_name``.
    """
    text = text.strip()
    if len(text) <= _CODE_MAX:
        return text
    return f"{text[:55]}~{_digest(text, 8)}"


# --- times -----------------------------------------------------------------------------------

#: ``format="mixed"`` shapes (README Teddy Cup sections: ``2020/1/6 12:09:38``,
#: ``2017-06-08 17:31:20``): year-month-day with ``/``, ``-`` or ``.``, 1-2 digit month, day,
#: hour; optional minutes, seconds and fraction.
_MIXED_TIME = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6}))?)?)?$"
)
#: SF, Baltimore and Boston: README "How the ground-truth figures were computed", date formats.
US_311_DATE_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def parse_time(text: str, fmt: str, zone: ZoneInfo) -> datetime | None:
    """Parse one source time; ``None`` when ``text`` is blank or does not parse.

    ``fmt`` is a :func:`datetime.strptime` format, ``"iso"`` (:meth:`datetime.fromisoformat`)
    or ``"mixed"`` (the shapes of pandas ``format="mixed"`` that the Teddy Cup files use: see
    :data:`_MIXED_TIME`; an ISO 8601 string with an offset is accepted too). A naive result is
    read in ``zone`` (``fold=0``); a time that carries its own offset keeps it.
    """
    text = text.strip()
    if not text:
        return None
    parsed: datetime | None = None
    try:
        if fmt == "mixed":
            m = _MIXED_TIME.match(text)
            if m:
                y, mo, d, h, mi, sec, frac = m.groups()
                parsed = datetime(
                    int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
                    int((frac or "0").ljust(6, "0")),
                )
            else:
                parsed = datetime.fromisoformat(text)
        elif fmt == "iso":
            parsed = datetime.fromisoformat(text)
        else:
            parsed = datetime.strptime(text, fmt)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed


# --- column mappings (the csv engine) ---------------------------------------------------------

_MAPPING_KEYS = frozenset({
    "source", "source_id", "category", "category_name", "description", "channel",
    "request_type", "reported_at", "closed_at", "date_format", "status", "closed",
    "transferred", "department", "place", "history", "note",
})
_SOURCE_MAX = 32
_PLACE_RE = re.compile(PLACE_CODE_PATTERN)


@dataclass(frozen=True)
class _Text:
    """A text field: the first non-empty of ``columns`` (``join`` None) or the non-empty ones
    joined by ``join``; or the constant ``value``."""

    columns: tuple[str, ...] = ()
    value: str | None = None
    join: str | None = None

    def get(self, row: dict[str, str]) -> str:
        if self.value is not None:
            return self.value
        parts = [row[c] for c in self.columns]
        if self.join is None:
            return next((p.strip() for p in parts if p.strip()), "")
        return self.join.join(p for p in parts if p.strip())


@dataclass(frozen=True)
class _Time:
    column: str
    fmt: str


@dataclass(frozen=True)
class _Rule:
    """A status rule: ``kind`` is ``always``, ``never``, ``equals``, ``startswith`` or ``in``."""

    kind: str
    column: str | None = None
    values: tuple[str, ...] = ()

    def holds(self, row: dict[str, str]) -> bool:
        if self.kind in ("always", "never"):
            return self.kind == "always"
        cell = row[self.column].strip()
        if self.kind == "startswith":
            return cell.startswith(self.values[0])
        return cell in self.values


@dataclass(frozen=True)
class _Place:
    column: str | None
    table: Mapping[str, str] | None
    prefix: str
    width: int
    default: str

    def code(self, row: dict[str, str]) -> str:
        if self.column is None:
            return self.default
        value = row[self.column].strip()
        if not value:
            return self.default
        if self.table is not None:
            return self.table.get(value, self.default)
        code = self.prefix + (value.zfill(self.width) if value.isdigit() else value)
        return code if _PLACE_RE.match(code) else self.default


@dataclass(frozen=True)
class _Spec:
    """A validated mapping (:func:`_compile_mapping`)."""

    source: str
    source_id: str
    category: _Text
    category_name: _Text | None
    description: _Text | None
    channel: _Text | None
    request_type: _Text | None
    reported_at: _Time
    closed_at: _Time | None
    status: _Text | None
    closed: _Rule | None
    transferred: _Rule | None
    department: _Text | None
    place: _Place
    history: bool
    columns: tuple[str, ...]


def _mapping_error(reason: str) -> ValueError:
    return ValueError(f"csv mapping: {reason}")


def _compile_mapping(mapping: Mapping[str, Any]) -> _Spec:
    """Validate a mapping (the format of :func:`load_mapping`) and compile it.

    Raises:
        ValueError: ``csv mapping: <reason>`` naming the key that is wrong.
    """
    if not isinstance(mapping, Mapping):
        raise _mapping_error(f"expected a mapping of keys, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - _MAPPING_KEYS)
    if unknown:
        raise _mapping_error(f"unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(_MAPPING_KEYS))}")
    columns: list[str] = []

    def column(value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _mapping_error(f"{key}: expected a column name, got {value!r}")
        columns.append(value.strip())
        return value.strip()

    def text(key: str, join: str | None, required: bool = False) -> _Text | None:
        if key not in mapping or mapping[key] is None:
            if required:
                raise _mapping_error(f"{key} is required")
            return None
        value = mapping[key]
        if isinstance(value, Mapping):
            if set(value) != {"value"} or not isinstance(value["value"], str):
                raise _mapping_error(f"{key}: a constant is written {{value: \"text\"}}")
            return _Text(value=value["value"])
        if isinstance(value, list):
            if not value:
                raise _mapping_error(f"{key}: empty column list")
            return _Text(columns=tuple(column(v, key) for v in value), join=join)
        return _Text(columns=(column(value, key),), join=join)

    def time_field(key: str, default_fmt: str, required: bool = False) -> _Time | None:
        if key not in mapping or mapping[key] is None:
            if required:
                raise _mapping_error(f"{key} is required")
            return None
        value = mapping[key]
        if isinstance(value, Mapping):
            extra = set(value) - {"column", "format"}
            if extra or "column" not in value:
                raise _mapping_error(f"{key}: expected {{column: NAME, format: FORMAT}}")
            fmt = value.get("format", default_fmt)
            if not isinstance(fmt, str) or not fmt:
                raise _mapping_error(f"{key}: format must be a strptime format, 'iso' or 'mixed'")
            return _Time(column(value["column"], key), fmt)
        return _Time(column(value, key), default_fmt)

    def rule(key: str, status_column: str | None) -> _Rule | None:
        if key not in mapping or mapping[key] is None:
            return None
        value = mapping[key]
        if value in ("always", "never"):
            return _Rule(value)
        if not isinstance(value, Mapping):
            raise _mapping_error(f"{key}: expected always, never or {{equals|startswith|in: ...}}")
        kinds = [k for k in ("equals", "startswith", "in") if k in value]
        extra = set(value) - {"column", "equals", "startswith", "in"}
        if len(kinds) != 1 or extra:
            raise _mapping_error(f"{key}: give exactly one of equals, startswith, in (and optionally column)")
        kind = kinds[0]
        raw = value[kind]
        values = tuple(raw) if kind == "in" and isinstance(raw, list) else (raw,)
        if not values or not all(isinstance(v, str) for v in values):
            raise _mapping_error(f"{key}: {kind} takes {'a list of strings' if kind == 'in' else 'a string'}")
        col = value.get("column", status_column)
        if col is None:
            raise _mapping_error(f"{key}: name a column (there is no status column to default to)")
        return _Rule("in" if kind == "in" else kind, column(col, key), values)

    source = mapping.get("source", "csv")
    if not isinstance(source, str) or not 1 <= len(source) <= _SOURCE_MAX:
        raise _mapping_error(f"source must be a name of 1-{_SOURCE_MAX} characters")
    date_format = mapping.get("date_format", "iso")
    if not isinstance(date_format, str) or not date_format:
        raise _mapping_error("date_format must be a strptime format, 'iso' or 'mixed'")
    if "source_id" not in mapping:
        raise _mapping_error("source_id is required (the column holding each row's id)")
    source_id = column(mapping["source_id"], "source_id")
    status = text("status", None)
    status_column = status.columns[0] if status is not None and status.columns else None

    place_value = mapping.get("place")
    if place_value is None:
        place = _Place(None, None, "", 0, "0")
    else:
        if isinstance(place_value, str):
            place_value = {"column": place_value}
        if not isinstance(place_value, Mapping) or set(place_value) - {"column", "map", "prefix", "width", "default"}:
            raise _mapping_error("place: expected a column name or {column, map, prefix, width, default}")
        table = place_value.get("map")
        if table is not None and (not isinstance(table, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and _PLACE_RE.match(v) for k, v in table.items())):
            raise _mapping_error("place.map: quoted source values to place codes (quote numbers)")
        prefix = place_value.get("prefix", "")
        width = place_value.get("width", 0)
        default = place_value.get("default", "0")
        if not isinstance(prefix, str) or not isinstance(width, int) or width < 0:
            raise _mapping_error("place: prefix is a string, width a whole number >= 0")
        if not isinstance(default, str) or not _PLACE_RE.match(default):
            raise _mapping_error(f"place.default must be a quoted place code matching {PLACE_CODE_PATTERN}")
        col = place_value.get("column")
        place = _Place(column(col, "place") if col is not None else None,
                       dict(table) if table is not None else None, prefix, width, default)

    spec = dict(
        source=source,
        source_id=source_id,
        category=text("category", None, required=True),
        category_name=text("category_name", " / "),
        description=text("description", "\n"),
        channel=text("channel", None),
        request_type=text("request_type", None),
        reported_at=time_field("reported_at", date_format, required=True),
        closed_at=time_field("closed_at", date_format),
        status=status,
        closed=rule("closed", status_column),
        transferred=rule("transferred", status_column),
        department=text("department", None),
        place=place,
    )
    outcome_keys = ("closed_at", "status", "closed", "transferred", "department")
    history = mapping.get("history", any(spec[k] is not None for k in outcome_keys))
    if not isinstance(history, bool):
        raise _mapping_error("history must be true or false")
    if not history and any(spec[k] is not None for k in outcome_keys):
        raise _mapping_error("history: false, but outcome columns are mapped")
    return _Spec(history=history, columns=tuple(dict.fromkeys(columns)), **spec)


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``csv`` column mapping file (YAML); return it as a plain dict for
    ``iter_records("csv", stream, tenant, mapping=...)``.

    The file (every column name is the CSV header's, after stripping spaces and a BOM)::

        source: mycity311               # ReportIn.source, 1-32 chars (default "csv"); case ids
                                        # derive from (tenant, source, source_id)
        source_id: CaseID               # required: the row id column (empty id -> RowError)
        category: [Request.Type, Category]  # required: column, or columns (first non-empty)
        category_name: [Category, Request.Type]  # optional: columns joined by " / "
        description: [Request.Details]  # optional: columns joined by a newline (max 4000 chars)
        channel: Source                 # optional; request_type likewise
        date_format: "%m/%d/%Y %I:%M:%S %p"   # strptime format, "iso" (default) or "mixed"
        reported_at: Opened             # required; or {column: Opened, format: "..."}
        closed_at: Closed               # optional; same forms
        status: Status                  # optional: recorded status, kept verbatim
        closed: {equals: Closed}        # optional: {equals|startswith: TEXT} or {in: [..]}, on
                                        # the status column unless {column: ...} names another;
                                        # or always / never. Absent: closed iff closed_at parses.
        transferred: {equals: "Closed (Transferred)"}  # optional, same forms: one recorded
                                        # transfer with unknown destination and time
        department: Agency              # optional: recorded department, via department_code()
        place: {column: District, map: {"1": "C01"}, prefix: "C", width: 2, default: "C"}
                                        # optional (default: every row "0"): a value in ``map``
                                        # -> its code, other values -> ``default`` when ``map``
                                        # is given, else prefix + value (digits zero-padded to
                                        # width); empty or invalid -> ``default``
        history: true                   # default: true iff an outcome key above is mapped;
                                        # false imports plain reports, which dispatch treats
                                        # as live cases (受理 first unless auto-filed)

    Any text key may be a constant instead of a column: ``status: {value: "已答复"}``.

    Raises:
        OSError: the file cannot be read.
        ValueError: not YAML, not a mapping, or an invalid mapping (``csv mapping: <reason>``).
    """
    return parse_mapping(Path(path).read_text(encoding="utf-8"), str(path))


def parse_mapping(text: str, origin: str = "mapping") -> dict[str, Any]:
    """Parse and validate a ``csv`` column mapping given as YAML text (see :func:`load_mapping`).

    Raises:
        ValueError: not YAML, not a mapping, or an invalid mapping (``csv mapping: <reason>``).
    """
    import yaml  # noqa: PLC0415 - only the csv format needs it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"csv mapping {origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"csv mapping {origin}: expected a YAML mapping at the top")
    _compile_mapping(data)
    return data


def _map_spec(n: int, row: dict[str, str], spec: _Spec, tenant: str, zone: ZoneInfo) -> ReportIn | RowError:
    """Map one row with a compiled mapping (see :func:`load_mapping` for the rules)."""
    problems: list[tuple[str, str]] = []
    source_id = row[spec.source_id].strip()
    if not source_id:
        problems.append((spec.source_id, "missing row id"))
    category = spec.category.get(row)
    if not category:
        problems.append((",".join(spec.category.columns) or "category", "missing category"))
    when = row[spec.reported_at.column]
    reported_at = parse_time(when, spec.reported_at.fmt, zone)
    if reported_at is None:
        problem = "missing date" if not when.strip() else f"cannot parse {when.strip()!r} as {spec.reported_at.fmt}"
        problems.append((spec.reported_at.column, problem))
    if problems:
        return _row_error(n, problems)

    data: dict[str, Any] = {
        "tenant": tenant,
        "source": spec.source,
        "source_id": source_id,
        "category_code": category_code(category),
        "category_name": (spec.category_name.get(row) if spec.category_name else category)[:200],
        "description": spec.description.get(row)[:_DESCRIPTION_MAX] if spec.description else "",
        "channel": spec.channel.get(row) if spec.channel else "",
        "request_type": spec.request_type.get(row) if spec.request_type else "",
        "place_code": spec.place.code(row),
        "reported_at": reported_at,
    }
    if spec.history:
        closed_at = parse_time(row[spec.closed_at.column], spec.closed_at.fmt, zone) if spec.closed_at else None
        closed = spec.closed.holds(row) if spec.closed is not None else closed_at is not None
        status = spec.status.get(row) if spec.status else ""
        department = spec.department.get(row) if spec.department else ""
        transferred = spec.transferred is not None and spec.transferred.holds(row)
        data["history"] = {
            "department": department_code(department) if department else None,
            "status": status or None,
            "closed": closed,
            "closed_at": closed_at if closed else None,
            "transfers": [{}] if transferred else [],
        }
    return _build(n, data)


# --- built-in mappings ------------------------------------------------------------------------

#: San Francisco 311 (README "sf311_2008-2016_sample.csv"): id ``CaseID``; category
#: ``Request.Type`` (the routing key of the README's 83.44 % ceiling; ``Category`` when empty);
#: department = the queue ``Responsible.Agency``; closed iff ``Status == "Closed"``; place =
#: ``Supervisor.District`` 0-11 as ``SF00``-``SF11`` (others and empty: ``SF``, the city).
SF311_MAPPING: dict[str, Any] = {
    "source": "sf311",
    "source_id": "CaseID",
    "category": ["Request.Type", "Category"],
    "category_name": ["Category", "Request.Type"],
    "description": ["Request.Details"],
    "channel": "Source",
    "date_format": US_311_DATE_FORMAT,
    "reported_at": "Opened",
    "closed_at": "Closed",
    "status": "Status",
    "closed": {"equals": "Closed"},
    "department": "Responsible.Agency",
    "place": {"column": "Supervisor.District", "map": {str(d): f"SF{d:02d}" for d in range(12)},
              "default": "SF"},
}

#: Baltimore 311 (README "baltimore311_2014-2019_sample.csv"): id ``ServiceRequestNum``;
#: category ``SRType``; department ``Agency``; closed iff ``SRStatus`` starts with ``Closed``
#: (README "Share closed"); ``Closed (Transferred)`` records one transfer (destination and time
#: unknown: the source does not say); ``(Duplicate)`` statuses stay in the verbatim status only;
#: place = ``CouncilDistrict`` 1-14 as ``BAL01``-``BAL14`` (empty and others: ``BAL``).
BALTIMORE311_MAPPING: dict[str, Any] = {
    "source": "baltimore311",
    "source_id": "ServiceRequestNum",
    "category": "SRType",
    "description": ["Outcome"],
    "channel": "MethodReceived",
    "date_format": US_311_DATE_FORMAT,
    "reported_at": "CreatedDate",
    "closed_at": "CloseDate",
    "status": "SRStatus",
    "closed": {"startswith": "Closed"},
    "transferred": {"equals": "Closed (Transferred)"},
    "department": "Agency",
    "place": {"column": "CouncilDistrict", "map": {str(d): f"BAL{d:02d}" for d in range(1, 15)},
              "default": "BAL"},
}

#: The ``neighborhood`` values of the Boston sample, in code order ``BOS01``…``BOS22``.
BOSTON_NEIGHBORHOODS: tuple[str, ...] = (
    "Allston", "Allston / Brighton", "Back Bay", "Beacon Hill", "Boston", "Brighton",
    "Charlestown", "Dorchester", "Downtown / Financial District", "East Boston",
    "Fenway / Kenmore / Audubon Circle / Longwood", "Greater Mattapan", "Hyde Park",
    "Jamaica Plain", "Mattapan", "Mission Hill", "Roslindale", "Roxbury", "South Boston",
    "South Boston / South Boston Waterfront", "South End", "West Roxbury",
)

#: Boston 311 (README "boston311_2015_sample.csv"): id ``CASE_ENQUIRY_ID``; category ``TYPE``;
#: department = ``SUBJECT`` (the README's department name, deterministic given ``TYPE``; the
#: team ``QUEUE`` is not used); closed iff ``CASE_STATUS == "Closed"``; place = ``neighborhood``
#: as ``BOS01``-``BOS22`` (:data:`BOSTON_NEIGHBORHOODS`; empty and others: ``BOS``).
BOSTON311_MAPPING: dict[str, Any] = {
    "source": "boston311",
    "source_id": "CASE_ENQUIRY_ID",
    "category": "TYPE",
    "category_name": ["REASON", "TYPE"],
    "description": ["CASE_TITLE"],
    "channel": "Source",
    "date_format": US_311_DATE_FORMAT,
    "reported_at": "OPEN_DT",
    "closed_at": "CLOSED_DT",
    "status": "CASE_STATUS",
    "closed": {"equals": "Closed"},
    "department": "SUBJECT",
    "place": {"column": "neighborhood",
              "map": {name: f"BOS{i:02d}" for i, name in enumerate(BOSTON_NEIGHBORHOODS, start=1)},
              "default": "BOS"},
}

#: Place code of every Teddy Cup record: the files carry no place column (places appear only as
#: pseudonyms inside the text), so all go to the tenant's one place ``"0"`` (unspecified).
TEDDYCUP_PLACE = "0"

#: 泰迪杯 附件2 messages (README "teddycup2020c_fj2_messages_sample.csv"): id ``留言编号``;
#: category = ``一级分类``; description = ``留言主题`` + newline + ``留言详情``; reported at
#: ``留言时间`` (``format="mixed"``). No status or close time: plain reports, which dispatch
#: treats as live cases (they wait for 受理 like any citizen report, services/dispatch/casebook.py,
#: and are routed by the tenant's rules when filed).
TEDDYCUP_MESSAGES_MAPPING: dict[str, Any] = {
    "source": "teddycup",
    "source_id": "留言编号",
    "category": "一级分类",
    "description": ["留言主题", "留言详情"],
    "reported_at": {"column": "留言时间", "format": "mixed"},
    "place": {"default": TEDDYCUP_PLACE},
    "history": False,
}

#: Status of every 附件4 record: "Every row has a reply (this is the answered set)".
TEDDYCUP_REPLIED_STATUS = "已答复"
#: 附件4 has no category column: every record gets this category (not in the taxonomy, so
#: dispatch sends it to triage unless a tenant rule names it).
TEDDYCUP_UNCLASSIFIED = "未分类"

#: 泰迪杯 附件4 replies (README "teddycup2020c_fj4_replies_sample.csv"): id ``留言编号``; reported
#: at ``留言时间``, closed at ``答复时间`` (both ``format="mixed"``), status ``已答复``; no
#: department (the replying unit is only named inside ``答复意见`` free text), so dispatch routes.
TEDDYCUP_REPLIES_MAPPING: dict[str, Any] = {
    "source": "teddycup",
    "source_id": "留言编号",
    "category": {"value": TEDDYCUP_UNCLASSIFIED},
    "category_name": {"value": f"{TEDDYCUP_UNCLASSIFIED} unclassified (附件4 has no category column)"},
    "description": ["留言主题", "留言详情"],
    "reported_at": {"column": "留言时间", "format": "mixed"},
    "closed_at": {"column": "答复时间", "format": "mixed"},
    "status": {"value": TEDDYCUP_REPLIED_STATUS},
    "closed": "always",
    "place": {"default": TEDDYCUP_PLACE},
}

_BUILTIN_SPECS: dict[str, _Spec] = {
    "sf311": _compile_mapping(SF311_MAPPING),
    "baltimore311": _compile_mapping(BALTIMORE311_MAPPING),
    "boston311": _compile_mapping(BOSTON311_MAPPING),
    "teddycup_messages": _compile_mapping(TEDDYCUP_MESSAGES_MAPPING),
    "teddycup_replies": _compile_mapping(TEDDYCUP_REPLIES_MAPPING),
}

# --- teddycup_labelled ------------------------------------------------------------------------

_TEDDY_LABELLED_REQUIRED = ("留言详情", "一级标签")
#: 附件2 full release: "the files have no time, title or user". Every record is reported at this
#: fixed, documented moment (the release year of the competition data), so that the rows can be
#: imported at all; time figures of this tenant mean nothing.
TEDDYCUP_LABELLED_REPORTED_AT = datetime(2020, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))


def _map_teddycup_labelled(n: int, row: dict[str, str], tenant: str) -> ReportIn | RowError:
    """Map one 附件2-full row (README "teddycup2020c_fj2full_labelled_details_sample.csv").

    - ``source_id``: ``fj2full-`` + the first 20 hex digits of the SHA-1 of ``留言详情`` (the
      file has no id; the source dropped exact-duplicate texts, so the text identifies the
      message, and a repeated text is the same message: it lands on the same case). Memory
      stays constant (no per-row state).
    - ``category``: ``一级标签``; ``reported_at``: :data:`TEDDYCUP_LABELLED_REPORTED_AT`;
      place :data:`TEDDYCUP_PLACE`; no history (plain reports: live cases awaiting 受理).
    """
    text = row["留言详情"]
    label = row["一级标签"].strip()
    problems: list[tuple[str, str]] = []
    if not text.strip():
        problems.append(("留言详情", "empty message text"))
    if not label:
        problems.append(("一级标签", "missing label"))
    if problems:
        return _row_error(n, problems)
    return _build(
        n,
        {
            "tenant": tenant,
            "source": "teddycup",
            "source_id": f"fj2full-{_digest(text, 20)}",
            "category_code": category_code(label),
            "category_name": label,
            "description": text[:_DESCRIPTION_MAX],
            "place_code": TEDDYCUP_PLACE,
            "reported_at": TEDDYCUP_LABELLED_REPORTED_AT,
        },
    )
