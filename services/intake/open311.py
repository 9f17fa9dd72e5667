"""Open311 GeoReport v2 on intake, under ``/open311/v2/`` (issue 7 items 1-2).

Spec: open311.github.io ``GeoReport_v2/index.md`` ("the spec" below; digest in
``../shared/design/anchors.md`` §2) and ``Service_Discovery.md``. Every resource exists in both
formats, chosen by the URL suffix: ``.xml`` (the spec's required format: ``text/xml``, UTF-8,
schemaless, element names as in the spec) and ``.json`` (the spec's Spark-convention mapping of
the XML: a list of ``<request>`` elements is a JSON array, empty elements are ``null``).

| method | path | spec section |
|---|---|---|
| GET | ``discovery.{fmt}`` | Service Discovery |
| GET | ``services.{fmt}`` | GET Service List |
| GET | ``services/{service_code}.{fmt}`` | GET Service Definition |
| POST | ``requests.{fmt}`` (form-encoded, ``api_key``) | POST Service Request |
| GET | ``tokens/{token}.{fmt}`` (``api_key``) | GET service_request_id from a token |
| GET | ``requests.{fmt}`` (``api_key``; + extension ``page``/``page_size``) | GET Service Requests |
| GET | ``requests/{service_request_id}.{fmt}`` (``api_key``) | GET Service Request |

Access (issue 6): POST and the request/token reads need an ``api_key`` (or the API's
``Authorization: Bearer``), resolved by the credential store; reads show only the cases inside the
key's place scope (and department), anything else is 404; a POST outside the key's area or by a
role that does not report is 403 (shared/platform/auth.py).

Mapping onto gridcase:

- ``jurisdiction_id`` is a tenant name (``deploy/tenants/<tenant>.yaml``). It is required when
  intake serves more than one tenant (400 without it), 404 when unknown.
- Services are the taxonomy's categories (``shared/data/taxonomy.yaml``): ``service_code`` the
  six-digit category code, ``service_name`` ``"<name_zh> <name_en>"``, ``group`` the label of the
  category's default department. :data:`SERVICE_ATTRIBUTES` adds attributes to some categories
  (100110 油烟扰民 asks for the fume ``source``); posted attributes are checked against them.
- A request is a case: ``service_request_id`` is the case id (the spec's ``realtime`` type: the id
  is returned at once, so a token is the request id itself).
- Location: tenants have places (codes), not coordinates. ``address_id`` is a place code of the
  tenant (or a code under one, e.g. a building under a grid). ``lat``/``long`` are checked and
  then not used to locate: the place is ``address_id`` when given, else the tenant's first
  top-level place (the command centre re-locates it). ``address_string`` is the reporter's own
  address text: personal data, kept only as the reporter's address in ``intake.reports``, never
  in events or answers; the place is chosen as for ``lat``/``long``.
- Contact (``first_name``, ``last_name``, ``phone``) goes to :class:`ReporterContact` and stays in
  intake. ``email``, ``device_id`` and ``account_id`` are accepted and not stored (ReporterContact
  has no field for them).
- Posted attributes and ``media_url`` (the evidence reference) are kept with the case as trailer
  lines of its description (``[open311:attribute code=value]``, ``[open311:media_url URL]``);
  the description is shortened (ending in "…") if the trailer would push it past 4000
  characters. GET answers take ``media_url`` from the trailer and show the description without it.
- Records: ``status`` is ``closed`` once the case view says closed (or the case is rejected or
  cancelled), else ``open``; ``status_notes`` the state's zh-CN label and its English name;
  ``agency_responsible`` the label of the department the case is dispatched to (empty until
  dispatch handled it); ``expected_datetime`` the deadline (empty until there is one);
  ``address`` the names of the case's place and the places above it (never the reporter's
  address); ``address_id`` the place code; ``zipcode`` empty; ``lat``/``long`` empty;
  ``description`` masked with :func:`shared.domain.pii.mask_text`.
- Datetimes are W3C ISO 8601 with an offset, in the tenant's timezone.
- Errors use the spec's body (``errors``/``error``/``code``/``description``; in JSON an array of
  ``{code, description}``) with HTTP 400 (bad or missing parameter), 403 (missing or invalid
  ``api_key``), 404 (unknown jurisdiction, service, request, token or resource). ``code`` is the
  HTTP status. An unexpected failure answers 500 with the same body (see :func:`install`).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from xml.etree import ElementTree as ET

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.intake import db
from services.intake.schemas import ReportIn, ReporterContact
from shared.domain.pii import mask_text
from shared.domain.taxonomy import Category, Taxonomy, load_taxonomy
from shared.platform.auth import REPORT, Principal
from shared.domain.tenants import TenantConfig

log = logging.getLogger("gridcase.intake.open311")

PREFIX = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = ("xml", "json")
MEDIA_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
MAX_DESCRIPTION = 4000
MAX_BODY_BYTES = 64 * 1024
MAX_ADDRESS = 300
MAX_MEDIA_URL = 2000
DEFAULT_SPAN = timedelta(days=90)
MAX_ROWS = 1000
CHANNEL = "open311"
SOURCE = "open311"

#: Case states (services/dispatch/lifecycle.py and domain.py) → (zh-CN label, English).
STATE_NOTES: dict[str, tuple[str, str]] = {
    "reported": ("已上报", "reported"),
    "accepted": ("已受理", "accepted"),
    "rejected": ("不予受理", "rejected"),
    "filed": ("已立案", "filed"),
    "triage": ("待分拨", "awaiting triage"),
    "dispatched": ("已派遣", "dispatched"),
    "transferred": ("已转办", "transferred"),
    "acknowledged": ("已签收", "acknowledged"),
    "in_progress": ("处置中", "in progress"),
    "resolved": ("已处置", "resolved"),
    "checking": ("核查中", "being checked"),
    "closed": ("已结案", "closed"),
    "cancelled": ("已作废", "cancelled"),
    "shelved": ("已挂账", "shelved"),
    "mediating": ("调解中", "in mediation"),
}
#: States an Open311 client sees as ``closed`` (final: nothing more will happen).
CLOSED_STATES = ("closed", "rejected", "cancelled")

_TRAILER_RE = re.compile(r"^\[open311:(attribute|media_url) [^\n]*\]$", re.MULTILINE)
_MEDIA_RE = re.compile(r"^\[open311:media_url (\S+)\]$", re.MULTILINE)
_ATTRIBUTE_KEY_RE = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
_DATE_ONLY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_XML_INVALID_RE = re.compile(r"[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CJK_RE = re.compile(r"[\u3400-\u9fff]")


# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- rendering


_LIST_ITEMS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format",
               "services": "service", "service_requests": "request", "errors": "error"}


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


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise bad_request(f"unknown format {fmt[:20]!r}: use .xml or .json")


def w3c(moment: datetime | None, tz) -> str | None:
    """``moment`` as W3C ISO 8601 with an offset in ``tz`` (``2024-03-01T09:00:00+08:00``), or
    ``None``. Source: spec "Date/time format" (timezone must be included)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(tz).isoformat(timespec="seconds")


