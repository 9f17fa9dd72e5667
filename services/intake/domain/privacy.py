"""What of a report is personal and how it is kept (issue 6): the sealed part (encrypted at rest,
AES-256-GCM, shared/platform/crypto.py), the key ring that seals it, what a case shows of its
report, and what anonymisation after closure leaves of it."""

from __future__ import annotations

from services.intake.schemas import ReportIn
from services.intake.settings import IntakeSettings
from shared.domain.pii import mask_text
from shared.platform.crypto import Keyring

#: Free-text fields of a stored report that are masked again when a case is shown.
_MASKED_WHEN_SHOWN = ("description", "category_name", "channel", "request_type", "source", "source_id")
#: The fields of the stored report that ``GET /v1/cases/{id}`` shows (no personal data).
_SHOWN = ("category_code", "category_name", "place_code", "description", "channel", "request_type", "urgency",
          "reported_at", "source", "source_id")


def sealed_part(report: ReportIn, masked_description: str) -> dict | None:
    """What of a report is sealed (encrypted at rest): ``{"reporter": contact, "description":
    the unmasked text}``, each only when present (the description only when masking changed it,
    ``masked_description`` being ``mask_text(report.description)``); ``None`` when there is
    nothing personal. The stored report keeps the masked description."""
    part: dict = {}
    if report.reporter is not None:
        part["reporter"] = report.reporter.model_dump(mode="json")
    if report.description and masked_description != report.description:
        part["description"] = report.description
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


def anonymised_report(stored: dict) -> dict:
    """What anonymisation leaves of a stored report: the description masked again (the sealed
    part, contact and unmasked text, is dropped beside it)."""
    report = dict(stored)
    report["description"] = mask_text(report.get("description") or "")
    return report
