"""``GET /v1/cases/{id}`` (a case's report, state and history) and ``GET /v1/cases/{id}/audit``
(its audit trail); both 404 outside the caller's scope."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from services.intake.dependencies import foreign_probe, intake_of, visible_case
from services.intake.store import audit_trail, load_case
from shared.platform.auth import Principal
from shared.platform.authhttp import caller

router = APIRouter()


@router.get("/v1/cases/{case_id}")
async def get_case(case_id: uuid.UUID, request: Request, who: Principal = Depends(caller)):
    """A case's report (without personal data; free text masked), its current state from the
    case view, and its lifecycle history in order (404 outside the caller's scope; a read from
    another tenant's credential is kept in the security log)."""
    svc = intake_of(request)
    found = await load_case(svc.engine, case_id)
    await foreign_probe(svc, who, request, found, case_id)
    return visible_case(found, who, case_id)


@router.get("/v1/cases/{case_id}/audit")
async def get_audit(case_id: uuid.UUID, request: Request, who: Principal = Depends(caller)):
    """The case's audit trail, oldest first: ``{"case_id", "entries": [{"at", "recorded_at",
    "actor_ref", "actor_role", "action", "from_state", "to_state", "outcome", "detail"}]}``.
    ``outcome``: requested (asked at intake), applied (dispatch's transition), rejected
    (dispatch refused it, with its reason), refused (intake refused: 403, or 404 outside the
    caller's scope). Visible to
    whoever may see the case (404 otherwise)."""
    svc = intake_of(request)
    found = await load_case(svc.engine, case_id)
    await foreign_probe(svc, who, request, found, case_id)
    visible_case(found, who, case_id)
    return {"case_id": str(case_id), "entries": await audit_trail(svc.engine, case_id)}
