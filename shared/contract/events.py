"""The event contract: every message gridcase puts on Kafka.

One envelope (``event_id``, ``event_type``, ``schema_version``, ``occurred_at``, ``case_id``,
``tenant``, ``place_code``) and one pydantic model per event type. Events are JSON (UTF-8),
keyed by ``case_id`` so that all events of a case land on one partition of a topic.

Personal data (reporter name, phone, ID number, exact address) never appears here: reports carry
at most a pseudonymous ``reporter_ref``. Free text is masked by intake before it is put in an event.

Versioning: ``schema_version`` is the version of the event type's payload. A consumer accepts the
versions in :data:`SUPPORTED_VERSIONS` and dead-letters any other (a permanent error). A field
added with a default keeps the version (a newer consumer reads older events as they were); since
models forbid unknown fields, consumers are upgraded before the producers that fill new fields.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from shared.contract.actions import Outcome, Satisfaction

#: Namespace for deterministic event and case ids (uuid5); fixed forever, never change it.
GRIDCASE_NAMESPACE = uuid.UUID("6d1f0f5e-3c7b-5a39-9a43-5b2f4d1c8e20")

PLACE_CODE_PATTERN = r"^[0-9A-Za-z]{1,24}$"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"


def derive_id(*parts: object) -> uuid.UUID:
    """Return a deterministic UUID (uuid5 in :data:`GRIDCASE_NAMESPACE`) for ``parts``.

    Used where a redelivered input must produce the same id again: the case id of an imported
    record (tenant, dataset, source id) and the id of an event derived from another event.
    """
    digest = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join([str(p) for p in parts]).encode("utf-8")).digest()
    return uuid.UUID(int=(int.from_bytes(digest[:16], "big") & _VERSION_MASK) | _VERSION_5)


# uuid.uuid5's own steps (RFC 4122 §4.3: SHA-1 of namespace + name, version 5, RFC variant) on
# the integer at once: dispatch derives three ids per new case (issue 13); same ids, about half the time
_NAMESPACE_BYTES = GRIDCASE_NAMESPACE.bytes
_VERSION_MASK = ~((0xc000 << 48) | (0xf000 << 64))
_VERSION_5 = (0x8000 << 48) | (5 << 76)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(_Frozen):
    """Fields every event carries.

    - ``event_id``: unique per event; consumers deduplicate on it (at-least-once transport).
    - ``occurred_at``: when the fact happened in the world (timezone-aware), not when it was sent.
    - ``place_code``: the cumulative place code (docs/domain.md §3(a)) the case belongs to.
    """

    event_id: uuid.UUID
    schema_version: int = 1
    occurred_at: AwareDatetime
    case_id: uuid.UUID
    tenant: str = Field(pattern=TENANT_PATTERN)
    place_code: str = Field(pattern=PLACE_CODE_PATTERN)


class RecordedTransfer(_Frozen):
    """One re-routing recorded by a source system (history import)."""

    to_department: str | None = None
    at: AwareDatetime | None = None


class RecordedOutcome(_Frozen):
    """What a source system recorded about a historical case; dispatch replays it as it happened.

    - ``department``: the department that handled the case (e.g. NYC ``Agency``); ``None`` if the
      source has no department column (then dispatch routes the case by the tenant's table).
    - ``status``: the source's own status value, kept verbatim (e.g. ``Assigned``).
    - ``closed``: whether the source counts the case as closed (per the source's own rule).
    - ``closed_at``: the recorded close time; may be ``None`` for a closed case whose source row
      lacks it (such a case counts as closed but not in time-to-close figures).
    - ``transfers``: re-routings recorded by the source, in order (Fuzhou ``转处理次数``).
    - ``deadline``: the due date the source recorded (NYC ``Due Date``, Baltimore ``DueDate``,
      Boston ``TARGET_DT``), so overdue and on-time figures of history are the source's own;
      ``None`` when the source has none.
    """

    department: str | None = None
    status: str | None = None
    closed: bool = False
    closed_at: AwareDatetime | None = None
    transfers: tuple[RecordedTransfer, ...] = ()
    deadline: AwareDatetime | None = None


class CaseReported(Envelope):
    """A report (上报) was accepted by intake and a case exists. Topic: ``TOPIC_REPORTED``."""

    event_type: Literal["case.reported"] = "case.reported"
    category_code: str = Field(min_length=1, max_length=64)
    category_name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=4000)
    channel: str = Field(default="", max_length=64)
    request_type: str = Field(default="", max_length=32)
    urgency: str = Field(default="一般", max_length=8)
    reported_at: AwareDatetime
    source: str = Field(default="api", max_length=32)
    source_id: str | None = Field(default=None, max_length=128)
    reporter_ref: str | None = Field(default=None, max_length=64)
    history: RecordedOutcome | None = None
    flags: tuple[str, ...] = Field(default=(), description="e.g. violence, crime: a dispute forks to the police")


class CaseDispatched(Envelope):
    """Dispatch (派遣) sent the case to a department, to mediation or to the triage queue.

    ``target_kind`` is ``department``, ``mediation`` or ``triage``; ``rule`` names the routing
    rule that matched (``history`` when a recorded department was replayed).
    """

    event_type: Literal["case.dispatched"] = "case.dispatched"
    target_kind: Literal["department", "mediation", "triage"]
    department: str
    rule: str
    mediation_level: str | None = None
    deadline: AwareDatetime | None = None
    history: bool = False
    sequence: int = Field(default=1, ge=0, description="transition number; later transitions count on from it")
    state: str = Field(default="dispatched", max_length=24)
    action_id: uuid.UUID | None = Field(default=None, description="the requested action this dispatch answers")
    from_department: str | None = Field(default=None, description="the department the case left (re-dispatch)")
    category_code: str | None = Field(default=None, max_length=64, description="set when the action changed the category")
    unit: str | None = Field(default=None, max_length=24, description="place code of the coordinating unit / rung")


class CaseTransferred(Envelope):
    """The case was transferred (转办) from one department to another."""

    event_type: Literal["case.transferred"] = "case.transferred"
    from_department: str | None = None
    to_department: str | None = None
    sequence: int = Field(ge=1)
    history: bool = False


class CaseClosed(Envelope):
    """The case was closed (结案/办结). ``source_status`` keeps a history source's own status."""

    event_type: Literal["case.closed"] = "case.closed"
    closed_at: AwareDatetime | None = None
    source_status: str | None = None
    history: bool = False


class CaseStatusRecorded(Envelope):
    """A history source's status for a case that is still open (e.g. NYC ``Assigned``)."""

    event_type: Literal["case.status_recorded"] = "case.status_recorded"
    source_status: str
    history: bool = True


class CaseActionRequested(Envelope):
    """Command: an actor asks for an action on a case (issue 3 item 6). Topic ``TOPIC_ACTIONS``.

    intake publishes it after checking the request's shape and the caller's role and scope;
    dispatch alone decides it against its own state and answers with ``case.transitioned`` or
    ``case.action_rejected``, each naming ``action_id`` (intake sets it equal to ``event_id``).
    ``actor_ref`` is pseudonymous (no names). ``evidence`` holds references (e.g. photo ids).
    """

    event_type: Literal["case.action_requested"] = "case.action_requested"
    action: str = Field(min_length=1, max_length=40)
    actor_role: str = Field(min_length=1, max_length=40)
    actor_ref: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)
    evidence: tuple[str, ...] = ()
    target_department: str | None = Field(default=None, max_length=100)
    extension_days: int | None = Field(default=None, ge=1, le=60)
    flags: tuple[str, ...] = ()
    action_id: uuid.UUID | None = Field(default=None, description="intake's id of the request; None: event_id")
    outcome: Outcome | None = None
    duplicate_of: uuid.UUID | None = None
    satisfaction: Satisfaction | None = None
    resident_resolved: bool | None = None
    category_code: str | None = Field(default=None, min_length=1, max_length=64)
    to_place_code: str | None = Field(default=None, pattern=PLACE_CODE_PATTERN)


class CaseTransitioned(Envelope):
    """A lifecycle transition dispatch applied (docs/domain.md §3(c)); ``sequence`` orders a case's
    transitions (1, 2, …). Counters are the case's totals after the transition. ``actor_ref`` is
    the requesting credential's id (``None`` for the system's own steps), for the audit trail.

    For attribution (docs/kpis.md): ``department`` is the case's department after the step and
    ``from_department`` before it (a transfer counts out of the one and into the other);
    ``mediation_level`` / ``from_mediation_level`` likewise for the mediation rungs. A closing
    step carries its ``outcome``; a callback its ``satisfaction`` and ``resident_resolved``; a
    recategorization the new ``category_code`` (and the new place in the envelope)."""

    event_type: Literal["case.transitioned"] = "case.transitioned"
    action: str
    from_state: str
    to_state: str
    actor_role: str
    actor_ref: str | None = Field(default=None, max_length=64)
    reason: str = ""
    sequence: int = Field(ge=1)
    department: str | None = None
    target_kind: str | None = None
    mediation_level: str | None = None
    deadline: AwareDatetime | None = None
    transfer_count: int = 0
    return_count: int = 0
    rework_count: int = 0
    supervision_level: int = 0
    action_id: uuid.UUID | None = None
    from_department: str | None = None
    from_mediation_level: str | None = None
    unit: str | None = Field(default=None, max_length=24)
    outcome: Outcome | None = None
    duplicate_of: uuid.UUID | None = None
    satisfaction: Satisfaction | None = None
    resident_resolved: bool | None = None
    category_code: str | None = Field(default=None, max_length=64)
    reopen_count: int = 0
    recategorize_count: int = 0


class CaseActionRejected(Envelope):
    """dispatch refused a requested action (not legal in the case's state, or a failed check):
    nothing changed. ``action_id`` names the request it answers."""

    event_type: Literal["case.action_rejected"] = "case.action_rejected"
    action: str
    state: str
    allowed_actions: tuple[str, ...] = ()
    reason: str = ""
    action_id: uuid.UUID | None = None


class CaseSupervised(Envelope):
    """督办: a deadline alert fired (``level`` 1 at red, 2 for 提级督办 5 working days later;
    ``alert`` yellow is a warning only, level 0). docs/domain.md §3(d)4."""

    event_type: Literal["case.supervised"] = "case.supervised"
    alert: Literal["yellow", "red", "higher"]
    level: int = Field(ge=0, le=2)
    department: str | None = None
    escalated_to: str | None = None
    deadline: AwareDatetime | None = None


class PatrolRecorded(Envelope):
    """巡查: a grid worker's inspection round (issue 3 item 7). ``case_id`` is the round's id;
    ``points`` the number of points inspected; ``kind`` routine | night | heavy_pollution |
    weekend_duty; ``findings`` the case ids the round opened."""

    event_type: Literal["patrol.recorded"] = "patrol.recorded"
    kind: Literal["routine", "night", "heavy_pollution", "weekend_duty"]
    points: int = Field(ge=0, le=10000)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    worker_ref: str | None = Field(default=None, max_length=64)
    findings: tuple[uuid.UUID, ...] = ()


Event = Annotated[
    CaseReported | CaseDispatched | CaseTransferred | CaseClosed | CaseStatusRecorded | CaseActionRequested | CaseTransitioned | CaseActionRejected | CaseSupervised | PatrolRecorded,
    Field(discriminator="event_type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

#: event_type -> schema versions this build can read.
SUPPORTED_VERSIONS: dict[str, frozenset[int]] = {
    "case.reported": frozenset({1}),
    "case.dispatched": frozenset({1}),
    "case.transferred": frozenset({1}),
    "case.closed": frozenset({1}),
    "case.status_recorded": frozenset({1}),
    "case.action_requested": frozenset({1}),
    "case.transitioned": frozenset({1}),
    "case.action_rejected": frozenset({1}),
    "case.supervised": frozenset({1}),
    "patrol.recorded": frozenset({1}),
}


class UnsupportedSchemaVersion(ValueError):
    """An event's ``schema_version`` is not one this build reads (a permanent error)."""


def encode_event(event: Envelope) -> bytes:
    """Serialise an event to UTF-8 JSON bytes (the Kafka message value)."""
    return event.model_dump_json().encode("utf-8")


def decode_event(value: bytes | str) -> Event:
    """Parse a Kafka message value into its event model.

    Raises:
        pydantic.ValidationError: the payload is not valid JSON or not a known event.
        UnsupportedSchemaVersion: the event type is known but its version is not.
    """
    event = EVENT_ADAPTER.validate_json(value)
    if event.schema_version not in SUPPORTED_VERSIONS[event.event_type]:
        raise UnsupportedSchemaVersion(
            f"{event.event_type} schema_version {event.schema_version} is not supported "
            f"(supported: {sorted(SUPPORTED_VERSIONS[event.event_type])})"
        )
    return event
