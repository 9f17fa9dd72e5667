"""``POST /v1/reports``: one report (JSON ``ReportIn``, optional ``Idempotency-Key``) → 202 with
its case id, stored with its ``CaseReported`` event (services/intake/service.py ``Intake.store``).

Free text (issue 15, docs/classifier.md §3–§4): a report without ``category_code`` gets the
tenant's model's category and confidence (below the tenant's threshold: ``未分类``, triage, with the
top three suggestions); a code the tenant does not know is refused (422 ``unknown_category`` with
the ``nearest`` valid codes; the refused value is not echoed, issue 16); the answer lists the
``possible_duplicates``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from services.intake.classify import unknown_category
from services.intake.dependencies import intake_of, scope_refusal, sees, where_refusal
from services.intake.domain.reports import case_id_for, fingerprint, scoped_key
from services.intake.schemas import ReportAccepted, ReportIn
from services.intake.store import first_use, load_case
from services.intake.textstore import find_duplicates
from shared.domain.duplicates import Report
from shared.domain.pii import mask_text
from shared.platform.auth import REPORT, Principal
from shared.platform.authhttp import caller
from shared.platform.http import error_response

router = APIRouter()


@router.post("/v1/reports", status_code=202, response_model=ReportAccepted)
async def post_report(
    report: ReportIn,
    request: Request,
    who: Principal = Depends(caller),
    idempotency_key: Annotated[str | None, Header(max_length=160)] = None,
):
    """Accept one report (202 + case id). 403 outside the caller's place scope or for a role
    that does not report; 422 for an unknown tenant or place, ``unknown_category`` (with the
    ``nearest`` valid codes) for a ``category_code`` that is neither a taxonomy code, a category of
    the tenant's rules nor a label of its text model (a record with ``history`` may keep its
    source's own); 409 ``duplicate_source`` when the ``source``/``source_id`` already names a
    report outside the caller's scope (its case id is not disclosed); 422 ``idempotency_key_reused``
    when the ``Idempotency-Key`` was first sent with a different body (nothing is stored; a retry
    with the same body answers 202 ``duplicate: true``)."""
    svc = intake_of(request)
    scope_refusal(who, REPORT, report.tenant, report.place_code)
    if refusal := where_refusal(svc, report.tenant, report.place_code):
        return refusal
    config = svc.tenants[report.tenant]
    nearest = unknown_category(svc.classifiers, report, config)
    if nearest is not None:
        return error_response(422, "unknown_category", "category_code is not a category of the taxonomy "
                              "(shared/data/taxonomy.yaml) nor of the tenant; the value is not echoed",
                              field="category_code", nearest=nearest)
    key = scoped_key(who, idempotency_key)
    digest = fingerprint(svc.secret, report) if key else None  # the body as posted
    masked = mask_text(report.description)  # once: for the model and for the duplicate probe
    report, classified = svc.classify(report, masked)
    case_id = case_id_for(report, key)
    new = await svc.store([(report, case_id, key)], who, digest, {case_id: classified})
    if case_id not in new and key and (used := await first_use(svc.engine, report.tenant, key)) is not None:
        first_case, first_digest = used
        if first_case != case_id or (first_digest is not None and first_digest != digest):
            return error_response(422, "idempotency_key_reused", "this Idempotency-Key was first sent with a "
                                  "different body; nothing was stored (use a new key for a new report)",
                                  field="Idempotency-Key", case_id=str(first_case))
    if case_id not in new:
        stored = await load_case(svc.engine, case_id)
        if stored is None or not sees(who, stored):
            return error_response(409, "duplicate_source", "this source and source_id already name a report "
                                  "outside your scope; nothing was stored", field="source_id")
    probe = Report(str(case_id), mask_text(report.category_code), report.place_code, report.reported_at,
                   masked, report.latitude, report.longitude)
    duplicates = await find_duplicates(svc.engine, report.tenant, probe,
                                       timedelta(days=config.text.duplicate_window_days))
    return ReportAccepted(case_id=case_id, duplicate=case_id not in new, category_code=report.category_code,
                          possible_duplicates=[d for d in duplicates if who.sees_place(report.tenant, d["place_code"])],
                          **classified.answer())
