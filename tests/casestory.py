"""Hand-built case events for fold and KPI tests: :class:`CaseStory` writes down what happens to one
case and yields the events dispatch would publish for it (services/dispatch/domain/events.py: the
``dispatch`` step as ``case.dispatched``, every other step as ``case.transitioned``, numbered by
``sequence``; each step carries the department and rung before and after it and the counters
after it), so a test reads as the story it tells.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.contract.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseTransferred,
    CaseTransitioned,
    RecordedOutcome,
    RecordedTransfer,
)

_KEEP = object()

#: The counter each action raises (the Case counters of services/dispatch/domain/lifecycle/model.py).
_COUNTERS = {"transfer": "transfer_count", "return": "return_count", "verify_fail": "rework_count",
             "reopen": "reopen_count", "recategorize": "recategorize_count"}


class CaseStory:
    """The events of one live case, step by step. ``steps=False`` on a step leaves its
    ``from_department`` / ``from_mediation_level`` out (events from before those fields existed)."""

    def __init__(self, tenant: str, name: str, reported_at: datetime, *, channel: str = "grid_worker",
                 urgency: str = "一般", category: str = "100401", place: str = "990102001001001") -> None:
        self.case_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{name}")
        self.tenant, self.place = tenant, place
        self.state, self.department, self.rung, self.target_kind, self.deadline = "reported", None, None, None, None
        self.seq = 0
        self.counts = dict.fromkeys(_COUNTERS.values(), 0)
        self.events: list = [CaseReported(
            event_id=uuid.uuid4(), occurred_at=reported_at, reported_at=reported_at, category_code=category,
            channel=channel, urgency=urgency, **self._base())]

    def _base(self) -> dict:
        return {"case_id": self.case_id, "tenant": self.tenant, "place_code": self.place}

    def step(self, action: str, to_state: str, at: datetime, *, department=_KEEP, rung=_KEEP, target_kind=_KEEP,
             deadline=_KEEP, place: str | None = None, from_fields: bool = True, **fields) -> CaseStory:
        """One step into ``to_state`` at ``at``; ``department``, ``rung`` (mediation level),
        ``target_kind`` and ``deadline`` change only when given; ``place`` moves the case (a
        recategorization); ``fields``: outcome, satisfaction, resident_resolved, category_code, …"""
        self.seq += 1
        before = {"from_department": self.department, "from_mediation_level": self.rung} if from_fields else {}
        if department is not _KEEP:
            self.department = department
        if rung is not _KEEP:
            self.rung = rung
        if target_kind is not _KEEP:
            self.target_kind = target_kind
        if deadline is not _KEEP:
            self.deadline = deadline
        if place is not None:
            self.place = place
        if action in _COUNTERS:
            self.counts[_COUNTERS[action]] += 1
        if action == "dispatch":
            self.events.append(CaseDispatched(
                event_id=uuid.uuid4(), occurred_at=at, target_kind=self.target_kind, department=self.department,
                rule="test", mediation_level=self.rung, deadline=self.deadline, sequence=self.seq, state=to_state,
                from_department=before.get("from_department"), category_code=fields.get("category_code"),
                **self._base()))
        else:
            self.events.append(CaseTransitioned(
                event_id=uuid.uuid4(), occurred_at=at, action=action, from_state=self.state, to_state=to_state,
                actor_role="test", sequence=self.seq, department=self.department, target_kind=self.target_kind,
                mediation_level=self.rung, deadline=self.deadline, **before, **self.counts, **fields, **self._base()))
        self.state = to_state
        return self

    def accept_and_file(self, at: datetime) -> CaseStory:
        """accept (reported→accepted) and file (accepted→filed) at ``at``."""
        return self.step("accept", "accepted", at).step("file", "filed", at)

    def dispatch(self, at: datetime, department: str, *, deadline: datetime | None = None, **fields) -> CaseStory:
        """To a department (``dispatched``), or with ``department="mediation"`` and ``rung`` to mediation."""
        deadline = _KEEP if deadline is None else deadline
        if department == "mediation":
            return self.step("dispatch", "mediating", at, department=department, target_kind="mediation",
                             deadline=deadline, **fields)
        return self.step("dispatch", "dispatched", at, department=department, target_kind="department",
                         rung=None, deadline=deadline, **fields)

    def close(self, at: datetime, outcome: str = "resolved") -> CaseStory:
        """acknowledged → in_progress → resolved → checking → closed (verify_pass) at ``at``."""
        if self.state == "dispatched":
            self.step("acknowledge", "acknowledged", at)
        return (self.step("start", "in_progress", at).step("resolve", "resolved", at, outcome=outcome)
                .step("begin_check", "checking", at).step("verify_pass", "closed", at, outcome=outcome))


def history_case(tenant: str, name: str, reported_at: datetime, department: str, *, transfers=(),
                 closed_at: datetime | None = None, place: str = "990102001001001") -> list:
    """The events of a history record as dispatch replays it (services/dispatch/domain/reports.py):
    report, recorded dispatch, recorded transfers ``[(to_department, at), …]``, recorded closure."""
    case_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{name}")
    base = {"case_id": case_id, "tenant": tenant, "place_code": place}
    history = RecordedOutcome(department=department, closed=closed_at is not None, closed_at=closed_at,
                              transfers=tuple(RecordedTransfer(to_department=d, at=t) for d, t in transfers))
    events = [
        CaseReported(event_id=uuid.uuid4(), occurred_at=reported_at, reported_at=reported_at, category_code="100401",
                     channel="12345", source="import", history=history, **base),
        CaseDispatched(event_id=uuid.uuid4(), occurred_at=reported_at, target_kind="department", department=department,
                       rule="history", history=True, **base),
    ]
    current = department
    for seq, (to, t) in enumerate(transfers, start=1):
        events.append(CaseTransferred(event_id=uuid.uuid4(), occurred_at=t, from_department=current, to_department=to,
                                      sequence=seq, history=True, **base))
        current = to
    if closed_at is not None:
        events.append(CaseClosed(event_id=uuid.uuid4(), occurred_at=closed_at, closed_at=closed_at, history=True,
                                 **base))
    return events
