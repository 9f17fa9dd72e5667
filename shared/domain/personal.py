"""Masking of a case's *known* personal data in free text (issue 16), besides the patterns of
shared/domain/pii.py.

The patterns find any phone, ID number, e-mail or card number, but not a name or an address:
"已联系张三" or "幸福路12号3栋" pass them. Intake knows the reporter of each case (name, phone,
ID number, address, sealed at rest), so it masks those values wherever they occur in the case's
free text — description, action notes, evidence references, audit details, identifier-like fields
such as ``source_id`` — before the text leaves intake, and again when a case is anonymised.

Matching (docs/domain.md §3(f), our choice):

- **name** → ``[姓名]``: the whole name, also with spaces between its characters; for a Chinese
  name of three or more characters also the given name alone (the family name is one character in
  almost all Chinese names: "试员" of "测试员"); for a name in Latin letters each word of three
  letters or more, as a whole word, in any case.
- **phone** → ``[电话]``: its digits (without +86/0086), with any of ``- . / ( )`` or spaces between
  them; for a landline also the subscriber number without the area code (7 or 8 digits).
- **ID number** → ``[身份证号]``: its characters, separators allowed as for phones, ``x`` or ``X``.
- **address** → ``[地址]``: the address with or without spaces.

Text is folded for matching as in shared/domain/pii.py (full-width forms and other scripts'
digits, one character for one), so ``１３８…`` is found too. Values shorter than the minimum of
each kind (a one-character name, fewer than 7 digits) are not looked for: they would mask
ordinary words. Longer values are matched first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from pydantic import ValidationError

from shared.contract.events import UnsupportedSchemaVersion, decode_event
from shared.domain.pii import _fold, mask_text

NAME, PHONE, ID_NUMBER, ADDRESS = "[姓名]", "[电话]", "[身份证号]", "[地址]"
_SEP = r"[-./() \u00a0]*"
_MIN_DIGITS = 7
_MIN_ADDRESS = 4


@dataclass(frozen=True)
class KnownPersonal:
    """The personal data intake knows of one case's reporter (any part may be missing)."""

    name: str | None = None
    phone: str | None = None
    id_number: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, contact: dict | None) -> KnownPersonal:
        """From a reporter contact (``ReporterContact`` dumped, or the sealed part's ``reporter``)."""
        contact = contact or {}
        return cls(**{k: (contact.get(k) or None) for k in ("name", "phone", "id_number", "address")})

    def __bool__(self) -> bool:
        return bool(self.name or self.phone or self.id_number or self.address)


def _spaced(value: str) -> str:
    """A pattern for ``value`` (folded) with optional whitespace between its characters."""
    return r"\s*".join(re.escape(c) for c in value if not c.isspace())


def _digits_pattern(digits: str) -> str:
    return r"(?<![0-9])\(?" + _SEP.join(digits) + r"(?![0-9])"


def _phone_forms(phone: str) -> list[str]:
    digits = "".join(c for c in _fold(phone) if c.isdigit())
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    forms = [digits] if len(digits) >= _MIN_DIGITS else []
    if digits.startswith("0") and len(digits) >= 10:  # a landline: the subscriber number alone too
        forms += [digits[-8:], digits[-7:]]
    return forms


def _name_forms(name: str) -> list[str]:
    folded = "".join(_fold(name).split())
    if len(folded) < 2:
        return []
    if folded.isascii():
        words = [w for w in re.split(r"[\s,.'-]+", _fold(name)) if len(w) >= 3]
        return [r"\b" + _spaced(_fold(name)) + r"\b"] + [r"\b" + re.escape(w) + r"\b" for w in words]
    forms = [_spaced(folded)]
    if len(folded) >= 3:
        forms.append(_spaced(folded[1:]))
    return forms


