"""Open311 GeoReport v2's wire format: the spec's XML (``text/xml``, UTF-8, schemaless, element
names as in the spec) and its JSON (the Spark-convention mapping of the XML), the spec's error
body, W3C datetimes, and the rules for optional arguments. Spec: open311.github.io
``GeoReport_v2/index.md`` ("Format Support", "Errors", "Date/time format")."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from fastapi import Request
from starlette.responses import Response

FORMATS = ("xml", "json")
MEDIA_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}

_DATE_ONLY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_XML_INVALID_RE = re.compile(r"[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LIST_ITEMS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format",
               "services": "service", "service_requests": "request", "errors": "error"}


class Open311Error(Exception):
    """An answer in the spec's error format ("Errors" section of the spec).

    ``status`` is the HTTP status (400, 403, 404, 500); ``errors`` the ``(code, description)``
    pairs of the body (the spec allows several; ``code`` defaults to ``status``).
    """

    def __init__(self, status: int, description: str, *more: str) -> None:
        super().__init__(description)
        self.status = status
        self.errors = [(status, d) for d in (description, *more)]


def bad_request(description: str, *more: str) -> Open311Error:
    """400: a missing or invalid parameter, or a failure to fulfil the request (spec: Errors)."""
    return Open311Error(400, description, *more)


def not_found(description: str) -> Open311Error:
    """404: an unknown jurisdiction, service, request, token or resource (spec: Errors)."""
    return Open311Error(404, description)


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_INVALID_RE.sub("", str(value))


def _fill(element: ET.Element, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, (list, tuple)):
        child = _LIST_ITEMS.get(element.tag, "item")
        for item in value:
            _fill(ET.SubElement(element, child), item)
    else:
        element.text = _xml_text(value)


def to_xml(root: str, data: Any) -> bytes:
    """Serialise ``data`` as the spec's XML: ``<?xml version="1.0" encoding="UTF-8"?>`` and a
    ``root`` element; dicts become child elements in key order, lists repeat the singular element
    (``services``→``service``, ``service_requests``→``request``, ``errors``→``error``,
    ``attributes``→``attribute``, ``values``→``value``, ``endpoints``→``endpoint``,
    ``formats``→``format``), ``None`` an empty element, booleans ``true``/``false``. Characters
    XML 1.0 cannot carry are dropped. Source: spec "Format Support", "XML Support".
    """
    element = ET.Element(root)
    _fill(element, data)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="unicode").encode("utf-8")


def render(fmt: str, root: str, data: Any, status: int = 200) -> Response:
    """The answer in ``fmt`` (``xml`` or ``json``): XML through :func:`to_xml` with root element
    ``root``, JSON as ``data`` itself (UTF-8, not ASCII-escaped). Content types as in the spec:
    ``text/xml; charset=utf-8`` and ``application/json; charset=utf-8``."""
    if fmt == "json":
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    else:
        body = to_xml(root, data)
    return Response(content=body, status_code=status, media_type=MEDIA_TYPES[fmt])


def error_answer(fmt: str, error: Open311Error) -> Response:
    """The spec's error body for ``error`` (JSON: ``[{"code", "description"}]``; XML:
    ``<errors><error><code/><description/></error></errors>``) with its HTTP status."""
    return render(fmt, "errors", [{"code": code, "description": text} for code, text in error.errors], error.status)


def format_of(request: Request) -> str:
    """The answer format of a request: its ``fmt`` path parameter, else its path's suffix; XML
    (the required format) when neither names a known one."""
    fmt = request.path_params.get("fmt") if hasattr(request, "path_params") else None
    if fmt in FORMATS:
        return fmt
    return "json" if request.url.path.endswith(".json") else "xml"


def check_format(fmt: str) -> None:
    """Refuse a URL suffix other than ``.xml`` and ``.json`` (400)."""
    if fmt not in FORMATS:
        raise bad_request(f"unknown format {fmt[:20]!r}: use .xml or .json")


def param(values, name: str) -> str | None:
    """An optional argument; empty counts as absent (spec: Definitions, Optional Arguments)."""
    value = values.get(name)
    if value is None:
        return None
    value = value.strip() if isinstance(value, str) else value
    return value or None


def w3c(moment: datetime | None, tz) -> str | None:
    """``moment`` as W3C ISO 8601 with an offset in ``tz`` (``2024-03-01T09:00:00+08:00``), or
    ``None``. Source: spec "Date/time format" (timezone must be included)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).isoformat(timespec="seconds")


def parse_w3c(name: str, text: str, tz=None) -> datetime:
    """Parse a query datetime (``start_date``/``end_date``): a full W3C datetime with ``Z`` or an
    offset, e.g. ``2010-01-01T00:00:00Z`` or ``2024-03-01T00:00:00+08:00``. ``tz`` is not used
    (kept for callers): every accepted value carries its own timezone.

    Raises:
        Open311Error: 400 for anything else, with what to send instead: a bare date
            (``2024-03-01``), a datetime without a timezone, or text that is no datetime (spec,
            GET Service Requests: "Must use w3 format, eg 2010-01-01T00:00:00Z"; "Date/time
            format": timezone information must be included).
    """
    text = text.strip()
    example = "e.g. 2010-01-01T00:00:00Z or 2010-01-01T00:00:00+08:00"
    if _DATE_ONLY_RE.match(text):
        raise bad_request(f"{name} must be a W3C datetime with a time and a timezone ({example}), "
                          f"not a date alone: {text}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{name} is not a W3C datetime ({example})") from None
    if "T" not in text or value.tzinfo is None:
        raise bad_request(f"{name} must be a W3C datetime with a timezone ({example})")
    return value
