"""Masking of personal data in free text before it leaves intake (events, logs, statistics).

Patterns (mainland-China formats): mobile numbers (11 digits starting 1[3-9]), landlines
(0 + 2–3 digit area code + 7–8 digits), 18-character resident ID numbers (GB 11643: 17 digits +
check digit or X), e-mail addresses, bank-card numbers (16–19 digits). Placeholders follow the
ones the shared datasets use (``[电话]``, ``[身份证号]``, ``[邮箱]``, ``[卡号]``).
"""

from __future__ import annotations

import hashlib
import hmac
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[邮箱]"),
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[身份证号]"),
    (re.compile(r"(?<!\d)\d{16,19}(?!\d)"), "[卡号]"),
    (re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"), "[电话]"),
    (re.compile(r"(?<!\d)0\d{2,3}[- ]?\d{7,8}(?!\d)"), "[电话]"),
)


def mask_text(text: str) -> str:
    """Return ``text`` with phone, ID, e-mail and card numbers replaced by placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def pseudonym(secret: bytes, *parts: str | None) -> str | None:
    """A pseudonymous reporter reference: HMAC-SHA256 over the normalised ``parts`` with ``secret``,
    first 32 hex chars. ``None`` when every part is empty. Without the secret the reference cannot be
    turned back into a phone number by trying all numbers."""
    material = "\x1f".join((p or "").strip().lower() for p in parts)
    if not material.strip("\x1f"):
        return None
    return hmac.new(secret, material.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
