"""The ``Prefer`` request header (RFC 7240): which preferences a client states, and the ``wait``
it asks for (intake's ``POST /v1/cases/{id}/actions`` waits for dispatch's decision).

RFC 7240 §2: ``Prefer: token [ = value ] *( ; parameter )``, several preferences comma separated
in one header or spread over several headers; names are case-insensitive, values may be quoted
strings; a preference stated more than once counts at its first occurrence. §4.3: ``wait =
delta-seconds`` (1*DIGIT). A server that honours a preference says so in ``Preference-Applied``.
"""

from __future__ import annotations

from collections.abc import Iterable


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside double-quoted strings (``\\`` escapes inside them)."""
    parts, current, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, escaped = value[1:-1], [], False
        for ch in inner:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def preferences(headers: Iterable[str]) -> dict[str, str | None]:
    """The preferences stated in the ``Prefer`` header values ``headers``: lower-cased name →
    value (``None`` for a preference without one, e.g. ``respond-async``); parameters after
    ``;`` are ignored; the first occurrence of a name counts."""
    found: dict[str, str | None] = {}
    for header in headers:
        for item in _split(header, ","):
            head = _split(item, ";")[0]
            name, eq, value = head.partition("=")
            name = name.strip().lower()
            if name and name not in found:
                found[name] = _unquote(value) if eq else None
    return found


def preferred_wait(headers: Iterable[str], cap: int) -> int | None:
    """The seconds a client asks to wait (``Prefer: wait=N``), at most ``cap``; ``None`` when it
    states no wait or a malformed one (not 1*DIGIT), which is then not honoured."""
    value = preferences(headers).get("wait")
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return min(int(value), cap) if len(value) <= 9 else cap
