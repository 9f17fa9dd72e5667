"""Source names → gridcase codes: a source's department or queue name becomes a department code,
a source's category text a ``ReportIn.category_code`` (deterministic, so re-imports agree)."""

from __future__ import annotations

import hashlib
import re

#: A tenant-local department code (shared/domain/tenants.py ``_LOCAL_DEPT_RE``), kept at most 64 long.
_DEPARTMENT_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_CODE_MAX = 64


def digest(text: str, n: int) -> str:
    """The first ``n`` hex digits of the SHA-1 of ``text`` (UTF-8)."""
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
        suffix = "_" + digest(name, 8)
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
    return f"{text[:55]}~{digest(text, 8)}"