def parse_w3c(name: str, text: str, tz) -> datetime:
    """Parse a query datetime (``start_date``/``end_date``): full W3C datetime with ``Z`` or an
    offset, or a date ``YYYY-MM-DD`` (midnight in ``tz``, the tenant's zone).

    Raises:
        Open311Error: 400 for anything else, including a datetime without a timezone (spec:
            "Must use w3 format, eg 2010-01-01T00:00:00Z"; timezone information must be included).
    """
    text = text.strip()
    try:
        if _DATE_ONLY_RE.match(text):
            return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(0), tzinfo=tz)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{name} is not a W3C datetime (e.g. 2010-01-01T00:00:00Z)") from None
    if "T" not in text or value.tzinfo is None:
        raise bad_request(f"{name} must be a W3C datetime with a timezone (e.g. 2010-01-01T00:00:00Z)")
    return value


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Attribute:
    """One attribute of a service definition (spec: GET Service Definition, ``attribute``).

    ``values`` are ``(key, name)`` pairs for the list datatypes.
    """

    code: str
    datatype: str
    description: str
    required: bool = False
    order: int = 1
    datatype_description: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    variable: bool = True

    def as_dict(self) -> dict:
        """The attribute as the spec's fields, in the spec's order."""
        return {
            "variable": self.variable,
            "code": self.code,
            "datatype": self.datatype,
            "required": self.required,
            "datatype_description": self.datatype_description,
            "order": self.order,
            "description": self.description,
            "values": [{"key": key, "name": name} for key, name in self.values],
        }


#: Categories that ask for more than the description (their ``metadata`` is true).
SERVICE_ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    "100110": (
        Attribute(
            code="source",
            datatype="singlevaluelist",
            required=True,
            order=1,
            description="油烟来源 Where do the fumes come from?",
            datatype_description="选择一项 choose one",
            values=(("restaurant", "餐饮店 Restaurant"), ("residence", "居民住宅 Residence"), ("other", "其他 Other")),
        ),
    ),
}


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    """The packaged taxonomy (loaded once)."""
    return load_taxonomy()


def service_name(category: Category) -> str:
    """``"<name_zh> <name_en>"``, e.g. ``"油烟扰民 Cooking-fume nuisance"``."""
    return f"{category.name_zh} {category.name_en}"


def _kind_note(category: Category) -> str:
    if category.kind == "dispute":
        return "矛盾纠纷，由人民调解处理 A dispute, handled by people's mediation"
    if category.kind == "licence":
        return "前置审批检查，由审批部门处理 A prior-licence check, handled by the licensing department"
    return ""


def service_entry(category: Category) -> dict:
    """One ``service`` of GET Service List (spec fields in order): code, name, description,
    ``metadata`` (true when :data:`SERVICE_ATTRIBUTES` has attributes for it), ``type``
    ``realtime``, ``keywords`` (names and the department's names), ``group`` (default department
    label)."""
    tax = taxonomy()
    department = tax.department(category.department)
    group = tax.department_label(category.department)
    description = f"{service_name(category)}。默认处置部门 default department: {group}"
    note = _kind_note(category)
    if note:
        description += f"。{note}"
    keywords = [category.name_zh, category.name_en, category.code]
    if department is not None:
        keywords += [department.name_zh, department.name_en]
    return {
        "service_code": category.code,
        "service_name": service_name(category),
        "description": description,
        "metadata": bool(SERVICE_ATTRIBUTES.get(category.code)),
        "type": "realtime",
        "keywords": ", ".join(keywords),
        "group": group,
    }


