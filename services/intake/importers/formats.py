"""The import formats and the one entry point, :func:`iter_records`: turn an import file into
:class:`ReportIn` rows or :class:`RowError` rows.

Formats (:data:`FORMATS`); every rule of the sources comes from ``/work/shared/data/README.md``,
the section named after the sample file (Columns, Quirks, Right answer for routing / statistics)
and "How the ground-truth figures were computed" (share-closed rules, date formats):

- ``nyc311``: NYC Open Data "311 Service Requests" CSV (``Agency``, ``Status == "Closed"``;
  sources/nyc311.py).
- ``fuzhou12345``: the Fuzhou 12345 black-odorous-water work orders ("every record had at
  least one reply"; ``转处理次数`` re-routings; sources/fuzhou12345.py).
- ``jsonl``: gridcase's own format, one JSON object with the fields of :class:`ReportIn` per line
  (sources/jsonl.py).
- ``sf311``: DataSF "Case Data from San Francisco 311" (mappings/sf311.yaml).
- ``baltimore311``: Open Baltimore "311 Customer Service Requests" (mappings/baltimore311.yaml).
- ``boston311``: City of Boston "311 Service Requests" 2015 (mappings/boston311.yaml).
- ``teddycup_messages``: 泰迪杯 2020 C题 附件2 messages, ``一级分类`` as category, no outcome
  (mappings/teddycup_messages.yaml).
- ``teddycup_labelled``: 附件2 full release, labelled bodies only (sources/teddycup.py).
- ``teddycup_replies``: 附件4 messages with the official reply and its time
  (mappings/teddycup_replies.yaml).
- ``csv``: any CSV, described by a column mapping (mapping.py ``load_mapping``, passed to
  :func:`iter_records` as ``mapping=``). The US city formats and two Teddy Cup formats are
  built-in mappings of this same engine (sources/mapped.py).

Recorded departments become gridcase department codes with codes.py ``department_code``
(identity for names that already are valid codes, such as NYC's ``HPD``; ``"Solid Waste"`` ->
``Solid_Waste``); each tenant file lists the codes with the source's own name as ``name_en``.

:func:`iter_records` reads the text stream row by row (``csv`` reader or line iteration) and never
holds the whole file. The one exception is the ``fuzhou12345`` duplicate counter, which keeps one
20-byte digest and a count per distinct row (see :func:`iter_records`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.intake.importers.mapping import compile_mapping, read_mapped
from services.intake.importers.sources import (
    fuzhou12345,
    jsonl,
    mapped,
    nyc311,
    teddycup,
)
from services.intake.schemas import ReportIn, RowError
from shared.contract.events import TENANT_PATTERN

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


Reader = Callable[[TextIO, str, ZoneInfo], Iterator[tuple[int, ReportIn | RowError]]]


def _mapped_reader(fmt: str) -> Reader:
    return lambda stream, tenant, zone: mapped.read(fmt, stream, tenant, zone)


#: The reader of each format but ``csv`` (which needs the caller's mapping): ``(stream, tenant,
#: zone)`` → rows. A CSV reader checks the header when called, before the first row is read.
READERS: dict[str, Reader] = {
    "nyc311": nyc311.read,
    "fuzhou12345": fuzhou12345.read,
    "jsonl": jsonl.read,
    "teddycup_labelled": teddycup.read_labelled,
    **{fmt: _mapped_reader(fmt) for fmt in mapped.MAPPED_FORMATS},
}


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
            mapping.py ``load_mapping`` (a plain dict of the YAML mapping file; validated again here).

    Yields:
        ``(n, ReportIn)`` for an accepted row, or ``(n, RowError(line=n, errors=[...]))`` for a
        rejected one, where each error is ``{"field": ..., "problem": ...}``: ``field`` is the
        source column (e.g. ``"Created Date"``, ``"区域"``) for a mapping problem, or the dotted
        :class:`ReportIn` location (e.g. ``"history.closed_at"``) for a validation problem
        (one entry per pydantic error, ``problem`` = its ``msg``). ``n`` is the 1-based
        line of the file on which the row starts, as an editor shows it: for the CSV formats the
        header is line 1, so the first data row is line 2 (fully blank lines skipped but counted;
        a row with line breaks in quoted cells starts on its first line); for ``jsonl`` the
        physical line (blank lines skipped but counted).
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
        return read_mapped(stream, fmt, compile_mapping(mapping), tenant, zone)
    if mapping is not None:
        raise ValueError(f"{fmt} import: a column mapping is only taken by the csv format")
    return READERS[fmt](stream, tenant, zone)
