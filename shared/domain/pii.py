"""Masking of personal data in free text before it leaves intake (events, logs, statistics).

Patterns (mainland-China formats): mobile numbers (11 digits starting 1[3-9], with or without
+86/0086, also written with spaces, dots, slashes or dashes between the digits), landlines
(0 + 2–3 digit area code + 7–8 digits), 18-character resident ID numbers (GB 11643: 17 digits +
check digit or X) and the 15-digit numbers of the first generation (GB 11643-1989: area code,
YYMMDD, sequence), e-mail addresses (also with non-Latin names and domains), bank-card numbers
(16–19 digits). Before matching, full-width characters, other scripts' decimal digits (e.g.
Arabic-Indic) and zero-width characters are folded to ASCII one character for one, so the
positions found are positions in the original text. Placeholders follow the
ones the shared datasets use (``[电话]``, ``[身份证号]``, ``[邮箱]``, ``[卡号]``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.\w{2,}"), "[邮箱]"),
    # 18 characters, also written in groups 6-8-4 (area, birth date, sequence + check)
    (re.compile(r"(?<!\d)\d{6}[- ]?\d{8}[- ]?\d{3}[\dXx](?!\d)"), "[身份证号]"),
    (re.compile(r"(?<!\d)\d{16,19}(?!\d)"), "[卡号]"),
    # first-generation ID numbers: 15 digits, area code (province 1-8), YYMMDD, sequence
    (re.compile(r"(?<!\d)[1-8]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?!\d)"), "[身份证号]"),
    # card numbers as printed and usually written: groups of four (the last of 16-19 digits shorter)
    (re.compile(r"(?<!\d)\d{4}(?:[- ]\d{4}){3}(?:[- ]?\d{1,3})?(?!\d)"), "[卡号]"),
    (re.compile(r"(?<!\d)(?:(?:\+|00)?86[-. /]?)?1[-. /]?[3-9](?:[-. /]?\d){9}(?!\d)"), "[电话]"),
    # area code plain or in brackets, subscriber number whole or split 3/4 + 4
    (re.compile(r"(?<!\d)(?:\(0\d{2,3}\)|0\d{2,3})[- ]?\d{3,4}[- ]?\d{4}(?!\d)"), "[电话]"),
)

#: Full-width forms (typed with a Chinese IME) folded one character to one character for matching:
#: digits, Latin letters, ＠ ＋ － ． （ ） and the ideographic space; zero-width characters become
#: spaces (a separator the patterns allow between digits).
_FOLD = {**{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}, 0x3000: 0x20,
         **{c: 0x20 for c in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)}}


_DIGIT = re.compile(r"\d")
#: The fewest digits a match of any pattern but the e-mail one holds: a landline, ``0`` and a
#: two-digit area code, then 3 + 4 digits (mobile 11, first-generation ID 15, card 16, ID 17).
#: A text with fewer and no ``@`` is returned as it is, without running the patterns (issue 13:
#: they cost each report ~0.1 ms per free-text field).
_FEWEST_DIGITS = 10


class _FoldTable(dict):
    """:data:`_FOLD` plus every other Unicode decimal digit (Nd) to its ASCII digit, as a
    ``str.translate`` table that learns each code point once (one C-level pass per text instead of
    a Python loop over its characters)."""

    def __missing__(self, code_point: int) -> int:
        char = chr(code_point)
        digit = None if char.isascii() else unicodedata.decimal(char, None)
        self[code_point] = value = code_point if digit is None else ord(str(digit))
        return value


_FOLD_TABLE = _FoldTable(_FOLD)


def _fold(text: str) -> str:
    """``text`` folded for matching, one character for one: :data:`_FOLD`, then any Unicode
    decimal digit (Nd) to its ASCII digit."""
    return text.translate(_FOLD_TABLE)


def mask_text(text: str) -> str:
    """Return ``text`` with phone, ID, e-mail and card numbers replaced by placeholders (also when
    written with full-width characters). Not cached: a cache would keep the unmasked texts (a
    phone number in a short description) in memory, out of erasure's reach."""
    folded = _fold(text)  # same length: match positions are positions in ``text``
    if "@" not in folded and len(_DIGIT.findall(folded)) < _FEWEST_DIGITS:
        return text  # every pattern needs an @ or at least _FEWEST_DIGITS digits
    return _apply_patterns(text, folded)


def _apply_patterns(text: str, folded: str) -> str:
    """Every pattern of :data:`_PATTERNS` in turn over ``text`` (``folded``: ``_fold(text)``)."""
    for pattern, placeholder in _PATTERNS:
        parts, last = [], 0
        for match in pattern.finditer(folded):
            parts += [text[last:match.start()], placeholder]
            last = match.end()
        if parts:
            text = "".join(parts) + text[last:]
            folded = _fold(text)
    return text


def pseudonym(secret: bytes, *parts: str | None) -> str | None:
    """A pseudonymous reporter reference: HMAC-SHA256 over the normalised ``parts`` with ``secret``,
    first 32 hex chars. ``None`` when every part is empty. Without the secret the reference cannot be
    turned back into a phone number by trying all numbers."""
    material = "\x1f".join((p or "").strip().lower() for p in parts)
    if not material.strip("\x1f"):
        return None
    return hmac.new(secret, material.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
