"""What every import format shares: the CSV header check, the CSV row loop (one row at a time,
constant memory) and turning a row's fields into a :class:`ReportIn` or a :class:`RowError`."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from services.intake.schemas import ReportIn, RowError

#: Distinct source times a parser remembers (functools.lru_cache: bounded, so an import's memory
#: stays constant in its size; about 1 MiB when full).
TIME_CACHE_SIZE = 4096

BOM = "\ufeff"
DESCRIPTION_MAX = 4000  # ReportIn.description max_length


def read_header(reader: Iterator[list[str]], fmt: str, required: Iterable[str]) -> list[str]:
    """Read the header row, strip a BOM and surrounding spaces, check required columns."""
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{fmt} import: the file is empty (no header row)") from None
    header = [name.strip() for name in header]
    if header and header[0].startswith(BOM):
        header[0] = header[0].lstrip(BOM).strip()
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ValueError(f"{fmt} import: header repeats column(s) {', '.join(duplicated)}")
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(
            f"{fmt} import: header lacks required column(s) {', '.join(missing)}"
        )
    return header


def iter_csv(
    reader,
    header: list[str],
    map_row: Callable[[int, dict[str, str], list[str]], ReportIn | RowError],
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Yield ``(line, map_row(line, row_as_dict, raw_values))`` per non-blank data row, where
    ``line`` is the 1-based line of the file on which the row starts (the header is line 1), as a
    text editor shows it: fully blank lines are skipped but counted, and a row whose quoted cells
    hold line breaks counts all of its lines. ``reader`` is a :func:`csv.reader` (its
    ``line_num`` counts the lines read so far).

    A row whose field count differs from the header's, or that the csv module cannot read,
    becomes a RowError with field ``""``.
    """
    while True:
        line = reader.line_num + 1  # the first line of the next record
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over csv.field_size_limit(); reader goes on
            yield line, row_error(line, [("", f"unreadable CSV row: {exc}")])
            continue
        if not values:  # a fully blank line; csv.DictReader skips these too
            continue
        if len(values) != len(header):
            problem = f"row has {len(values)} fields, the header has {len(header)}"
            yield line, row_error(line, [("", problem)])
            continue
        yield line, map_row(line, dict(zip(header, values, strict=True)), values)


def read_csv(
    stream,
    fmt: str,
    required: Iterable[str],
    map_row: Callable[[int, dict[str, str], list[str]], ReportIn | RowError],
) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read a CSV import: check the header now (raising ``ValueError`` before any row is read,
    :func:`read_header`), then yield the rows mapped by ``map_row`` (:func:`iter_csv`)."""
    reader = csv.reader(stream)
    header = read_header(reader, fmt, required)
    return iter_csv(reader, header, map_row)


def row_error(n: int, problems: list[tuple[str, str]]) -> RowError:
    """The RowError of the row on file line ``n`` with ``(field, problem)`` pairs."""
    return RowError(line=n, errors=[{"field": f, "problem": p} for f, p in problems])


def build(n: int, data: dict[str, Any]) -> ReportIn | RowError:
    """Validate ``data`` as a ReportIn; a ValidationError becomes a RowError (one entry each)."""
    try:
        return ReportIn.model_validate(data)
    except ValidationError as exc:
        return row_error(
            n,
            [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()],
        )


def finite_float(text: str) -> float | None:
    """``float(text)`` if it is a finite number, else ``None``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
