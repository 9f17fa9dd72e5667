"""Open311 ⇄ gridcase: a POST Service Request becomes a ``ReportIn`` (jurisdiction, location,
contact, attributes, media), and a stored case becomes a ``request`` record. Spec: open311.github.io
``GeoReport_v2/index.md`` ("the spec"; digest in ``docs/architecture.md`` §8).

- ``jurisdiction_id`` is a tenant name (``deploy/tenants/<tenant>.yaml``). It is required when
  intake serves more than one tenant (400 without it), 404 when unknown.
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
  cancelled; a reopened case is open again until it closes again), else ``open``;
  ``status_notes`` the state's zh-CN label and its English name, and for a closed case how it
  ended (the outcome, zh-CN and English: ``"已结案 closed: 已解决 resolved"``);
  ``agency_responsible`` the label of the department the case is dispatched to (empty until
  dispatch handled it); ``expected_datetime`` the deadline (empty until there is one);
  ``address`` the names of the case's place and the places above it (never the reporter's
  address); ``address_id`` the place code; ``zipcode`` empty; ``lat``/``long`` empty;
  ``description`` masked with :func:`shared.domain.pii.mask_text`.
- Datetimes are W3C ISO 8601 with an offset, in the tenant's timezone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import ValidationError

from services.intake.caseview import closed_now
from services.intake.domain.reports import place_problem
from services.intake.domain.taxonomy import taxonomy
from services.intake.open311.catalogue import service_name
from services.intake.open311.wire import bad_request, not_found, param, w3c
from services.intake.schemas import ReporterContact, ReportIn
from shared.contract.actions import OUTCOME_LABELS
from shared.domain.casefacts import ENDING_STATES
from shared.domain.pii import mask_text
from shared.domain.taxonomy import Category
from shared.domain.tenants import TenantConfig

MAX_DESCRIPTION = 4000
MAX_ADDRESS = 300
MAX_MEDIA_URL = 2000
CHANNEL = "open311"
SOURCE = "open311"


#: Case states (services/dispatch/domain/lifecycle/states.py and docs/domain.md §3(c)) → (zh-CN label, English).
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
#: Outcomes (shared/contract/actions.py OUTCOME_LABELS, zh-CN) in English, for ``status_notes``.
OUTCOME_NOTES_EN: dict[str, str] = {
    "resolved": "resolved", "partly_resolved": "partly resolved", "unresolved": "unresolved",
    "unfounded": "unfounded", "duplicate": "duplicate", "not_remit": "not within remit",
}

_TRAILER_RE = re.compile(r"^\[open311:(attribute|media_url) [^\n]*\]$", re.MULTILINE)
_MEDIA_RE = re.compile(r"^\[open311:media_url (\S+)\]$", re.MULTILINE)
_ATTRIBUTE_KEY_RE = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
_CJK_RE = re.compile(r"[\u3400-\u9fff]")


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
    lat, lon = param(form, "lat"), param(form, "long")
    address_string = param(form, "address_string")
    address_id = param(form, "address_id")
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
        if not re.fullmatch(r"[0-9A-Za-z]{1,24}", address_id) or place_problem(tenant, address_id):
            raise bad_request(f"address_id {address_id[:30]!r} is not a place of jurisdiction {tenant.tenant!r}")
        return address_id, address_string
    return default_place(tenant), address_string


def reporter_contact(form, address: str | None) -> ReporterContact | None:
    """The reporter's personal data from the POST (``first_name``, ``last_name``, ``phone``) and
    the ``address_string``; ``None`` when there is none. A name whose parts are Chinese is
    written family name first without a space (王 + 小明 → 王小明), others ``first last``."""
    first, last, phone = param(form, "first_name"), param(form, "last_name"), param(form, "phone")
    if first and last and _CJK_RE.search(first + last):
        name = f"{last}{first}"
    else:
        name = " ".join(p for p in (first, last) if p) or None
    if not (name or phone or address):
        return None
    return ReporterContact(name=name, phone=phone, address=address)


def posted_attributes(form) -> dict[str, list[str]]:
    """The posted ``attribute[code]=value`` / ``attribute[code][]=value`` values by code.

    Raises:
        Open311Error: 400 for another ``attribute[…`` form of key.
    """
    posted: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        match = _ATTRIBUTE_KEY_RE.match(key)
        if match and isinstance(value, str):
            posted.setdefault(match.group(1), []).append(value)
        elif key.startswith("attribute["):
            raise bad_request("attributes are sent as attribute[code]=value or attribute[code][]=value")
    return posted


def to_report(tenant: TenantConfig, category: Category | None, form, attributes: dict[str, list[str]], place_code: str,
              address: str | None) -> ReportIn:
    """The report of a POST Service Request (channel and source ``open311``, reported now):
    ``description`` ≤ 4000 characters with the attributes and ``media_url`` as trailer lines
    (:func:`compose_description`), the contact from :func:`reporter_contact`. Without a category
    (a request with only a description) the report has no ``category_code``: intake classifies it.

    Raises:
        Open311Error: 400 for a description that is not text or too long, a bad ``media_url``,
            or a report ReportIn refuses (naming the fields, without echoing values).
    """
    description = form.get("description") or ""
    if not isinstance(description, str):
        raise bad_request("description must be text")
    if len(description) > MAX_DESCRIPTION:
        raise bad_request(f"description may be at most {MAX_DESCRIPTION} characters")
    media_url = _check_media_url(param(form, "media_url"))
    try:
        return ReportIn(
            tenant=tenant.tenant,
            category_code=category.code if category is not None else None,
            category_name=category.name_zh if category is not None else "",
            place_code=place_code,
            description=compose_description(description.strip(), attributes, media_url),
            channel=CHANNEL,
            source=SOURCE,
            reported_at=datetime.now(UTC),
            reporter=reporter_contact(form, address),
        )
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())) or "request" for e in exc.errors()})
        names = {"reporter.name": "first_name/last_name", "reporter.phone": "phone", "reporter.address": "address_string"}
        raise bad_request("invalid " + ", ".join(names.get(f, f) for f in fields)
                          + " (too long, or a control character)") from None


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


def is_closed(row: dict) -> bool:
    """Whether a case (a row of :func:`fetch_rows`) is ``closed`` for Open311: closed in the case
    view (services/intake/caseview.py ``closed_now``), or in a state that ends it."""
    state = row.get("state")
    return closed_now(state, row.get("closed"), row.get("reopen_count")) or state in ENDING_STATES


def status_notes(state: str | None, closed: bool, outcome: str | None = None) -> str:
    """``"<zh-CN label> <English>"`` of the case state, e.g. ``"已派遣 dispatched"``; a closed case
    adds how it ended, e.g. ``"已结案 closed: 已解决 resolved"``."""
    key = state or ("closed" if closed else "reported")
    zh, en = STATE_NOTES.get(key, (key, key.replace("_", " ")))
    if closed and outcome:
        return f"{zh} {en}: {OUTCOME_LABELS.get(outcome, outcome)} {OUTCOME_NOTES_EN.get(outcome, outcome)}"
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
    closed = is_closed(row)
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
        "status_notes": status_notes(row.get("state"), closed, row.get("outcome")),
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