def _patterns(known: KnownPersonal) -> list[tuple[int, str, str]]:
    """``(length, pattern, placeholder)`` for each value to look for."""
    found: list[tuple[int, str, str]] = []
    if known.name:
        found += [(len(p), p, NAME) for p in _name_forms(known.name)]
    if known.phone:
        found += [(len(d), _digits_pattern(d), PHONE) for d in _phone_forms(known.phone)]
    if known.id_number:
        chars = [c for c in _fold(known.id_number) if c.isalnum()]
        if len(chars) >= _MIN_DIGITS:
            body = _SEP.join("[xX]" if c in "xX" else re.escape(c) for c in chars)
            found.append((len(chars), r"(?<![0-9A-Za-z])" + body + r"(?![0-9A-Za-z])", ID_NUMBER))
    if known.address:
        folded = "".join(_fold(known.address).split())
        if len(folded) >= _MIN_ADDRESS:
            found.append((len(folded), _spaced(folded), ADDRESS))
    return sorted(found, key=lambda f: -f[0])


def mask_known(text: str, known: KnownPersonal | None) -> str:
    """``text`` with the known personal data of ``known`` replaced by placeholders (only these
    values; the patterns of :func:`shared.domain.pii.mask_text` are not applied)."""
    if not text or not known:
        return text
    for _, pattern, placeholder in _patterns(known):
        compiled = re.compile(pattern, re.IGNORECASE)
        folded = _fold(text)  # same length: positions are positions in ``text``
        parts, last = [], 0
        for match in compiled.finditer(folded):
            if match.end() == match.start():
                continue
            parts += [text[last:match.start()], placeholder]
            last = match.end()
        if parts:
            text = "".join(parts) + text[last:]
    return text


def mask_personal(text: str | None, known: KnownPersonal | None = None, limit: int | None = None) -> str | None:
    """Free text as it may leave intake: the case's known personal data masked
    (:func:`mask_known`), then every phone, ID, e-mail and card number
    (:func:`shared.domain.pii.mask_text`), cut to ``limit`` characters when given (``[姓名]`` is
    longer than a two-character name, so masking can lengthen a text that was at its field's
    limit). ``None`` stays ``None``."""
    if text is None:
        return None
    masked = mask_text(mask_known(text, known))
    return masked[:limit] if limit is not None else masked


_CODE_LIKE = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")


def pseudonymous_ref(value: str | None, secret: bytes, known: KnownPersonal | None = None) -> str | None:
    """An identifier-like field that names a person (a patrol's ``worker_ref``) as it may leave
    intake: kept when it is a plain code (ASCII letters, digits and ``_ . : / -``) in which
    nothing is masked, else replaced by ``ref-`` and a keyed hash of it (16 hex digits; the same
    worker gets the same reference, nobody can read the name or phone back). ``None`` stays
    ``None``."""
    if value is None:
        return None
    if _CODE_LIKE.match(value) and mask_personal(value, known) == value:
        return value
    return "ref-" + hmac.new(secret, value.strip().encode("utf-8"), hashlib.sha256).hexdigest()[:16]


#: Keys of an event (or stored event payload) that link it to the reporter: dropped by erasure.
LINKING_KEYS = ("reporter_ref",)


def scrub(value, known: KnownPersonal | None, tight: bool = False):
    """A JSON value (an event payload, a stored report) as erasure leaves it: every string masked
    with the ``known`` data (:func:`mask_known`, at any depth, keys untouched), every
    :data:`LINKING_KEYS` set to ``None``. ``tight``: no string longer than it was (cut), so that
    whatever length limit it met it still meets."""
    if isinstance(value, str):
        masked = mask_known(value, known)
        return masked[:len(value)] if tight else masked
    if isinstance(value, list):
        return [scrub(v, known, tight) for v in value]
    if isinstance(value, dict):
        return {k: (None if k in LINKING_KEYS else scrub(v, known, tight)) for k, v in value.items()}
    return value


def scrub_event(payload: dict, known: KnownPersonal | None) -> dict:
    """An event payload (shared/contract/events.py) as erasure leaves it: :func:`scrub`, and where
    a placeholder longer than the value it replaced pushed a field past its limit, :func:`scrub`
    ``tight`` — a stored event must still decode (a replay publishes it again)."""
    loose = scrub(payload, known)
    try:
        decode_event(json.dumps(loose, ensure_ascii=False))
    except (ValidationError, UnsupportedSchemaVersion):
        return scrub(payload, known, tight=True)
    return loose