def service_definition(code: str) -> dict:
    """GET Service Definition body for a known category ``code``: ``service_code`` and
    ``attributes`` (empty for most categories)."""
    return {"service_code": code, "attributes": [a.as_dict() for a in SERVICE_ATTRIBUTES.get(code, ())]}


def check_attributes(code: str, posted: dict[str, list[str]]) -> dict[str, list[str]]:
    """Check posted ``attribute[code]=value`` (or ``attribute[code][]=value`` for
    multivaluelist) against the service definition of ``code``; return the accepted values.

    Rules (spec: GET Service Definition datatypes, POST Service Request ``attribute``): unknown
    attribute codes, missing required attributes, values outside a list, several values for a
    single-value attribute, a non-number ``number``, a ``datetime`` that is not ISO 8601 with a
    timezone, and line breaks in a ``string`` are refused.

    Raises:
        Open311Error: 400 listing every problem found.
    """
    definition = {a.code: a for a in SERVICE_ATTRIBUTES.get(code, ())}
    problems: list[str] = []
    accepted: dict[str, list[str]] = {}
    for name in posted:
        if name not in definition:
            problems.append(f"attribute[{name[:64]}] is not an attribute of service {code}")
    for attr in sorted(definition.values(), key=lambda a: a.order):
        values = [v.strip() for v in posted.get(attr.code, []) if v.strip()]
        if not values:
            if attr.required:
                problems.append(f"attribute[{attr.code}] is required for service {code}")
            continue
        keys = {key for key, _ in attr.values}
        if attr.datatype != "multivaluelist" and len(values) > 1:
            problems.append(f"attribute[{attr.code}] takes one value")
        elif attr.datatype == "singlevaluelist":
            if values[0] not in keys:
                problems.append(f"attribute[{attr.code}] must be one of {', '.join(sorted(keys))}")
        elif attr.datatype == "multivaluelist":
            if any(v not in keys for v in values):
                problems.append(f"attribute[{attr.code}] values must be among {', '.join(sorted(keys))}")
        elif attr.datatype == "number":
            try:
                [float(v) for v in values]
            except ValueError:
                problems.append(f"attribute[{attr.code}] must be a number")
        elif attr.datatype == "datetime":
            for v in values:
                try:
                    parse_w3c(f"attribute[{attr.code}]", v, timezone.utc)
                except Open311Error:
                    problems.append(f"attribute[{attr.code}] must be an ISO 8601 datetime with a timezone")
                    break
        elif attr.datatype == "string" and any("\n" in v or "\r" in v for v in values):
            problems.append(f"attribute[{attr.code}] must be a single line")
        accepted[attr.code] = values
    if problems:
        raise bad_request(*problems)
    return accepted


# --------------------------------------------------------------------------- service state


def intake_of(request: Request):
    """The running :class:`services.intake.app.Intake` (``app.state.intake``)."""
    return request.app.state.intake


def _param(values, name: str) -> str | None:
    """An optional argument; empty counts as absent (spec: Definitions, Optional Arguments)."""
    value = values.get(name)
    if value is None:
        return None
    value = value.strip() if isinstance(value, str) else value
    return value or None


def resolve_tenant(tenants: dict[str, TenantConfig], jurisdiction_id: str | None) -> TenantConfig:
    """The tenant a request is about (spec: Definitions, ``jurisdiction_id``).

    Raises:
        Open311Error: 404 for an unknown ``jurisdiction_id``; 400 when it is absent and intake
            serves more than one tenant (or none).
    """
    if jurisdiction_id:
        tenant = tenants.get(jurisdiction_id)
        if tenant is None:
            raise not_found(f"jurisdiction_id {jurisdiction_id[:60]!r} was not found")
        return tenant
    if len(tenants) == 1:
        return next(iter(tenants.values()))
    raise bad_request(f"jurisdiction_id was not provided: this endpoint serves {len(tenants)} jurisdictions "
                      f"({', '.join(sorted(tenants)) or 'none'})")


def _known_category(code: str | None) -> Category:
    if not code:
        raise bad_request("service_code was not provided")
    category = taxonomy().category(code)
    if category is None:
        raise not_found(f"service_code {code[:64]!r} was not found")
    return category


def place_address(tenant: TenantConfig, place_code: str) -> str:
    """Human-readable location of a case, most specific first (spec: request ``address``): the
    names of the place that owns ``place_code`` and of the places above it, e.g.
    ``"幸福社区第1网格 Xingfu Community Grid 1, 幸福社区 Xingfu Community, 示范街道 Demo Street"``;
    the code itself for a place the tenant does not list. Never the reporter's address."""
    owner = tenant.owner(place_code)
    if owner is None:
        return place_code
    chain = [owner, *reversed(tenant.ancestors(owner.code))]
    return ", ".join(p.label or p.code for p in chain)


