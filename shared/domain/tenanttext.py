"""A tenant's settings for free text (issue 15; docs/classifier.md §3–§5): the ``text:`` block of
``deploy/tenants/<tenant>.yaml``, all keys optional::

    text:
      threshold: 0.5             # a prediction below it goes to triage with three suggestions
      duplicate_window_days: 30  # how far back a possible duplicate may have been reported
      hotspot_days: 30           # the default period of GET /v1/hotspots

The model file itself is a setting of the running intake (``INTAKE_CLASSIFIER_MODELS``), not of the
tenant file: a model is trained per deployment and replaced without editing configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.domain.taxonomy import ConfigFileError, MarkedDict, check_keys
from shared.domain.textclass import DEFAULT_THRESHOLD

#: Default window of possible duplicates (days): a month, the period most 12345 platforms merge
#: repeated calls within (docs/classifier.md §4; no retrieved rule fixes it, hence a setting).
DEFAULT_DUPLICATE_WINDOW_DAYS = 30.0
DEFAULT_HOTSPOT_DAYS = 30.0


@dataclass(frozen=True)
class TextSettings:
    threshold: float = DEFAULT_THRESHOLD
    duplicate_window_days: float = DEFAULT_DUPLICATE_WINDOW_DAYS
    hotspot_days: float = DEFAULT_HOTSPOT_DAYS


def parse_text_settings(top: MarkedDict, path: Path, error_cls: type[ConfigFileError]) -> TextSettings:
    """The file's ``text`` block, or the defaults."""
    if "text" not in top:
        return TextSettings()
    line = top.line_of("text")
    raw = check_keys(top["text"], path=path, line=line, what="text",
                     required=(), optional=("threshold", "duplicate_window_days", "hotspot_days"),
                     error_cls=error_cls)
    values = {}
    for key, low, high in (("threshold", 0.0, 1.0), ("duplicate_window_days", 0.0, 3660.0),
                           ("hotspot_days", 0.0, 3660.0)):
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
            raise error_cls(path, raw.line_of(key), f"text.{key} must be a number in {low:g}..{high:g}, got {value!r}")
        values[key] = float(value)
    return TextSettings(**values)
