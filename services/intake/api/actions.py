"""``POST /v1/cases/{id}/actions``: an actor asks for an action on a case. Checked here against
the case view (services/intake/domain/actions.py) and published to dispatch as
``CaseActionRequested``; every answer from 403 on is kept in the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from services.intake.dependencies import intake_of, sees, visible_case
from services.intake.domain.actions import API_ACTIONS, allowed_actions
from services.intake.domain.audit import request_entry
from services.intake.schemas import ActionIn
from services.intake.store import add_audit_entry, load_case, request_action
from shared.contract.events import CaseActionRequested, derive_id
from shared.domain.pii import mask_text
from shared.platform.auth import Principal
from shared.platform.authhttp import caller, forbidden
from shared.platform.http import error_response

router = APIRouter()


@router.post("/v1/cases/{case_id}/actions", status_code=202)
async def post_action(
    case_id: uuid.UUID,
    body: ActionIn,
    request: Request,
    who: Principal = Depends(caller),
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
):
    """Ask for an action on a case. 404 when the case is outside the caller's scope; 403 when
    the caller's role may not take this action (shared/platform/auth.py ROLE_ACTIONS). Checked against
    the case's current state (intake's case view): an illegal action gets 409 with the state
    and the allowed actions and changes nothing; a legal one is published to dispatch (202),
    which applies it against its own state (authoritative; a race with another actor ends in
    ``case.action_rejected``). Every answer from 403 on is kept in the audit trail; the actor
    recorded is the credential (role and id), not ``actor_role``/``actor_ref`` of the body."""
    svc = intake_of(request)
    if body.action not in API_ACTIONS:
        return error_response(422, "unknown_action", f"action must be one of {', '.join(API_ACTIONS)}",
                              field="action")
    now = datetime.now(timezone.utc)

    def entry(tenant: str, state: str, outcome: str, detail: str) -> dict:
        """The audit record of this request (the caller's credential as the actor)."""
        return request_entry(case_id, tenant, now, who, body.action, state, outcome, detail)

    async def refuse(tenant: str, state: str, detail: str) -> None:
        await add_audit_entry(svc.engine, entry(tenant, state, "refused", detail))

    found = await load_case(svc.engine, case_id)
    if found is not None and not sees(who, found):
        # a probe from outside the scope: kept, answered as "no case"
        await refuse(found["tenant"], found["state"], "404 outside the caller's scope")
    view = visible_case(found, who, case_id)
    if body.target_department and not svc.knows_department(view["tenant"], body.target_department):
        return error_response(422, "unknown_department",
                              f"target_department {body.target_department[:40]!r} is not a department of the "
                              "taxonomy or of the tenant", field="target_department")
    if not who.may_act(body.action):
        await refuse(view["tenant"], view["state"], "403 role may not take this action")
        raise forbidden(f"role {who.role} may not {body.action}", role=who.role, action=body.action)
    state, allowed = allowed_actions(view)
    if body.action not in allowed:
        await refuse(view["tenant"], state, "409 illegal_action")
        return error_response(
            409, "illegal_action", f"{body.action} is not allowed in state {state}",
            state=state, allowed_actions=list(allowed),
        )
    event_id = derive_id(case_id, "action", who.subject, idempotency_key) if idempotency_key else uuid.uuid4()
    command = CaseActionRequested(
        event_id=event_id,
        occurred_at=now,
        case_id=case_id,
        tenant=view["tenant"],
        place_code=view["report"]["place_code"],
        action=body.action,
        actor_role=who.role,
        actor_ref=who.subject,
        note=mask_text(body.note),
        evidence=tuple(mask_text(e) for e in body.evidence),
        target_department=body.target_department,
        extension_days=body.extension_days,
    )
    added = await request_action(svc.engine, command, entry(view["tenant"], state, "requested", command.note))
    svc.relay.wake()
    return {"case_id": str(case_id), "action": body.action, "status": "accepted", "duplicate": added == 0,
            "state": state}