def default_place(tenant: TenantConfig) -> str:
    """The tenant's first top-level place (where a request located only by coordinates or by
    an address text goes; the command centre re-locates it).

    Raises:
        Open311Error: 400 when the tenant lists no place (then ``address_id`` is needed).
    """
    top = next((p for p in tenant.places if p.parent is None), None)
    if top is None:
        raise bad_request("this jurisdiction has no places to locate the request: send address_id")
    return top.code


def resolve_place(tenant: TenantConfig, form) -> tuple[str, str | None]:
    """The case's place code and the reporter's address text from the POST location parameters
    (spec: POST Service Request, "location parameter": ``lat`` & ``long``, or
    ``address_string``, or ``address_id``).

    - ``address_id`` must be a place of the tenant (listed, or a code under a listed place).
    - ``lat``/``long`` must come together, be numbers, and lie in -90..90 / -180..180. Tenants
      have no coordinates, so they do not choose the place: ``address_id`` does when given,
      else :func:`default_place`.
    - ``address_string`` (at most 300 characters) is returned as the reporter's address.

    Raises:
        Open311Error: 400 when no location is given or a parameter is invalid.
    """
    lat, lon = _param(form, "lat"), _param(form, "long")
    address_string = _param(form, "address_string")
    address_id = _param(form, "address_id")
    if (lat is None) != (lon is None):
        raise bad_request("lat and long must be sent together")
    if lat is not None:
        try:
            lat_f, lon_f = float(lat), float(lon)
        except ValueError:
            raise bad_request("lat and long must be numbers (WGS84)") from None
        if not (-90 <= lat_f <= 90 and -180 <= lon_f <= 180):
            raise bad_request("lat must be within -90..90 and long within -180..180 (WGS84)")
    if lat is None and address_string is None and address_id is None:
        raise bad_request("a location is required: lat and long, or address_string, or address_id")
    if address_string is not None and len(address_string) > MAX_ADDRESS:
        raise bad_request(f"address_string may be at most {MAX_ADDRESS} characters")
    if address_id is not None:
        from services.intake.app import place_problem

        if not re.fullmatch(r"[0-9A-Za-z]{1,24}", address_id) or place_problem(tenant, address_id):
            raise bad_request(f"address_id {address_id[:30]!r} is not a place of jurisdiction {tenant.tenant!r}")
        return address_id, address_string
    return default_place(tenant), address_string


def reporter_contact(form, address: str | None) -> ReporterContact | None:
    """The reporter's personal data from the POST (``first_name``, ``last_name``, ``phone``) and
    the ``address_string``; ``None`` when there is none. A name whose parts are Chinese is
    written family name first without a space (王 + 小明 → 王小明), others ``first last``."""
    first, last, phone = _param(form, "first_name"), _param(form, "last_name"), _param(form, "phone")
    if first and last and _CJK_RE.search(first + last):
        name = f"{last}{first}"
    else:
        name = " ".join(p for p in (first, last) if p) or None
    if not (name or phone or address):
        return None
    return ReporterContact(name=name, phone=phone, address=address)


def compose_description(text: str, attributes: dict[str, list[str]], media_url: str | None) -> str:
    """The case description: the posted text, then one trailer line per attribute value
    (``[open311:attribute source=restaurant]``) and for ``media_url``
    (``[open311:media_url URL]``). Lines of the posted text that look like trailer lines are
    defused (``[`` → ``［``). When the whole would exceed 4000 characters the posted text is cut
    and ends in "…"."""
    text = _TRAILER_RE.sub(lambda m: "［" + m.group(0)[1:], text)
    lines = [f"[open311:attribute {code}={_one_line(value)}]" for code, values in attributes.items() for value in values]
    if media_url:
        lines.append(f"[open311:media_url {media_url}]")
    if not lines:
        return text
    trailer = "\n".join(lines)
    room = MAX_DESCRIPTION - len(trailer) - 2
    if len(text) > room:
        text = text[: max(room - 1, 0)] + "…"
    return f"{text}\n\n{trailer}" if text else trailer


def _one_line(value: str) -> str:
    return re.sub(r"[\r\n]+", " ", value).replace("]", "］")


def split_description(stored: str) -> tuple[str, str | None]:
    """Inverse of :func:`compose_description` for answers: the description without trailer lines
    and the ``media_url`` (or ``None``)."""
    match = _MEDIA_RE.search(stored)
    media = match.group(1) if match else None
    text = _TRAILER_RE.sub("", stored).rstrip()
    return text, media


def _check_media_url(url: str | None) -> str | None:
    if url is None:
        return None
    if len(url) > MAX_MEDIA_URL or not re.fullmatch(r"https?://[^\s<>\"]+", url):
        raise bad_request(f"media_url must be an http(s) URL of at most {MAX_MEDIA_URL} characters")
    return url


def service_notice(category: Category | None, department_label: str | None) -> str:
    """What will happen (spec: ``service_notice``): the department handling the case when known,
    else the category's default one."""
    if department_label:
        return f"已派至{department_label}处置 Dispatched to {department_label}"
    if category is not None:
        label = taxonomy().department_label(category.department)
        return f"已受理，将派至责任部门处置（默认：{label}） Accepted; it will be dispatched to the responsible department (default: {label})"
    return "已受理 Accepted"


