"""A report becomes a case: where it may be (the tenant's places), its case id (derived, so a
retried POST or a re-import lands on the same case) and its ``CaseReported`` event (no personal
data)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from pydantic import BaseModel

from services.intake.domain.privacy import masked_fields
from services.intake.domain.taxonomy import taxonomy
from services.intake.schemas import ReportIn
from shared.contract.events import CaseReported, derive_id
from shared.domain.pii import pseudonym
from shared.domain.tenants import TenantConfig
from shared.platform.auth import Principal


def to_event(report: ReportIn, case_id: uuid.UUID, secret: bytes, masked: dict | None = None) -> CaseReported:
    """Build the ``CaseReported`` event of an accepted report: personal data dropped (only a
    pseudonymous ``reporter_ref``), free text and identifier-like fields masked with the
    reporter's known data and the patterns (services/intake/domain/privacy.py ``masked_fields``;
    ``masked`` when the caller has masked them already)."""
    contact = report.reporter
    masked = masked if masked is not None else masked_fields(report)
    return CaseReported(
        event_id=derive_id(case_id, "case.reported"),
        occurred_at=report.reported_at,
        case_id=case_id,
        tenant=report.tenant,
        place_code=report.place_code,
        category_code=masked["category_code"],
        category_name=masked["category_name"],
        description=masked["description"],
        channel=masked["channel"],
        request_type=masked["request_type"],
        urgency=report.urgency,
        reported_at=report.reported_at,
        source=masked["source"],
        source_id=masked["source_id"],
        reporter_ref=pseudonym(secret, contact.phone, contact.id_number, contact.name) if contact else None,
        history=report.history,
        flags=tuple(report.flags),
    )


def category_problem(report: ReportIn) -> str | None:
    """Why the ``category_code`` of a report posted to the API cannot be taken (``None`` if it
    can): it must name a category of the taxonomy (shared/data/taxonomy.yaml) unless the report is
    a historical record (``history``). Imports, records of other systems, keep their source's own
    category and are not checked here; like every identifier field it is masked before it leaves
    intake (issue 16: a free-text "code" carried names and phones into events, statistics keys and
    exports)."""
    code = report.category_code
    if code is None or report.history is not None or taxonomy().category(code) is not None:
        return None
    return "category_code is not a category of the taxonomy (shared/data/taxonomy.yaml); the value is not echoed"


def place_problem(tenant: TenantConfig, place_code: str) -> str | None:
    """Why ``place_code`` cannot be a place of ``tenant`` (``None`` if it can): the code must be a
    listed place or lie under one (e.g. a building under a listed grid)."""
    if tenant.places and tenant.owner(place_code) is None:
        return f"place {place_code!r} is not in tenant {tenant.tenant!r}'s place hierarchy"
    return None


def case_id_for(report: ReportIn, idempotency_key: str | None) -> uuid.UUID:
    """The case id: derived from (tenant, source, source_id) for records that carry a source id,
    from (tenant, Idempotency-Key) for retried API calls, random otherwise. Derived ids make a
    re-import or a retried POST land on the same case instead of creating a second one. The API
    passes the key already prefixed with the caller's credential id (:func:`scoped_key`), so two
    callers' keys never meet."""
    if report.source_id:
        return derive_id(report.tenant, report.source, report.source_id)
    if idempotency_key:
        return derive_id(report.tenant, "idempotency-key", idempotency_key)
    return uuid.uuid4()


def scoped_key(who: Principal, idempotency_key: str | None) -> str | None:
    """An ``Idempotency-Key`` made the caller's own (``<credential id>:<key>``): a key is a
    client's promise about its own retries, and another caller's equal key must neither land on
    nor reveal that caller's case."""
    return f"{who.subject}:{idempotency_key}" if idempotency_key else None


def fingerprint(secret: bytes, body: BaseModel) -> str:
    """The keyed fingerprint of a request body (HMAC-SHA256 over its canonical JSON: fields
    sorted, defaults filled in), kept beside an ``Idempotency-Key`` so that a repeat with a
    different body is told from a retry (issue 16: 422 ``idempotency_key_reused``). Keyed with
    the pseudonym secret: the body may hold a phone number, and a plain hash of it could be
    reversed by trying numbers."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(secret, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
