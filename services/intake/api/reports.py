"""``POST /v1/reports``: one report (JSON ``ReportIn``, optional ``Idempotency-Key``) → 202 with
its case id, stored with its ``CaseReported`` event (services/intake/service.py ``Intake.store``).

Free text (issue 15, docs/classifier.md §3–§4): a report without ``category_code`` gets the
tenant's model's category and confidence (below the tenant's threshold: ``未分类``, triage, with the
top three suggestions); a code the tenant does not know is refused (422 ``unknown_category`` with
the ``nearest`` valid codes); the answer lists the ``possible_duplicates``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from services.intake.classify import unknown_category
from services.intake.dependencies import intake_of, scope_refusal, sees, where_refusal
from services.intake.domain.reports import case_id_for, scoped_key
from services.intake.schemas import ReportAccepted, ReportIn
from services.intake.store import load_case
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
    that does not report; 422 for an unknown tenant, place or category (``nearest`` codes);
    409 ``duplicate_source`` when the ``source``/``source_id`` already names a report outside
    the caller's scope (its case id is not disclosed)."""
    svc = intake_of(request)
    scope_refusal(who, REPORT, report.tenant, report.place_code)
    if refusal := where_refusal(svc, report.tenant, report.place_code):
        return refusal
    config = svc.tenants[report.tenant]
    nearest = unknown_category(svc.classifiers, report, config)
    if nearest is not None:
        return error_response(422, "unknown_category", f"category {report.category_code!r} is not in the taxonomy "
                              f"nor one of tenant {report.tenant!r}'s categories", field="category_code",
                              nearest=nearest)
    report, classified = svc.classify(report)
    key = scoped_key(who, idempotency_key)
    case_id = case_id_for(report, key)
    new = await svc.store([(report, case_id, key)], who, {case_id: classified})
    if case_id not in new:
        stored = await load_case(svc.engine, case_id)
        if stored is None or not sees(who, stored):
            return error_response(409, "duplicate_source", "this source and source_id already name a report "
                                  "outside your scope; nothing was stored", field="source_id")
    probe = Report(str(case_id), report.category_code, report.place_code, report.reported_at,
                   mask_text(report.description), report.latitude, report.longitude)
    duplicates = await find_duplicates(svc.engine, report.tenant, probe,
                                       timedelta(days=config.text.duplicate_window_days))
    return ReportAccepted(case_id=case_id, duplicate=case_id not in new, category_code=report.category_code,
                          possible_duplicates=[d for d in duplicates if who.sees_place(report.tenant, d["place_code"])],
                          **classified.answer())
