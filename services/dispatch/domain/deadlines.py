"""Deadline alerts (docs/domain.md §3(d)4): which timers a case has and what a due one does. Pure.

- Yellow at 80 % of the disposal limit (a warning, state unchanged), red at the deadline (督办:
  supervision level 1, the superior — the street office of the place — named), higher supervision
  5 working days after red (提级督办: level 2).
- A new deadline (extension, resumed shelving) replaces the unfired timers; a closed, cancelled,
  shelved or not yet filed case has none, and a timer that comes due on such a case does nothing.

The timers are rows of ``dispatch.timers`` (services/dispatch/store.py claims, applies and marks
them fired in one transaction, so each fires once even with several dispatch instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.dispatch.domain import lifecycle
from services.dispatch.domain.events import transition_events
from services.dispatch.domain.lifecycle import Case, Transition
from shared.contract.events import CaseSupervised, Envelope, derive_id
from shared.domain.tenants import TenantConfig
from shared.domain.workcalendar import higher_supervision_at, yellow_at

YELLOW, RED, HIGHER = "yellow", "red", "higher"


def timers_for(case: Case, now: datetime, dispatched_at: datetime | None = None) -> list[tuple[str, datetime]]:
    """The ``(kind, due_at)`` timers of ``case`` for its current deadline (none without one)."""
    if case.deadline is None or case.is_terminal or case.state in (lifecycle.SHELVED, lifecycle.REPORTED):
        return []
    red = case.deadline
    timers = []
    if case.supervision_level < 1:
        start = dispatched_at or now
        yellow = yellow_at(start, case.limit) if case.limit and dispatched_at else None
        if yellow is not None and yellow < red:
            timers.append((YELLOW, yellow))
        timers.append((RED, red))
    if case.supervision_level < 2:
        timers.append((HIGHER, higher_supervision_at(red)))
    return timers


@dataclass(frozen=True)
class Alert:
    """What a due timer did: the events to publish and, for red and higher, the supervised case
    and its transitions (``case`` is ``None`` when the case did not change: a yellow warning)."""

    events: list[Envelope]
    case: Case | None = None
    transitions: tuple[Transition, ...] = ()


def fire(kind: str, generation: int, due_at: datetime, case: Case, *, case_id, tenant: str, place_code: str,
         seq: int, tenant_config: TenantConfig | None, now: datetime) -> Alert | None:
    """Apply the ``kind`` timer of deadline version ``generation`` to ``case`` (last transition
    sequence ``seq``); ``None`` when the case is closed, cancelled or shelved.

    Raises:
        IllegalAction: the case cannot be supervised to that level (lifecycle.supervise).
    """
    if case.is_terminal or case.state == lifecycle.SHELVED:
        return None
    base = {"case_id": case_id, "tenant": tenant, "place_code": place_code}
    event_id = derive_id(case_id, "timer", kind, generation)
    if kind == YELLOW:
        return Alert([CaseSupervised(event_id=event_id, occurred_at=due_at, alert="yellow", level=0,
                                     department=case.department, deadline=case.deadline, **base)])
    level = 1 if kind == RED else 2
    new_case, transitions = lifecycle.supervise(case, level, max(now, due_at))
    events = transition_events(case_id, tenant, place_code, transitions, seq + 1)
    superior = lifecycle.unit_at(place_code, "street", tenant_config)
    events.append(CaseSupervised(
        event_id=event_id, occurred_at=due_at, alert="red" if level == 1 else "higher", level=level,
        department=case.department, escalated_to=superior, deadline=case.deadline, **base))
    return Alert(events, new_case, transitions)
