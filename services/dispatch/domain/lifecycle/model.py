"""The state machine's data: the :class:`Case`, the :class:`Command`, what ``decide`` needs beside
them (:class:`Context`, :class:`OriginalCase`) and what it gives back (:class:`Transition`,
:class:`Decision`, :class:`IllegalAction`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import NamedTuple

from services.dispatch.domain.lifecycle.places import place_level
from services.dispatch.domain.lifecycle.states import (
    MAX_SUPERVISION_LEVEL,
    MEDIATING,
    REPORTED,
    SHELVED,
    STATE_LABELS,
    STATES,
    TERMINAL_STATES,
)
from services.dispatch.domain.routing import RouteDecision
from shared.contract.actions import MEDIATION_LEVELS, OUTCOMES, SATISFACTIONS
from shared.domain.taxonomy import Taxonomy
from shared.domain.tenants import TenantConfig
from shared.domain.workcalendar import DEFAULT_TZ, Limit, WorkCalendar


def require_aware(value: datetime | None, what: str) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None
                              or value.utcoffset() is None):
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")





def replace(obj, /, **changes):
    """``dataclasses.replace`` for this module's frozen dataclasses (every field is an ``__init__``
    argument, none is a slot): the same new object, ``__post_init__`` checks included, without the
    generic walk over the fields' metadata (a tenth of dispatch's CPU per new case, issue 13)."""
    fields = dict(obj.__dict__)
    fields.update(changes)
    return type(obj)(**fields)


@dataclass(frozen=True)
class Case:
    """Dispatch's state of one case; immutable, changed only through :func:`decide`.

    Fields:
        state: one of :data:`STATES`.
        department: handling department code (taxonomy, ``mediation``, ``triage``,
            :data:`STREET_OFFICE`), ``None`` before dispatch.
        target_kind: ``department`` | ``mediation`` | ``triage`` | ``None``.
        mediation_level: rung of :data:`MEDIATION_LEVELS` while ``mediating``, else ``None``.
        deadline: disposal deadline (aware) or ``None`` (no limit / not yet dispatched).
        limit: the disposal :class:`~shared.domain.workcalendar.Limit` or ``None``.
        paused_since: when 挂账 stopped the clock (set only while ``shelved``).
        extension_requested / extension_used: one extension per case (docs/domain.md §3(c)4).
        transfer_count / return_count / rework_count: 转办 / 退回 (wrong dispatch) / 返工.
        supervision_level: 0 none, 1 督办, 2 提级督办.
        flags: e.g. ``{"violence"}``.
        place_code: the case's place (docs/domain.md §3(a)); used for street offices and rungs.
        level: the coordinating level (:data:`ESCALATION_LEVELS`, or a foreign level).
        unit: place code of the unit coordinating after 逐级上报 / the street office, or ``None``.
        category_code: the case's category (taxonomy code, or a foreign one); ``None`` when not
            known to the case (a case stored before it kept one).
        dispatched_at: when the clock started: the first dispatch to a handler (department or
            mediation), or the last reopen; ``None`` before (or not recorded).
        outcome: how the case ended or, while checked, what the department reported
            (shared/contract/actions.py ``OUTCOMES``); ``None`` while open.
        duplicate_of: the original case's id (text) when the outcome is ``duplicate``.
        satisfaction / resident_resolved: the callback (回访) of the current closure.
        reopen_count / recategorize_count: 重办 / 改类 so far.

    Cases stored before a field existed load with its default.

    Raises:
        ValueError: unknown state, outcome or rating, negative counter, supervision level
            outside 0..2, naive datetimes, ``mediating`` without a ladder rung, or ``shelved``
            without ``paused_since``.
    """

    state: str = REPORTED
    department: str | None = None
    target_kind: str | None = None
    mediation_level: str | None = None
    deadline: datetime | None = None
    limit: Limit | None = None
    paused_since: datetime | None = None
    extension_used: bool = False
    extension_requested: bool = False
    transfer_count: int = 0
    return_count: int = 0
    rework_count: int = 0
    supervision_level: int = 0
    flags: frozenset[str] = frozenset()
    place_code: str = ""
    level: str = "grid"
    unit: str | None = None
    category_code: str | None = None
    dispatched_at: datetime | None = None
    outcome: str | None = None
    duplicate_of: str | None = None
    satisfaction: str | None = None
    resident_resolved: bool | None = None
    reopen_count: int = 0
    recategorize_count: int = 0

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r}")
        object.__setattr__(self, "flags", frozenset(self.flags))
        for name in ("transfer_count", "return_count", "rework_count", "reopen_count",
                     "recategorize_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.supervision_level <= MAX_SUPERVISION_LEVEL:
            raise ValueError("supervision_level must be 0, 1 or 2")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.satisfaction is not None and self.satisfaction not in SATISFACTIONS:
            raise ValueError(f"unknown satisfaction {self.satisfaction!r}")
        require_aware(self.deadline, "deadline")
        require_aware(self.paused_since, "paused_since")
        require_aware(self.dispatched_at, "dispatched_at")
        if self.state == MEDIATING and self.mediation_level not in MEDIATION_LEVELS:
            raise ValueError(f"a mediating case needs a mediation_level in {MEDIATION_LEVELS}")
        if self.state == SHELVED and self.paused_since is None:
            raise ValueError("a shelved case needs paused_since")

    @classmethod
    def new(cls, place_code: str = "", flags: Iterable[str] = (), limit: Limit | None = None,
            tenant: TenantConfig | None = None, category_code: str | None = None) -> Case:
        """A freshly ``reported`` case at ``place_code``, its level from :func:`place_level`."""
        return cls(state=REPORTED, place_code=place_code, flags=frozenset(flags), limit=limit,
                   level=place_level(place_code, tenant), category_code=category_code)

    @property
    def state_label(self) -> str:
        """zh-CN label of the state."""
        return STATE_LABELS[self.state]

    @property
    def is_terminal(self) -> bool:
        """True in closed, rejected or cancelled (the case has ended; see
        :data:`AFTER_CLOSURE_ACTIONS` for what a closed case still accepts)."""
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class Command:
    """One requested action.

    - ``action``: one of :data:`ACTIONS`.
    - ``actor_role``: who asks (recorded in the transition; see :data:`ACTION_ACTORS`).
    - ``actor_ref``: the asking credential's id (audit trail; never a name), ``None`` for the system.
    - ``note``: free text (already masked by intake/API).
    - ``evidence``: references to photos/documents (``self_handle`` needs at least one).
    - ``target_department``: for ``transfer`` (required) and ``return`` (re-dispatch target).
    - ``extension_days``: working days granted by ``approve_extension`` (required, > 0).
    - ``level``: target supervision level for ``supervise`` (default: current + 1).
    - ``outcome``: the outcome of an ending step (``resolve``, ``self_handle``, ``reject``,
      ``cancel``); ``duplicate_of``: the original case's id (text) for outcome ``duplicate``
      and for ``merge_duplicate``.
    - ``satisfaction`` / ``resident_resolved``: the rating of a ``callback``.
    - ``category_code`` / ``to_place_code``: the corrected category and place of
      ``recategorize`` (category required) or of a ``return`` that corrects them.
    """

    action: str
    actor_role: str = "system"
    note: str = ""
    evidence: tuple[str, ...] = ()
    target_department: str | None = None
    actor_ref: str | None = None
    extension_days: float | None = None
    level: int | None = None
    outcome: str | None = None
    duplicate_of: str | None = None
    satisfaction: str | None = None
    resident_resolved: bool | None = None
    category_code: str | None = None
    to_place_code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", tuple(self.evidence))


@dataclass(frozen=True)
class OriginalCase:
    """What dispatch holds of the case a duplicate names (``duplicate_of``): its id (text), its
    tenant, its state and, if it is itself a duplicate, the case it duplicates (its own
    ``duplicate_of``)."""

    case_id: str
    tenant: str
    state: str
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Context:
    """What ``decide`` needs besides the case: the router's decision (``dispatch``), the disposal
    limit to start the clock with, the tenant (street offices, levels, timezone, places,
    ``max_reopens``), the timezone of working-day arithmetic (default: the tenant's, else
    Asia/Shanghai) and the calendar.

    For ``recategorize`` and a ``return`` that corrects the category, ``route`` and ``limit`` are
    those of the corrected category and place (the caller routes them). ``taxonomy`` (optional)
    lets ``decide`` refuse a category it does not hold; ``case_id`` (text, optional) lets it
    refuse a case named a duplicate of itself. For a command naming ``duplicate_of``,
    ``case_tenant`` is the case's tenant and ``original`` what dispatch holds of the case named
    (``None``: dispatch holds no such case): a duplicate must name an existing case of the same
    tenant (:func:`original_of`). ``merged_duplicates`` are the ids (text) of the cases merged
    into this case as its duplicates (cancelled with outcome ``duplicate`` naming it) as dispatch
    holds them: such a case may not leave the figures (:data:`LEAVING_ACTIONS`)."""

    route: RouteDecision | None = None
    limit: Limit | None = None
    tenant: TenantConfig | None = None
    tz: tzinfo | None = None
    calendar: WorkCalendar | None = None
    taxonomy: Taxonomy | None = None
    case_id: str | None = None
    case_tenant: str | None = None
    original: OriginalCase | None = None
    merged_duplicates: tuple[str, ...] = ()

    @property
    def zone(self) -> tzinfo:
        """The effective timezone."""
        if self.tz is not None:
            return self.tz
        if self.tenant is not None:
            return self.tenant.tzinfo
        return DEFAULT_TZ


@dataclass(frozen=True)
class Transition:
    """One recorded step: ``action`` took the case from ``from_state`` to ``to_state`` at ``at``
    (the command's ``now``), with the case's fields after the step (department, target kind,
    mediation level, coordinating level and unit, deadline, counters, extension flags, place)
    and the command's role, actor reference, note and evidence; ``rule`` is the routing rule of a
    dispatch.

    Attribution: ``from_department`` / ``from_mediation_level`` are the case's before the step.
    What the step recorded: ``outcome`` (and ``duplicate_of``) on ``resolve`` and on every step
    that ends the case; ``satisfaction`` / ``resident_resolved`` on a ``callback``;
    ``category_code`` on a step that changed the category (and the dispatch that follows it)."""

    action: str
    from_state: str
    to_state: str
    at: datetime
    actor_role: str
    reason: str
    department: str | None
    target_kind: str | None
    mediation_level: str | None
    level: str
    unit: str | None
    deadline: datetime | None
    transfer_count: int
    return_count: int
    rework_count: int
    supervision_level: int
    extension_requested: bool
    extension_used: bool
    note: str = ""
    evidence: tuple[str, ...] = ()
    rule: str | None = None
    actor_ref: str | None = None
    from_department: str | None = None
    from_mediation_level: str | None = None
    place_code: str = ""
    outcome: str | None = None
    duplicate_of: str | None = None
    satisfaction: str | None = None
    resident_resolved: bool | None = None
    category_code: str | None = None
    reopen_count: int = 0
    recategorize_count: int = 0


class Decision(NamedTuple):
    """The result of :func:`decide`: the new :class:`Case` and the transitions, in order (the
    first one's ``from_state`` is the old state; each next one starts where the last ended)."""

    case: Case
    transitions: tuple[Transition, ...]


class IllegalAction(ValueError):
    """The action is not allowed now; nothing changed.

    Attributes: ``current_state``, ``allowed_actions`` (tuple, as :func:`allowed_actions` gives
    it for the same ``now``), ``reason`` (zh/en text) and ``action``.
    """

    def __init__(self, current_state: str, allowed_actions: tuple[str, ...], reason: str,
                 action: str | None = None) -> None:
        self.current_state = current_state
        self.allowed_actions = tuple(allowed_actions)
        self.reason = reason
        self.action = action
        super().__init__(f"{action or 'action'} not allowed in state {current_state}: {reason} "
                         f"(allowed: {', '.join(self.allowed_actions) or 'none'})")

