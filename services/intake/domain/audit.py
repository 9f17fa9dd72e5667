"""What the audit trail (services/intake/db.py ``audit_log``) records of a case: the report that
opened it, every action asked for at intake (requested or refused), and dispatch's lifecycle
events (applied transitions and dispatches, rejected actions, supervision steps); and what the
security log (``security_log``) records of an attempt from outside a case's tenant."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.intake.schemas import ReportIn
from shared.platform.auth import Principal


def report_entry(report: ReportIn, case_id: uuid.UUID, who: Principal | None, masked: dict) -> dict:
    """The audit record of a newly stored report; the actor is the caller's credential, or
    ``system`` when there is none; the detail names the source and channel as masked
    (services/intake/domain/privacy.py ``masked_fields``)."""
    return {"case_id": case_id, "tenant": report.tenant, "occurred_at": report.reported_at,
            "actor_ref": who.subject if who else "system", "actor_role": who.role if who else "system",
            "action": "report", "from_state": None, "to_state": "reported", "outcome": "applied",
            "detail": f"{masked['source']} {masked['channel']}"[:500]}


def request_entry(case_id: uuid.UUID, tenant: str, occurred_at: datetime, who: Principal, action: str, state: str,
                  outcome: str, detail: str) -> dict:
    """The audit record of an action asked for at intake (``outcome`` requested or refused); the
    actor is the caller's credential (its role and id), not what the request body says."""
    return {"case_id": case_id, "tenant": tenant, "occurred_at": occurred_at, "actor_ref": who.subject,
            "actor_role": who.role, "action": action, "from_state": state, "to_state": None,
            "outcome": outcome, "detail": detail[:500]}


def security_entry(who: Principal, request, target_tenant: str, case_id: uuid.UUID | None, action: str | None,
                   answer: int, reason: str) -> dict:
    """The security-log record of an attempt refused because it came from outside the case's
    tenant: who (the credential, its role and tenant), what (method, path, case, action, the
    answer) and when (``recorded_at``, by the database). Neither the body nor the query string is
    kept (they may carry personal data)."""
    return {"actor_ref": who.subject[:64], "actor_role": who.role[:40], "actor_tenant": who.tenant[:40],
            "method": request.method[:8], "path": request.url.path[:300], "target_tenant": target_tenant,
            "case_id": case_id, "action": (action or None) and action[:40], "answer": answer, "reason": reason[:200]}


def audit_rows_of(events) -> list[dict]:
    """Audit records of lifecycle events: applied transitions and dispatches with their actor,
    refused actions, supervision steps."""
    rows = []
    for e in events:
        base = {"case_id": e.case_id, "tenant": e.tenant, "occurred_at": e.occurred_at, "event_id": e.event_id}
        if e.event_type == "case.transitioned":
            rows.append({**base, "actor_ref": e.actor_ref or "system", "actor_role": e.actor_role, "action": e.action,
                         "from_state": e.from_state, "to_state": e.to_state, "outcome": "applied",
                         "detail": (e.reason or "")[:500]})
        elif e.event_type == "case.dispatched":
            rows.append({**base, "actor_ref": "system", "actor_role": "system", "action": "dispatch",
                         "from_state": None, "to_state": getattr(e, "state", None) or "dispatched", "outcome": "applied",
                         "detail": f"{e.target_kind or ''} {e.department or ''} rule={getattr(e, 'rule', '') or ''}"[:500]})
        elif e.event_type == "case.action_rejected":
            rows.append({**base, "actor_ref": "system", "actor_role": "system", "action": e.action,
                         "from_state": e.state, "to_state": None, "outcome": "rejected", "detail": (e.reason or "")[:500]})
        elif e.event_type == "case.supervised":
            rows.append({**base, "actor_ref": "system", "actor_role": "system", "action": "supervise",
                         "from_state": None, "to_state": None, "outcome": "applied",
                         "detail": f"level {e.level} {getattr(e, 'alert', '') or ''}"[:500]})
    return rows
