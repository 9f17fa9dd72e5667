"""The column-mapping language: a YAML file that describes a CSV source (which column is the id,
the category, the times, the outcome, the place) and the engine that maps rows with it.

Used by the ``csv`` format with a caller's mapping (:func:`load_mapping`, :func:`parse_mapping`)
and by the built-in mappings of ``importers/mappings/<format>.yaml`` (sources/mapped.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import yaml

from services.intake.importers.codes import category_code, department_code
from services.intake.importers.readers import (
    DESCRIPTION_MAX,
    TIME_CACHE_SIZE,
    build,
    read_csv,
    row_error,
)
from services.intake.schemas import ReportIn, RowError
from shared.contract.events import PLACE_CODE_PATTERN

#: ``format="mixed"`` shapes (README Teddy Cup sections: ``2020/1/6 12:09:38``,
#: ``2017-06-08 17:31:20``): year-month-day with ``/``, ``-`` or ``.``, 1-2 digit month, day,
#: hour; optional minutes, seconds and fraction.
_MIXED_TIME = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6}))?)?)?$"
)


@lru_cache(maxsize=TIME_CACHE_SIZE)
def parse_time(text: str, fmt: str, zone: ZoneInfo) -> datetime | None:
    """Parse one source time; ``None`` when ``text`` is blank or does not parse. Cached
    (bounded, :data:`TIME_CACHE_SIZE`): source times repeat, ``strptime`` is slow (issue 13).

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


_MAPPING_KEYS = frozenset({
    "source", "source_id", "category", "category_name", "description", "channel",
    "request_type", "reported_at", "closed_at", "deadline", "date_format", "status", "closed",
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
class Spec:
    """A validated mapping (:func:`compile_mapping`)."""

    source: str
    source_id: str
    category: _Text
    category_name: _Text | None
    description: _Text | None
    channel: _Text | None
    request_type: _Text | None
    reported_at: _Time
    closed_at: _Time | None
    deadline: _Time | None
    status: _Text | None
    closed: _Rule | None
    transferred: _Rule | None
    department: _Text | None
    place: _Place
    history: bool
    columns: tuple[str, ...]


def _mapping_error(reason: str) -> ValueError:
    return ValueError(f"csv mapping: {reason}")


def compile_mapping(mapping: Mapping[str, Any]) -> Spec:
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

    def given(key: str, required: bool = False) -> Any:
        """The value of ``key``; ``None`` when absent or null (an error when ``required``)."""
        if key not in mapping or mapping[key] is None:
            if required:
                raise _mapping_error(f"{key} is required")
            return None
        return mapping[key]

    def text(key: str, join: str | None, required: bool = False) -> _Text | None:
        value = given(key, required)
        if value is None:
            return None
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
        value = given(key, required)
        if value is None:
            return None
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
        value = given(key)
        if value is None:
            return None
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
        deadline=time_field("deadline", date_format),
        status=status,
        closed=rule("closed", status_column),
        transferred=rule("transferred", status_column),
        department=text("department", None),
        place=place,
    )
    outcome_keys = ("closed_at", "deadline", "status", "closed", "transferred", "department")
    history = mapping.get("history", any(spec[k] is not None for k in outcome_keys))
    if not isinstance(history, bool):
        raise _mapping_error("history must be true or false")
    if not history and any(spec[k] is not None for k in outcome_keys):
        raise _mapping_error("history: false, but outcome columns are mapped")
    return Spec(history=history, columns=tuple(dict.fromkeys(columns)), **spec)


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
        deadline: Due                   # optional, same forms: the due date the source recorded
                                        # (RecordedOutcome.deadline), kept open or closed; blank
                                        # or unparseable: no deadline (as closed_at)
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
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"csv mapping {origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"csv mapping {origin}: expected a YAML mapping at the top")
    compile_mapping(data)
    return data


def map_row(n: int, row: dict[str, str], spec: Spec, tenant: str, zone: ZoneInfo) -> ReportIn | RowError:
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
        return row_error(n, problems)

    data: dict[str, Any] = {
        "tenant": tenant,
        "source": spec.source,
        "source_id": source_id,
        "category_code": category_code(category),
        "category_name": (spec.category_name.get(row) if spec.category_name else category)[:200],
        "description": spec.description.get(row)[:DESCRIPTION_MAX] if spec.description else "",
        "channel": spec.channel.get(row) if spec.channel else "",
        "request_type": spec.request_type.get(row) if spec.request_type else "",
        "place_code": spec.place.code(row),
        "reported_at": reported_at,
    }
    if spec.history:
        closed_at = parse_time(row[spec.closed_at.column], spec.closed_at.fmt, zone) if spec.closed_at else None
        deadline = parse_time(row[spec.deadline.column], spec.deadline.fmt, zone) if spec.deadline else None
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
            "deadline": deadline,
        }
    return build(n, data)


def read_mapped(
    stream: TextIO, fmt: str, spec: Spec, tenant: str, zone: ZoneInfo
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read a CSV import described by ``spec``: the header must hold the mapping's columns
    (checked now, ``ValueError``), then each row is mapped with :func:`map_row`."""
    return read_csv(stream, fmt, spec.columns, lambda n, row, values: map_row(n, row, spec, tenant, zone))
