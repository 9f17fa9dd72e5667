"""The events dispatch publishes for what happened to a case (pure; the event types themselves are
the contract, shared/contract/events.py).

- The dispatch transition is published as ``case.dispatched`` (department, rule, deadline); every
  other transition as ``case.transitioned``; each carries the case's transition ``sequence``.
- Each carries what the closed loop counts (docs/domain.md §3(c)): the department and mediation
  rung before the step (``from_department``, ``from_mediation_level``) beside those after it, the
  unit, the outcome an ending step recorded, a callback's rating, a corrected category (and the
  case's place in the envelope, which a correction may have changed), the reopen and
  recategorization counts.
- A refused action yields ``case.action_rejected`` (state, allowed actions, reason).
- Every event a requested action produced names it: ``action_id`` (the request's ``action_id``,
  else its ``event_id``), so the requester learns the outcome of its own request.

Event ids are derived from the case and the sequence number (``derive_id``), so deriving them again
after a crash yields the same ids and consumers skip them.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from services.dispatch.domain.lifecycle import IllegalAction, Transition
from shared.contract.events import (
    CaseActionRejected,
    CaseActionRequested,
    CaseDispatched,
    CaseTransitioned,
    Envelope,
    derive_id,
)


def action_id_of(cmd: CaseActionRequested) -> uuid.UUID:
    """The id that names a requested action: intake's ``action_id``, else the event's id."""
    return cmd.action_id or cmd.event_id


def transition_events(case_id, tenant: str, place_code: str, transitions: tuple[Transition, ...],
                      first_seq: int, rule: str | None = None,
                      action_id: uuid.UUID | None = None) -> list[Envelope]:
    """Events for ``transitions`` numbered from ``first_seq`` (ids derived from case and number);
    ``action_id`` names the requested action they answer (``None`` for dispatch's own steps).
    ``place_code`` is the case's place unless a transition carries another (a correction)."""
    events: list[Envelope] = []
    for seq, t in enumerate(transitions, start=first_seq):
        common = {"case_id": case_id, "tenant": tenant, "place_code": t.place_code or place_code,
                  "occurred_at": t.at, "sequence": seq, "mediation_level": t.mediation_level,
                  "deadline": t.deadline, "action_id": action_id, "from_department": t.from_department,
                  "category_code": t.category_code, "unit": t.unit}
        if t.action == "dispatch":
            events.append(
                CaseDispatched(
                    event_id=derive_id(case_id, "case.dispatched", seq),
                    target_kind=t.target_kind or "department",
                    department=t.department or "triage",
                    rule=(t.rule or rule or "lifecycle")[:120],
                    state=t.to_state,
                    **common,
                )
            )
        else:
            events.append(
                CaseTransitioned(
                    event_id=derive_id(case_id, "case.transitioned", seq),
                    action=t.action,
                    from_state=t.from_state,
                    to_state=t.to_state,
                    actor_role=t.actor_role,
                    actor_ref=t.actor_ref,
                    reason=(t.reason or t.note or "")[:500],
                    department=t.department,
                    target_kind=t.target_kind,
                    transfer_count=t.transfer_count,
                    return_count=t.return_count,
                    rework_count=t.rework_count,
                    supervision_level=t.supervision_level,
                    from_mediation_level=t.from_mediation_level,
                    outcome=t.outcome,
                    duplicate_of=t.duplicate_of,
                    satisfaction=t.satisfaction,
                    resident_resolved=t.resident_resolved,
                    reopen_count=t.reopen_count,
                    recategorize_count=t.recategorize_count,
                    **common,
                )
            )
    return events


def action_rejected(cmd: CaseActionRequested, tenant: str, place_code: str, refusal: IllegalAction,
                    now: datetime) -> CaseActionRejected:
    """The ``case.action_rejected`` event of a refused action (its id derived from the request's)."""
    return CaseActionRejected(
        event_id=derive_id(cmd.event_id, "rejected"),
        occurred_at=now,
        case_id=cmd.case_id,
        tenant=tenant,
        place_code=place_code,
        action=cmd.action,
        state=refusal.current_state,
        allowed_actions=tuple(refusal.allowed_actions),
        reason=str(refusal.reason)[:500],
        action_id=action_id_of(cmd),
    )