async def open311_caller(request: Request, api_key: str | None) -> Principal:
    """The caller of an Open311 request: the spec's ``api_key`` argument, or the same credentials
    as the rest of the API (``Authorization: Bearer``, ``X-API-Key``), resolved through the
    credential store (shared/platform/authstore.py; keys are issued with ``gridcase auth issue-key``).

    Raises:
        Open311Error: 403 when missing or not valid (spec: Errors, "403 - Missing or Invalid API
            Key"); 429 over the key's rate limit (``Retry-After`` set).
    """
    try:
        return await request.app.state.auth.principal(request, api_key)
    except StarletteHTTPException as exc:
        if exc.status_code == 401:
            missing = not (api_key or request.headers.get("authorization") or request.headers.get("x-api-key"))
            raise Open311Error(403, "api_key was not provided -- can't proceed" if missing
                               else "invalid api_key received -- can't proceed") from None
        raise


# --------------------------------------------------------------------------- records


def is_closed(state: str | None, closed: bool | None) -> bool:
    """Whether a case is ``closed`` for Open311: the view's closed flag, or a final state."""
    return bool(closed) or state in CLOSED_STATES


def status_notes(state: str | None, closed: bool) -> str:
    """``"<zh-CN label> <English>"`` of the case state, e.g. ``"已派遣 dispatched"``."""
    key = state or ("closed" if closed else "reported")
    zh, en = STATE_NOTES.get(key, (key, key.replace("_", " ")))
    return f"{zh} {en}"


def department_label(tenant: TenantConfig, code: str | None) -> str | None:
    """Label of a department code (taxonomy, then tenant-local), ``None`` for none."""
    if not code:
        return None
    return tenant.department_label(code, taxonomy())


def request_record(tenant: TenantConfig, row: dict) -> dict:
    """One ``request`` of GET Service Request(s), fields in the spec's order, from a joined row
    of ``intake.reports`` and ``intake.case_view`` (see :func:`fetch_rows`)."""
    tz = tenant.tzinfo
    report = row["report"] or {}
    category = taxonomy().category(row["category_code"])
    text, media = split_description(report.get("description") or "")
    closed = is_closed(row.get("state"), row.get("closed"))
    agency = department_label(tenant, row.get("department"))
    if closed and row.get("closed_at") is not None:
        updated = row["closed_at"]
    else:
        times = [t for t in (row.get(k) for k in ("reported_at", "dispatched_at", "department_at",
                                                  "acknowledged_at", "resolved_at", "closed_at")) if t is not None]
        updated = max(times) if times else None
    return {
        "service_request_id": str(row["case_id"]),
        "status": "closed" if closed else "open",
        "status_notes": status_notes(row.get("state"), closed),
        "service_name": service_name(category) if category else (report.get("category_name") or row["category_code"]),
        "service_code": row["category_code"],
        "description": mask_text(text),
        "agency_responsible": agency,
        "service_notice": service_notice(category, agency),
        "requested_datetime": w3c(row["reported_at"], tz),
        "updated_datetime": w3c(updated, tz),
        "expected_datetime": w3c(row.get("deadline"), tz),
        "address": place_address(tenant, row["place_code"]),
        "address_id": row["place_code"],
        "zipcode": "",
        "lat": None,
        "long": None,
        "media_url": media,
    }


def _row_query(tenant: str) -> sa.Select:
    r, v = db.reports, db.case_view
    return (
        sa.select(
            r.c.case_id, r.c.category_code, r.c.place_code, r.c.reported_at, r.c.report, r.c.source,
            v.c.state, v.c.closed, v.c.closed_at, v.c.department, v.c.deadline, v.c.dispatched_at,
            v.c.department_at, v.c.acknowledged_at, v.c.resolved_at,
        )
        .select_from(r.outerjoin(v, v.c.case_id == r.c.case_id))
        .where(r.c.tenant == tenant)
    )


def _closed_clause():
    v = db.case_view
    return sa.or_(sa.func.coalesce(v.c.closed, False), sa.func.coalesce(v.c.state, "").in_(CLOSED_STATES))


@dataclass
class RequestQuery:
    """Parsed GET Service Requests filters (spec: GET Service Requests, plus the ``page`` /
    ``page_size`` extension, Extensions.md / open311.github.io#16)."""

    ids: list[uuid.UUID] | None = None
    service_codes: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: set[str] | None = None
    page: int = 1
    page_size: int = MAX_ROWS


