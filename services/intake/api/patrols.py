"""``POST /v1/patrols``: a grid worker's inspection round (巡查), published as ``PatrolRecorded``
for reporting to count rounds and points by kind."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from services.intake.dependencies import intake_of, scope_refusal, where_refusal
from services.intake.schemas import PatrolIn
from services.intake.store import record_patrol
from shared.contract.events import PatrolRecorded, derive_id
from shared.domain.personal import pseudonymous_ref
from shared.platform.auth import PATROL, Principal
from shared.platform.authhttp import caller

router = APIRouter()


@router.post("/v1/patrols", status_code=202)
async def post_patrol(patrol: PatrolIn, request: Request, who: Principal = Depends(caller)):
    """Record an inspection round; reporting counts rounds and points by kind (403 outside
    the caller's scope). A ``worker_ref`` that is not a plain code (a name, a phone) leaves
    intake as a pseudonymous reference (shared/domain/personal.py ``pseudonymous_ref``)."""
    svc = intake_of(request)
    scope_refusal(who, PATROL, patrol.tenant, patrol.place_code)
    if refusal := where_refusal(svc, patrol.tenant, patrol.place_code):
        return refusal
    patrol_id = derive_id(patrol.tenant, "patrol", patrol.source_id) if patrol.source_id else uuid.uuid4()
    event = PatrolRecorded(
        event_id=derive_id(patrol_id, "patrol.recorded"),
        occurred_at=patrol.ended_at or patrol.started_at,
        case_id=patrol_id,
        tenant=patrol.tenant,
        place_code=patrol.place_code,
        kind=patrol.kind,
        points=patrol.points,
        started_at=patrol.started_at,
        ended_at=patrol.ended_at,
        worker_ref=pseudonymous_ref(patrol.worker_ref, svc.secret),
        findings=tuple(patrol.findings),
    )
    added = await record_patrol(svc.engine, event)
    svc.relay.wake()
    return {"patrol_id": str(patrol_id), "status": "accepted", "duplicate": added == 0}
