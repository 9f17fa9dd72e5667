"""``GET /v1/security-log``: the attempts refused because they came from outside a case's tenant
(who, what, when), for the admin; they are not in the audit trail the case's tenant reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder

from services.intake.dependencies import intake_of
from services.intake.store import security_entries
from shared.platform.auth import Principal
from shared.platform.authhttp import caller, forbidden

router = APIRouter()


@router.get("/v1/security-log", responses={403: {"description": "`forbidden`: only the admin reads it"}})
async def get_security_log(
    request: Request,
    who: Principal = Depends(caller),
    limit: Annotated[int, Query(ge=1, le=1000, description="records per page, newest first")] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="only records older than this entry_id (paging)")] = None,
):
    """``{"entries": [{"entry_id", "recorded_at", "actor_ref", "actor_role", "actor_tenant",
    "method", "path", "target_tenant", "case_id", "action", "answer", "reason"}]}``, newest
    first. Only the ``admin`` role reads it (403 for every other role): the admin of tenant ``*``
    every record, a tenant's admin the attempts aimed at or made from the tenant."""
    if who.role != "admin":
        raise forbidden("only the admin reads the security log", role=who.role)
    entries = await security_entries(intake_of(request).engine, who.tenant, limit, before)
    return {"entries": jsonable_encoder(entries)}