def parse_request_query(params, tz, now: datetime) -> RequestQuery:
    """Parse the GET Service Requests arguments.

    - ``service_request_id``: comma list (at most 1000), overrides every other filter; ids that
      are not case ids match nothing.
    - ``service_code``: comma list.
    - ``start_date`` / ``end_date``: W3C datetimes with a timezone (:func:`parse_w3c`); the span
      may not exceed 90 days; without them the last 90 days (only one given: 90 days from / up
      to it).
    - ``status``: comma list of ``open``, ``closed``.
    - ``page`` (from 1) / ``page_size`` (1..1000, default 1000).

    Raises:
        Open311Error: 400 naming the bad argument.
    """
    query = RequestQuery()
    for name in ("page", "page_size"):
        raw = _param(params, name)
        if raw is not None:
            if not raw.isdigit() or int(raw) < 1 or (name == "page_size" and int(raw) > MAX_ROWS) or len(raw) > 9:
                raise bad_request(f"{name} must be a whole number >= 1" + (f" and <= {MAX_ROWS}" if name == "page_size" else ""))
            setattr(query, name, int(raw))
    raw_ids = _param(params, "service_request_id")
    if raw_ids is not None:
        parts = [p.strip() for p in raw_ids.split(",") if p.strip()]
        if len(parts) > MAX_ROWS:
            raise bad_request(f"service_request_id may list at most {MAX_ROWS} ids")
        ids = []
        for part in parts:
            try:
                ids.append(uuid.UUID(part))
            except ValueError:
                continue
        query.ids = ids
        return query
    codes = _param(params, "service_code")
    if codes is not None:
        query.service_codes = [c.strip() for c in codes.split(",") if c.strip()][:MAX_ROWS]
    status = _param(params, "status")
    if status is not None:
        statuses = {s.strip().lower() for s in status.split(",") if s.strip()}
        if not statuses or not statuses <= {"open", "closed"}:
            raise bad_request("status must be open, closed or both (comma separated)")
        query.statuses = statuses
    start_raw, end_raw = _param(params, "start_date"), _param(params, "end_date")
    start = parse_w3c("start_date", start_raw, tz) if start_raw else None
    end = parse_w3c("end_date", end_raw, tz) if end_raw else None
    if start is None and end is None:
        end, start = now, now - DEFAULT_SPAN
    elif start is None:
        start = end - DEFAULT_SPAN
    elif end is None:
        end = start + DEFAULT_SPAN
    if start > end:
        raise bad_request("start_date must not be after end_date")
    if end - start > DEFAULT_SPAN:
        raise bad_request("start_date and end_date may not span more than 90 days")
    query.start, query.end = start, end
    return query


async def fetch_rows(engine, tenant: str, query: RequestQuery, caller: Principal | None = None) -> list[dict]:
    """Rows (reports joined with the case view) of ``tenant`` matching ``query``, newest first,
    one page of at most ``page_size``; only the cases ``caller`` may see (place scope, and the
    department for department staff; shared/platform/auth.py) when given."""
    r = db.reports
    stmt = _row_query(tenant)
    if caller is not None:
        if caller.scope:
            stmt = stmt.where(r.c.place_code.startswith(caller.scope, autoescape=True))
        allowed, department = caller.department_filter(None)
        if department is not None:
            stmt = stmt.where(db.case_view.c.department == department)
    if query.ids is not None:
        if not query.ids:
            return []
        stmt = stmt.where(r.c.case_id.in_(query.ids))
    else:
        if query.service_codes:
            stmt = stmt.where(r.c.category_code.in_(query.service_codes))
        if query.start is not None:
            stmt = stmt.where(r.c.reported_at >= query.start)
        if query.end is not None:
            stmt = stmt.where(r.c.reported_at <= query.end)
        if query.statuses and len(query.statuses) == 1:
            stmt = stmt.where(_closed_clause() if "closed" in query.statuses else sa.not_(_closed_clause()))
    stmt = stmt.order_by(r.c.reported_at.desc(), r.c.case_id).limit(query.page_size).offset(
        (query.page - 1) * query.page_size
    )
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(stmt)).mappings()]


# --------------------------------------------------------------------------- routing


class Open311Route(APIRoute):
    """Route class of :data:`router`: any exception of an Open311 handler (including FastAPI's
    request validation and HTTP errors) is answered in the spec's error format, in the format of
    the URL, so the rest of the API keeps shared/platform/http.py's body."""

    def get_route_handler(self) -> Callable:
        """Wrap FastAPI's handler: :class:`Open311Error` → its answer; validation → 400; HTTP
        errors → their status (4xx other than 403/404 → 400); anything else → logged, 500."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            """Run the route; answer any failure in the spec's error format."""
            try:
                return await handler(request)
            except Open311Error as exc:
                return error_answer(format_of(request), exc)
            except RequestValidationError as exc:
                fields = [".".join(str(p) for p in e.get("loc", ()) if p not in ("path", "query", "body"))
                          for e in exc.errors()[:10]]
                return error_answer(format_of(request), bad_request(f"invalid parameter: {', '.join(fields) or 'request'}"))
            except StarletteHTTPException as exc:
                status = exc.status_code if exc.status_code in (403, 404, 429) else 400
                detail = exc.detail if isinstance(exc.detail, str) else (
                    exc.detail.get("message") if isinstance(exc.detail, dict) and exc.detail.get("message")
                    else "the request could not be fulfilled")
                answer = error_answer(format_of(request), Open311Error(status, detail))
                if exc.status_code == 429 and exc.headers:
                    answer.headers.update(exc.headers)
                return answer
            except Exception as exc:  # noqa: BLE001 - answered in the spec's format, logged without request data
                log.error("open311: unhandled %s on %s %s", type(exc).__name__, request.method,
                          request.scope.get("route").path if request.scope.get("route") else "?", exc_info=exc)
                return error_answer(format_of(request), Open311Error(
                    500, "general service error: the request could not be completed; it was not accepted"))

        return handle


