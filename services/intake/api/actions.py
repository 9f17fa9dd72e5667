"""``POST /v1/cases/{id}/actions``: an actor asks for an action on a case; intake checks its shape,
the caller's role and scope, records it (``intake.case_actions``) and publishes it to dispatch as
``CaseActionRequested``. Dispatch alone decides whether it is legal; ``GET
/v1/cases/{id}/actions/{action_id}`` tells what it decided, and ``Prefer: wait=N`` (RFC 7240) on
either waits for the decision. Every request answered from 403 on is kept in the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.intake.dependencies import foreign_probe, intake_of, sees, visible_case
from services.intake.domain.audit import request_entry
from services.intake.domain.privacy import max_length
from services.intake.domain.reports import fingerprint, place_problem
from services.intake.domain.taxonomy import taxonomy
from services.intake.schemas import ActionIn
from services.intake.service import Intake
from services.intake.store import (
    action_fingerprint,
    add_audit_entry,
    load_action,
    load_case,
    request_action,
)
from shared.contract.actions import REQUESTABLE_ACTIONS
from shared.contract.events import CaseActionRequested, derive_id
from shared.domain.personal import mask_personal
from shared.platform.auth import Principal
from shared.platform.authhttp import caller, forbidden, not_found
from shared.platform.http import error_response
from shared.platform.prefer import preferred_wait

router = APIRouter()

#: The longest ``Prefer: wait`` honoured, in seconds (a longer one waits this long).
MAX_WAIT_SECONDS = 30


def action_answer(case_id: uuid.UUID, action: dict, wait: int | None, **extra) -> JSONResponse:
    """The answer about an action: 202 while pending, 200 once applied, 409 ``action_refused``
    once refused (dispatch's reason, the state and the actions allowed in it); ``Location`` names
    the action, ``Preference-Applied`` the wait honoured."""
    body = jsonable_encoder({**action, **extra})
    if action["status"] == "refused":
        # the shared error body (shared/platform/http.py), built here: it carries a "status" field
        message = f"{action['action']} was refused in state {action['state']}: {action['reason']}"
        response = JSONResponse(status_code=409, content={"error": "action_refused", "message": message, **body})
    else:
        response = JSONResponse(status_code=200 if action["status"] == "applied" else 202, content=body)
    response.headers["Location"] = f"/v1/cases/{case_id}/actions/{action['action_id']}"
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait}"
    return response


async def decided(svc: Intake, case_id: uuid.UUID, action: dict, wait: int | None) -> dict:
    """``action``, or what dispatch decided about it within ``wait`` seconds (when given)."""
    if wait is None or action["status"] != "pending":
        return action
    return await svc.decision(case_id, uuid.UUID(action["action_id"]), wait) or action


@router.post("/v1/cases/{case_id}/actions", status_code=202, responses={
    200: {"description": "applied by dispatch (with `Prefer: wait`, or a repeated Idempotency-Key)"},
    409: {"description": "`action_refused`: refused by dispatch (with `Prefer: wait`, or a repeat)"}})
async def post_action(
    case_id: uuid.UUID,
    body: ActionIn,
    request: Request,
    who: Principal = Depends(caller),
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
):
    """Ask for an action on a case. 404 when the case is outside the caller's scope; 403 when
    the caller's role may not take this action (shared/platform/auth.py ROLE_ACTIONS); 422 for a
    malformed request (an unknown action, outcome or rating, a category not in the taxonomy, a
    place not of the tenant, an unknown department, a ``duplicate_of`` that is not a case of the
    tenant the caller can see: ``unknown_original``). Otherwise the action is recorded and
    published to dispatch, which alone decides whether the case's state allows it: 202
    ``{"action_id", "status": "pending", "case_id", "action", …}`` with ``Location`` naming the
    action (``GET /v1/cases/{id}/actions/{action_id}``). With ``Prefer: wait=N`` (RFC 7240; N at
    most 30 seconds) the answer waits for dispatch's decision: 200 ``{"status": "applied",
    "state", …}``, 409 ``{"error": "action_refused", "status": "refused", "reason", "state",
    "allowed_actions", "action_id"}``, or 202 pending if not decided within N seconds
    (``Preference-Applied: wait=N``). The same ``Idempotency-Key`` from the same credential names
    the same action: a repeat changes nothing and answers about that action; a repeat with a
    different body is 422 ``idempotency_key_reused`` (not applied). Every answer from 403 on is
    kept in the audit trail, except a probe from another tenant's credential, which goes to the
    security log (``GET /v1/security-log``, admin); the actor recorded is the credential (role
    and id), not ``actor_role``/``actor_ref`` of the body."""
    svc = intake_of(request)
    if body.action not in REQUESTABLE_ACTIONS:
        return error_response(422, "unknown_action", f"action must be one of {', '.join(REQUESTABLE_ACTIONS)}",
                              field="action")
    now = datetime.now(UTC)

    def entry(tenant: str, state: str, outcome: str, detail: str) -> dict:
        """The audit record of this request (the caller's credential as the actor)."""
        return request_entry(case_id, tenant, now, who, body.action, state, outcome, detail)

    found = await load_case(svc.engine, case_id)
    # a probe from outside the scope: kept, answered as "no case"; from another tenant in the
    # security log (the admin's), not in the audit trail the case's tenant reads
    foreign = await foreign_probe(svc, who, request, found, case_id, body.action)
    if found is not None and not sees(who, found) and not foreign:
        await add_audit_entry(svc.engine, entry(found["tenant"], found["state"], "refused",
                                                "404 outside the caller's scope"))
    view = visible_case(found, who, case_id)
    if refusal := shape_refusal(svc, view["tenant"], body):
        return refusal
    if not who.may_act(body.action):
        await add_audit_entry(svc.engine, entry(view["tenant"], view["state"], "refused",
                                                "403 role may not take this action"))
        raise forbidden(f"role {who.role} may not {body.action}", role=who.role, action=body.action)
    if body.duplicate_of is not None and (refusal := await original_refusal(svc, who, view["tenant"], body.duplicate_of)):
        return refusal
    action_id = derive_id(case_id, "action", who.subject, idempotency_key) if idempotency_key else uuid.uuid4()
    digest = fingerprint(svc.secret, body) if idempotency_key else None
    if idempotency_key:
        asked, first_digest = await action_fingerprint(svc.engine, action_id)
        if asked and first_digest is not None and first_digest != digest:
            return error_response(422, "idempotency_key_reused", "this Idempotency-Key was first sent with a "
                                  "different body; nothing was applied (use a new key for a new action)",
                                  field="Idempotency-Key", action_id=str(action_id))
    known = await svc.known_personal(case_id)  # the reporter's data, masked in the note and evidence
    command = CaseActionRequested(
        event_id=action_id,
        action_id=action_id,
        occurred_at=now,
        case_id=case_id,
        tenant=view["tenant"],
        place_code=view["report"]["place_code"],
        action=body.action,
        actor_role=who.role,
        actor_ref=who.subject,
        note=mask_personal(body.note, known, max_length(ActionIn, "note")),
        evidence=tuple(mask_personal(e, known) for e in body.evidence),
        target_department=body.target_department,
        extension_days=body.extension_days,
        outcome=body.outcome,
        duplicate_of=body.duplicate_of,
        satisfaction=body.satisfaction,
        resident_resolved=body.resident_resolved,
        category_code=body.category_code,
        to_place_code=body.to_place_code,
    )
    action, new = await request_action(svc.engine, command, entry(view["tenant"], view["state"], "requested",
                                                                  command.note), digest)
    svc.relay.wake()
    wait = preferred_wait(request.headers.getlist("prefer"), MAX_WAIT_SECONDS)
    return action_answer(case_id, await decided(svc, case_id, action, wait), wait, duplicate=not new)


async def original_refusal(svc: Intake, who: Principal, tenant: str, original_id: uuid.UUID) -> JSONResponse | None:
    """A 422 ``unknown_original`` answer when ``duplicate_of`` names no case the caller can see in the
    case's tenant: the same answer whether it does not exist, is another tenant's or lies outside
    the caller's place scope, so a merge cannot probe which ids are cases (the scope rule of
    ``GET /v1/cases/{id}``); ``None`` when the caller sees it. Whether its state allows the merge
    stays dispatch's decision."""
    original = await load_case(svc.engine, original_id)
    if original is None or original["tenant"] != tenant or not sees(who, original):
        return error_response(422, "unknown_original", f"duplicate_of {original_id} is not a case of this tenant "
                              "that you can see", field="duplicate_of")
    return None


def shape_refusal(svc: Intake, tenant: str, body: ActionIn) -> JSONResponse | None:
    """A 422 answer when the request names a department, category or place that does not exist
    (the taxonomy; the tenant's own departments and places); ``None`` when it names none."""
    if body.target_department and not svc.knows_department(tenant, body.target_department):
        return error_response(422, "unknown_department",
                              f"target_department {body.target_department[:40]!r} is not a department of the "
                              "taxonomy or of the tenant", field="target_department")
    if body.category_code and taxonomy().category(body.category_code) is None:
        return error_response(422, "unknown_category",
                              f"category_code {body.category_code[:40]!r} is not a category of the taxonomy",
                              field="category_code")
    if body.to_place_code:
        config = svc.tenants.get(tenant)
        problem = (place_problem(config, body.to_place_code) if config is not None
                   else f"tenant {tenant!r} is not configured here: its places are unknown")
        if problem:
            return error_response(422, "unknown_place", problem, field="to_place_code")
    return None


@router.get("/v1/cases/{case_id}/actions/{action_id}")
async def get_action(case_id: uuid.UUID, action_id: uuid.UUID, request: Request, who: Principal = Depends(caller)):
    """An action asked for on the case: ``{"action_id", "case_id", "action", "status", "reason",
    "state", "allowed_actions", "requested_at", "decided_at"}``; ``status`` pending, applied or
    refused (then ``reason``, ``state`` and ``allowed_actions`` are dispatch's). Always 200 when
    found (a refused action is a fact about the request, not an error of this read); ``Prefer:
    wait=N`` waits up to N seconds (at most 30) for the decision. 404 when the case is outside the
    caller's scope or the action is not one of the case's."""
    svc = intake_of(request)
    found = await load_case(svc.engine, case_id)
    await foreign_probe(svc, who, request, found, case_id)  # from another tenant: the security log
    visible_case(found, who, case_id)
    action = await load_action(svc.engine, case_id, action_id)
    if action is None:
        raise not_found(f"no action {action_id} on case {case_id}", field="action_id")
    wait = preferred_wait(request.headers.getlist("prefer"), MAX_WAIT_SECONDS)
    action = await decided(svc, case_id, action, wait)
    headers = {"Preference-Applied": f"wait={wait}"} if wait is not None else {}
    return JSONResponse(content=jsonable_encoder(action), headers=headers)
