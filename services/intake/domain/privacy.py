"""What of a report is personal and how it is kept (issue 6): the sealed part (encrypted at rest,
AES-256-GCM, shared/platform/crypto.py), the key ring that seals it, what a case shows of its
report, and what anonymisation after closure leaves of it."""

from __future__ import annotations

from functools import cache

from services.intake.schemas import ReportIn
from services.intake.settings import IntakeSettings
from shared.domain.personal import KnownPersonal, mask_personal
from shared.domain.pii import mask_text
from shared.platform.crypto import Keyring

#: Fields of a report masked before they leave intake (shared/domain/personal.py ``mask_personal``:
#: the reporter's known data and the patterns); the stored report keeps them masked too, the
#: original of any that masking changed goes to the sealed part.
MASKED_FIELDS = ("description", "category_code", "category_name", "channel", "request_type", "source", "source_id")

#: Free-text fields of a stored report that are masked again when a case is shown.
_MASKED_WHEN_SHOWN = ("description", "category_name", "channel", "request_type", "source", "source_id")
#: The fields of the stored report that ``GET /v1/cases/{id}`` shows (no personal data).
_SHOWN = ("category_code", "category_name", "place_code", "description", "channel", "request_type", "urgency",
          "reported_at", "source", "source_id")


def known_of(report: ReportIn) -> KnownPersonal:
    """The personal data the report itself names (its ``reporter``)."""
    return KnownPersonal.of(report.reporter.model_dump(mode="json") if report.reporter is not None else None)


def masked_fields(report: ReportIn) -> dict:
    """The :data:`MASKED_FIELDS` of ``report`` as they may leave intake (events, stored report,
    answers): the reporter's own name, phone, ID number and address masked wherever they occur,
    then the patterns."""
    known = known_of(report)
    return {name: mask_personal(getattr(report, name), known, max_length(ReportIn, name)) for name in MASKED_FIELDS}


@cache  # a field's rules do not change; read once per (model, field), not per report (issue 13)
def max_length(model, name: str) -> int | None:
    """The ``max_length`` of a field of a pydantic model (``None`` when it has none): masked text is
    cut to it, so that it still fits the field, the event and the column."""
    for rule in model.model_fields[name].metadata:
        if hasattr(rule, "max_length"):
            return rule.max_length
    return None


def sealed_part(report: ReportIn, masked: dict) -> dict | None:
    """What of a report is sealed (encrypted at rest): ``{"reporter": contact, "description":
    the unmasked text, "original": {field: unmasked value}}``, each only when present (the
    description and the other fields only when masking changed them, ``masked`` being
    :func:`masked_fields`); ``None`` when there is nothing personal."""
    part: dict = {}
    if report.reporter is not None:
        part["reporter"] = report.reporter.model_dump(mode="json")
    if report.description and masked["description"] != report.description:
        part["description"] = report.description
    original = {name: getattr(report, name) for name in MASKED_FIELDS
                if name != "description" and masked[name] != getattr(report, name)}
    if original:
        part["original"] = original
    return part or None


def keyring_of(settings: IntakeSettings) -> Keyring:
    """The PII key ring from ``INTAKE_PII_KEYS`` (a development key when unset).

    Raises:
        shared.platform.crypto.KeyringError: a malformed key setting (refused at start-up)."""
    return Keyring.parse(settings.pii_keys) if settings.pii_keys.strip() else Keyring.development(settings.pseudonym_key)


def report_as_shown(stored: dict) -> dict:
    """The stored report (``intake.reports.report``) as a case shows it: the shown fields only,
    free text masked again (:func:`shared.domain.pii.mask_text`)."""
    body = dict(stored)
    for name in _MASKED_WHEN_SHOWN:
        if isinstance(body.get(name), str):
            body[name] = mask_text(body[name])
    return {k: body.get(k) for k in _SHOWN}


def anonymised_report(stored: dict, known: KnownPersonal | None = None) -> dict:
    """What anonymisation leaves of a stored report: its free text masked again, with the
    reporter's ``known`` data (the sealed part, opened before it is dropped) and the patterns."""
    report = dict(stored)
    for name in MASKED_FIELDS:
        if isinstance(report.get(name), str):
            report[name] = mask_personal(report[name], known)
    return report