router = APIRouter(prefix=PREFIX, route_class=Open311Route, tags=["open311"])


@router.get("/discovery.{fmt}")
async def discovery(request: Request, fmt: str) -> Response:
    """Service Discovery (``Service_Discovery.md``): ``changeset`` (taxonomy file time),
    ``contact``, ``key_service``, ``endpoints[endpoint{specification, url, changeset, type,
    formats[format]}]``. One production endpoint, formats ``text/xml`` and ``application/json``.
    No ``jurisdiction_id`` needed; ``contact`` lists the jurisdiction ids."""
    _check_format(fmt)
    svc = intake_of(request)
    changeset = w3c(datetime.fromtimestamp(Path(taxonomy().path).stat().st_mtime, timezone.utc), timezone.utc)
    url = str(request.base_url).rstrip("/") + PREFIX
    body = {
        "changeset": changeset,
        "contact": "网格化服务管理指挥中心 Grid-management operations centre. jurisdiction_id: "
                   + ", ".join(sorted(svc.tenants)),
        "key_service": "api_key 由指挥中心分配 API keys are issued by the operations centre "
                       "(gridcase auth issue-key); GET requests need one too (place-scoped access)",
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": url,
            "changeset": changeset,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    }
    return render(fmt, "discovery", body)


@router.get("/services.{fmt}")
async def services_list(request: Request, fmt: str) -> Response:
    """GET Service List: every taxonomy category as a ``service`` (:func:`service_entry`).

    Errors: 400 without ``jurisdiction_id`` (several tenants), 404 unknown jurisdiction."""
    _check_format(fmt)
    resolve_tenant(intake_of(request).tenants, _param(request.query_params, "jurisdiction_id"))
    return render(fmt, "services", [service_entry(c) for c in taxonomy().categories])


@router.get("/services/{service_code}.{fmt}")
async def services_definition(request: Request, service_code: str, fmt: str) -> Response:
    """GET Service Definition of ``service_code`` (:func:`service_definition`).

    Errors: 404 unknown service or jurisdiction, 400 without ``jurisdiction_id``."""
    _check_format(fmt)
    resolve_tenant(intake_of(request).tenants, _param(request.query_params, "jurisdiction_id"))
    category = _known_category(service_code)
    return render(fmt, "service_definition", service_definition(category.code))


async def _form(request: Request):
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise bad_request(f"the request body may be at most {MAX_BODY_BYTES} bytes")
    ctype = request.headers.get("content-type", "")
    if ctype and not ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        raise bad_request("send the request as application/x-www-form-urlencoded")
    try:
        return await request.form(max_files=0, max_fields=200)
    except Exception:  # noqa: BLE001 - malformed body
        raise bad_request("the request body is not a valid form") from None


@router.post("/requests.{fmt}")
async def post_request(request: Request, fmt: str) -> Response:
    """POST Service Request (form-encoded; ``api_key`` and ``jurisdiction_id`` may also come in
    the query string). Creates a case (channel and source ``open311``) through
    ``Intake.store`` and answers ``[{service_request_id, service_notice, account_id}]``.

    Order of checks: format, ``api_key`` (403), jurisdiction (400/404), ``service_code``
    (400 missing, 404 unknown), attributes (400, :func:`check_attributes`), location (400,
    :func:`resolve_place`), ``description`` ≤ 4000 characters and ``media_url`` (400), then the
    report itself (400 naming the fields ReportIn refuses, without echoing values).
    """
    _check_format(fmt)
    form = await _form(request)
    query = request.query_params

    def arg(name: str) -> str | None:
        """A form argument, else the same query argument (empty counts as absent)."""
        return _param(form, name) or _param(query, name)

    svc = intake_of(request)
    caller = await open311_caller(request, arg("api_key"))
    if not caller.may(REPORT):
        raise Open311Error(403, f"role {caller.role} may not create requests")
    tenant = resolve_tenant(svc.tenants, arg("jurisdiction_id"))
    if not caller.sees_tenant(tenant.tenant):
        raise Open311Error(403, "this api_key is not valid for the jurisdiction")
    category = _known_category(_param(form, "service_code"))
    posted: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        match = _ATTRIBUTE_KEY_RE.match(key)
        if match and isinstance(value, str):
            posted.setdefault(match.group(1), []).append(value)
        elif key.startswith("attribute["):
            raise bad_request("attributes are sent as attribute[code]=value or attribute[code][]=value")
    attributes = check_attributes(category.code, posted)
    place_code, address = resolve_place(tenant, form)
    if not caller.sees_place(tenant.tenant, place_code):
        raise Open311Error(403, "the location is outside this api_key's area")
    description = form.get("description") or ""
    if not isinstance(description, str):
        raise bad_request("description must be text")
    if len(description) > MAX_DESCRIPTION:
        raise bad_request(f"description may be at most {MAX_DESCRIPTION} characters")
    media_url = _check_media_url(_param(form, "media_url"))
    try:
        report = ReportIn(
            tenant=tenant.tenant,
            category_code=category.code,
            category_name=category.name_zh,
            place_code=place_code,
            description=compose_description(description.strip(), attributes, media_url),
            channel=CHANNEL,
            source=SOURCE,
            reported_at=datetime.now(timezone.utc),
            reporter=reporter_contact(form, address),
        )
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())) or "request" for e in exc.errors()})
        names = {"reporter.name": "first_name/last_name", "reporter.phone": "phone", "reporter.address": "address_string"}
        raise bad_request("invalid " + ", ".join(names.get(f, f) for f in fields)
                          + " (too long, or a control character)") from None
    from services.intake.app import case_id_for

    case_id = case_id_for(report, None)
    await svc.store([(report, case_id, None)], caller)
    answer = [{"service_request_id": str(case_id), "service_notice": service_notice(category, None), "account_id": None}]
    return render(fmt, "service_requests", answer)


