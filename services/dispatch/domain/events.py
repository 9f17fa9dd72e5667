"""The events dispatch publishes for what happened to a case (pure; the event types themselves are
the contract, shared/contract/events.py).

- The dispatch transition is published as ``case.dispatched`` (department, rule, deadline); every
  other transition as ``case.transitioned``; each carries the case's transition ``sequence``.
- A refused action yields ``case.action_rejected`` (state, allowed actions, reason).

Event ids are derived from the case and the sequence number (``derive_id``), so deriving them again
after a crash yields the same ids and consumers skip them.
"""

from __future__ import annotations

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


def transition_events(case_id, tenant: str, place_code: str, transitions: tuple[Transition, ...],
                      first_seq: int, rule: str | None = None) -> list[Envelope]:
    """Events for ``transitions`` numbered from ``first_seq`` (ids derived from case and number)."""
    events: list[Envelope] = []
    for seq, t in enumerate(transitions, start=first_seq):
        common = {"case_id": case_id, "tenant": tenant, "place_code": place_code, "occurred_at": t.at,
                  "sequence": seq, "mediation_level": t.mediation_level, "deadline": t.deadline}
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
    )
