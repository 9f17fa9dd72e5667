"""What the routes share: the running :class:`~services.intake.service.Intake` of a request, and
the refusals every write and read applies (tenant and place checks, place scope, case visibility).
The caller itself comes from shared/platform/authhttp.py ``caller`` (a FastAPI dependency)."""

from __future__ import annotations

import uuid

from fastapi import Request

from services.intake.domain.audit import security_entry
from services.intake.domain.reports import place_problem
from services.intake.service import Intake
from services.intake.store import add_security_entry
from shared.platform.auth import Principal
from shared.platform.authhttp import forbidden, not_found
from shared.platform.http import error_response


def intake_of(request: Request) -> Intake:
    """The running intake (``app.state.intake``)."""
    return request.app.state.intake


def where_refusal(svc: Intake, tenant: str, place_code: str):
    """A 422 answer when ``tenant`` is not configured or ``place_code`` is not one of its places;
    ``None`` when both are fine."""
    if tenant not in svc.tenants:
        return error_response(422, "unknown_tenant", f"tenant {tenant!r} is not configured", field="tenant")
    problem = place_problem(svc.tenants[tenant], place_code)
    if problem:
        return error_response(422, "unknown_place", problem, field="place_code")
    return None


def scope_refusal(who: Principal, capability: str, tenant: str, place_code: str) -> None:
    """Check that ``who`` may write (``capability``: REPORT or PATROL) at ``place_code`` of ``tenant``.

    Raises:
        HTTPException: 403 ``forbidden`` for a role without the capability or a place outside
            the caller's scope (issue 6 item 2: a write outside one's scope is 403).
    """
    if not who.may(capability):
        raise forbidden(f"role {who.role} may not {capability}", role=who.role)
    if not who.sees_place(tenant, place_code):
        raise forbidden("the place is outside your scope", field="place_code", scope=who.scope or None)


def sees(who: Principal, view: dict) -> bool:
    """Whether ``who`` may see the case ``view`` (its tenant, place and department)."""
    return who.sees_case(view["tenant"], view["report"]["place_code"], view["department"])


def visible_case(view: dict | None, who: Principal, case_id: uuid.UUID) -> dict:
    """``view`` when ``who`` may see the case.

    Raises:
        HTTPException: 404 when there is no such case or it is outside the caller's scope (the
            same answer, so nothing tells that it exists).
    """
    if view is None or not sees(who, view):
        raise not_found(f"no case {case_id}", field="case_id")
    return view


async def foreign_probe(svc: Intake, who: Principal, request: Request, found: dict | None, case_id: uuid.UUID,
                        action: str | None = None) -> bool:
    """Record in the security log a request for the case ``found`` from a credential of another
    tenant (answered 404 as "no case"); return whether it was one. A refusal inside the tenant is
    the tenant's business (its audit trail), not the security log's."""
    if found is None or sees(who, found) or who.tenant == found["tenant"]:
        return False
    await add_security_entry(svc.engine, security_entry(who, request, found["tenant"], case_id, action, 404,
                                                        "case outside the caller's tenant"))
    return True
