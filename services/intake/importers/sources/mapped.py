"""The import formats described by a column mapping: the built-in mappings of
``importers/mappings/<format>.yaml`` (``sf311``, ``baltimore311``, ``boston311``,
``teddycup_messages``, ``teddycup_replies``), read with the mapping language (mapping.py). The
generic ``csv`` format takes the caller's mapping instead (formats.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from services.intake.importers.mapping import (
    Spec,
    compile_mapping,
    load_mapping,
    read_mapped,
)
from services.intake.schemas import ReportIn, RowError

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"
#: Formats with a built-in mapping, ``MAPPINGS_DIR / f"{format}.yaml"``.
MAPPED_FORMATS: tuple[str, ...] = ("sf311", "baltimore311", "boston311", "teddycup_messages", "teddycup_replies")
#: Each built-in mapping as a plain dict (what :func:`load_mapping` returns).
BUILTIN_MAPPINGS: dict[str, dict[str, Any]] = {fmt: load_mapping(MAPPINGS_DIR / f"{fmt}.yaml") for fmt in MAPPED_FORMATS}
SF311_MAPPING = BUILTIN_MAPPINGS["sf311"]
BALTIMORE311_MAPPING = BUILTIN_MAPPINGS["baltimore311"]
BOSTON311_MAPPING = BUILTIN_MAPPINGS["boston311"]
TEDDYCUP_MESSAGES_MAPPING = BUILTIN_MAPPINGS["teddycup_messages"]
TEDDYCUP_REPLIES_MAPPING = BUILTIN_MAPPINGS["teddycup_replies"]
_SPECS: dict[str, Spec] = {fmt: compile_mapping(mapping) for fmt, mapping in BUILTIN_MAPPINGS.items()}


def read(fmt: str, stream: TextIO, tenant: str, zone: ZoneInfo) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read a file of the built-in mapped format ``fmt`` (one of :data:`MAPPED_FORMATS`)."""
    return read_mapped(stream, fmt, _SPECS[fmt], tenant, zone)