async def _reader(request: Request, missing: Callable[[str], str]):
    """``(service, caller, tenant)`` of a request read: the credential (:func:`open311_caller`)
    and the jurisdiction (:func:`resolve_tenant`).

    Raises:
        Open311Error: 403 without a valid api_key, 404 with the message ``missing(tenant name)``
            when the jurisdiction is not the credential's (as for one that does not exist),
            400/404 of resolve_tenant.
    """
    svc = intake_of(request)
    caller = await open311_caller(request, _param(request.query_params, "api_key"))
    tenant = resolve_tenant(svc.tenants, _param(request.query_params, "jurisdiction_id"))
    if not caller.sees_tenant(tenant.tenant):
        raise not_found(missing(tenant.tenant))
    return svc, caller, tenant


@router.get("/tokens/{token}.{fmt}")
async def get_token(request: Request, token: str, fmt: str) -> Response:
    """GET service_request_id from a token. POST answers with the request id at once (type
    ``realtime``), so a token is that id: ``[{service_request_id, token}]`` for a request posted
    through Open311 in this jurisdiction.

    Errors: 404 unknown token or jurisdiction, 400 without ``jurisdiction_id``."""
    _check_format(fmt)
    missing = f"token {token[:60]!r} was not found"
    svc, caller, tenant = await _reader(request, lambda _: missing)
    try:
        case_id = uuid.UUID(token)
    except ValueError:
        raise not_found(missing) from None
    rows = await fetch_rows(svc.engine, tenant.tenant, RequestQuery(ids=[case_id], page_size=1), caller)
    if not rows or rows[0]["source"] != SOURCE:
        raise not_found(missing)
    return render(fmt, "service_requests", [{"service_request_id": str(case_id), "token": token}])


@router.get("/requests.{fmt}")
async def get_requests(request: Request, fmt: str) -> Response:
    """GET Service Requests of the jurisdiction, any channel (:func:`parse_request_query` for the
    filters, :func:`request_record` for the fields), newest first.

    Errors: 400 for a bad argument (date, status, span, page) or missing ``jurisdiction_id``,
    404 unknown jurisdiction."""
    _check_format(fmt)
    params = request.query_params
    svc, caller, tenant = await _reader(request, lambda name: f"jurisdiction_id {name!r} was not found")
    query = parse_request_query(params, tenant.tzinfo, datetime.now(timezone.utc))
    rows = await fetch_rows(svc.engine, tenant.tenant, query, caller)
    return render(fmt, "service_requests", [request_record(tenant, row) for row in rows])


@router.get("/requests/{service_request_id}.{fmt}")
async def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    """GET Service Request: ``[request]`` (a one-element list, as the spec's examples).

    Errors: 404 unknown request or jurisdiction, 400 without ``jurisdiction_id``."""
    _check_format(fmt)
    missing = f"service_request_id {service_request_id[:60]!r} was not found"
    svc, caller, tenant = await _reader(request, lambda _: missing)
    try:
        case_id = uuid.UUID(service_request_id)
    except ValueError:
        raise not_found(missing) from None
    rows = await fetch_rows(svc.engine, tenant.tenant, RequestQuery(ids=[case_id], page_size=1), caller)
    if not rows:
        raise not_found(missing)
    return render(fmt, "service_requests", [request_record(tenant, rows[0])])


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@router.api_route("/{rest:path}", methods=_ALL_METHODS, include_in_schema=False)
async def fallback(request: Request, rest: str) -> Response:
    """Anything else under ``/open311/v2/``: 404 in the spec's format (400 for a known resource
    asked with a method it does not take)."""
    path = request.url.path
    for route in router.routes:
        if route is not request.scope.get("route") and isinstance(route, APIRoute) and route.path_regex.match(path):
            raise bad_request(f"{request.method} is not supported on this resource")
    raise not_found("no such Open311 resource (see discovery.xml)")


def install(app: FastAPI) -> None:
    """Mount :data:`router` on ``app`` (once; a second call does nothing).

    Error handling needs no app-level handler: :class:`Open311Route` answers every failure of
    an Open311 route in the spec's format, so handlers registered by shared/platform/http.py keep serving
    the rest of the API unchanged, whatever the order of installation.
    """
    if any(getattr(r, "path", "").startswith(PREFIX) for r in app.routes):
        return
    app.include_router(router)
