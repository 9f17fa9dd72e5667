"""The case state machine (docs/domain.md §3(c)): states, actions, and the pure ``decide`` function.

Pure domain code: no I/O, no broker or database. Events are the history; this module only says,
for one case and one command, what the case becomes and which transitions to record.

Longer than the house's ~500 lines on purpose: it is one state machine — states, guards, one small
function per action and the table binding them — and is read (and changed) as a whole; split, a
rule's guard and its transition would sit in different files. The closed loop after closure
(callback, reopen) and the corrections (recategorize, merge_duplicate) are rules of the same machine.

Sources (docs/domain.md):

- §3(c)1 main path: reported → accepted → filed → dispatched → acknowledged →
  in_progress → resolved → checking → closed; terminal also rejected (不予受理), cancelled (作废).
- §3(c)2: reported→accepted/rejected (受理员); accepted→filed (值班长); accepted→closed by a grid
  worker's 自行处置 with photo ("能处则处") [R1].
- §3(c)3: filed→dispatched (派遣员); dispatched→acknowledged (department); 退回 = 错误派遣 [R1];
  转办 to another unit, ≥3 escalates [P22] (also §1.5).
- §3(c)4: 延期 requested before the deadline, approved once [P20][R4]; 挂账 pauses the clock [R2].
- §3(c)5: resolved→checking; checking→closed or 返工 (rework, same department) [R2].
- §3(c)7: mediation 院落 → 社区调委会 → 街道调解中心; each level closes with 调解协议 or reports up;
  violence forks to 派出所. docs/seeds.md block E: 能处则处,不能办理则逐级上报; linked
  mediation with the court, legal workers and community police (联动调解).
- §3(c)8: 超期 and 督办 are clock-derived flags, not states. §3(d)4: red → automatic 督办
  and notify the superior; red + 5 WD → 提级督办 and 通报.
- §3(d)2: handle at the lowest capable level: grid, then community, then street, then
  district.

Modelling choices (see also the docstrings of :func:`decide` and :class:`Case`):

- One clock per case: the deadline is set at the first dispatch to a handler (department or
  mediation; §1.2 "the clock and 督办 start" at dispatch) from the limit in :class:`Context` (or
  the case's). Re-dispatch after a return, transfers, rework and mediation rungs keep it; only
  ``approve_extension`` (+N WD, once) and 挂账 pauses move it. Dispatch errors are counted
  (``return_count``), not paid for with the public's time.
- A dispatch to the triage queue keeps the case ``filed`` (department ``triage``) until the
  command centre dispatches it by hand; the clock does not start there.
- ``return`` (退回) is allowed only before acknowledgement (from ``dispatched``); it yields
  ``return`` (dispatched→filed) and, if ``target_department`` is given, ``dispatch``
  (filed→dispatched); otherwise the case waits in triage.
- ``transfer`` (转办) re-dispatches to another department (state ``dispatched``: the new
  department must acknowledge). The third transfer goes to the street office of the place
  instead (department :data:`STREET_OFFICE`, ``unit`` = the street's place code) with reason
  "转办≥3次提级". ``street_office`` is not a taxonomy department yet.
- ``escalate`` (逐级上报) moves an ``accepted`` case's coordinating level up grid → community →
  street → district (state unchanged) before it is filed, e.g. seed C's sewer case that crossed
  the grid boundary.
- Mediation ladder ``grid`` (院落/网格) → ``community`` → ``street`` → ``linked`` (联动调解).
  ``mediation_failed`` at ``linked`` ends mediation: the case leaves the ladder as
  ``dispatched`` to department ``police`` (派出所, the police member of the linked panel, who
  keeps it open against 民转刑 risk and closes it through the normal department path) rather
  than being "closed" unresolved; a court referral has no department in the taxonomy.
- A dispute flagged ``violence`` is dispatched to ``police`` as a department case, never to
  mediation (docs/domain.md §3(c)7).
- ``supervise`` (督办) raises ``supervision_level`` 0→1 at red and 1→2 (提级督办) 5 WD after red;
  state and department do not change.
- Actor roles are recorded, not enforced; :data:`ACTION_ACTORS` lists who does what (docs/domain.md §3(c)2–5)
  for the API to check.

The closed loop (issue 12; docs/domain.md §3(c)5, §3(c)6, §3(c)10, §3(d)3; sources [P19] [P22]
[P23]):

- Outcomes (结案类型, shared/contract/actions.py ``OUTCOMES``): every step that ends a case records
  one. ``resolve`` carries the department's (default ``resolved``; ``unresolved`` needs a reason in
  the note, ``duplicate`` needs ``duplicate_of``), the check closes with it (``verify_pass``) or
  clears it (``verify_fail``, rework). ``self_handle`` → the given outcome or ``resolved``;
  ``mediation_agreement`` → ``resolved``; ``reject`` / ``cancel`` → ``unfounded`` unless
  ``not_remit`` or ``duplicate`` is given; ``merge_duplicate`` (合并重复件, wherever ``cancel`` is allowed) →
  cancelled with ``duplicate`` and the original's id.
- Closed, rejected and cancelled end a case; closed alone still takes two actions: ``callback``
  (回访; a satisfaction rating, optionally the resident's own judgement whether it was resolved;
  one successful callback per closure, ``unreachable`` may be repeated; the case stays closed) and
  ``reopen`` (重办, with a reason, at most the tenant's ``max_reopens`` times, default 3 after
  [P22]): back to whoever closed it (the same department, the same mediation rung, or the triage
  queue for a self-handled case) with a full new limit from the reopen time; supervision,
  extension flags, outcome and rating start afresh.
- ``recategorize`` (改类, accepted … in_progress and mediating) corrects the category (and the
  place): the case re-routes by :class:`Context` (the new category's route and limit). A case with
  a handler that the new route sends elsewhere leaves it (recategorize → filed) and is dispatched
  to the new target; same department, or a route to triage: state and handler unchanged; a filed
  case is dispatched by the new route. If the limit changes, the deadline becomes the new limit
  counted from the first dispatch (:attr:`Case.dispatched_at`, or now if unknown), as if the
  category had been right from the start (supervision and extension lapse with the old deadline);
  before any dispatch nothing is recomputed. ``return`` may carry a category: return, then
  recategorize and re-route (a route back to the returner waits in triage).
- Attribution: every transition carries the department and mediation rung before
  (``from_department``, ``from_mediation_level``) and after the step, and the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from types import MappingProxyType
from typing import NamedTuple

from services.dispatch.domain.routing import (
    MEDIATION_DEPARTMENT,
    TRIAGE_DEPARTMENT,
    RouteDecision,
    mediation_level_for,
)
from shared.contract.actions import (
    MEDIATION_LEVEL_LABELS,
    MEDIATION_LEVELS,
    OUTCOMES,
    SATISFACTION_LABELS,
    SATISFACTIONS,
)
from shared.domain.taxonomy import Taxonomy
from shared.domain.tenants import (
    DEFAULT_MAX_REOPENS,
    STANDARD_LEVEL_LENGTHS,
    TenantConfig,
)
from shared.domain.workcalendar import (
    DEFAULT_TZ,
    Limit,
    WorkCalendar,
    add_working_days,
    dispose_deadline,
    higher_supervision_at,
    resume,
)

# --------------------------------------------------------------------------- states

REPORTED = "reported"
ACCEPTED = "accepted"
REJECTED = "rejected"
FILED = "filed"
DISPATCHED = "dispatched"
ACKNOWLEDGED = "acknowledged"
IN_PROGRESS = "in_progress"
RESOLVED = "resolved"
CHECKING = "checking"
CLOSED = "closed"
CANCELLED = "cancelled"
SHELVED = "shelved"
MEDIATING = "mediating"

#: All states, main path first.
STATES: tuple[str, ...] = (
    REPORTED, ACCEPTED, REJECTED, FILED, DISPATCHED, ACKNOWLEDGED, IN_PROGRESS, RESOLVED,
    CHECKING, CLOSED, CANCELLED, SHELVED, MEDIATING,
)

#: zh-CN labels of the states (docs/domain.md §3(c)).
STATE_LABELS: Mapping[str, str] = MappingProxyType({
    REPORTED: "已上报", ACCEPTED: "已受理", REJECTED: "不予受理", FILED: "已立案",
    DISPATCHED: "已派遣", ACKNOWLEDGED: "已签收", IN_PROGRESS: "处置中", RESOLVED: "已处置",
    CHECKING: "核查中", CLOSED: "已结案", CANCELLED: "已作废", SHELVED: "已挂账",
    MEDIATING: "调解中",
})

#: States that end a case. Rejected and cancelled accept no action; closed accepts only the
#: closed loop's ``callback`` and ``reopen`` (:data:`AFTER_CLOSURE_ACTIONS`).
TERMINAL_STATES: frozenset[str] = frozenset({CLOSED, REJECTED, CANCELLED})

#: States in which the disposal clock runs and 督办 applies.
SUPERVISABLE_STATES: frozenset[str] = frozenset({DISPATCHED, ACKNOWLEDGED, IN_PROGRESS, MEDIATING})

# --------------------------------------------------------------------------- actions

#: Actions taken by people (the API uses exactly these names).
USER_ACTIONS: tuple[str, ...] = (
    "accept", "reject", "file", "acknowledge", "start", "resolve", "return", "transfer",
    "request_extension", "approve_extension", "shelve", "verify_pass", "verify_fail",
    "mediation_agreement", "mediation_failed", "cancel", "self_handle",
    "callback", "reopen", "recategorize", "merge_duplicate",
)
#: Actions taken by dispatch itself.
SYSTEM_ACTIONS: tuple[str, ...] = ("dispatch", "begin_check", "escalate", "supervise")
ACTIONS: tuple[str, ...] = USER_ACTIONS + SYSTEM_ACTIONS

#: zh-CN labels of the actions.
ACTION_LABELS: Mapping[str, str] = MappingProxyType({
    "accept": "受理", "reject": "不予受理", "file": "立案", "dispatch": "派遣",
    "acknowledge": "签收", "start": "开始处置", "resolve": "处置反馈", "begin_check": "核查",
    "verify_pass": "核查通过", "verify_fail": "核查不通过(返工)", "return": "退回(错误派遣)",
    "transfer": "转办", "request_extension": "申请延期", "approve_extension": "批准延期",
    "shelve": "挂账", "mediation_agreement": "达成调解协议", "mediation_failed": "调解不成上报",
    "cancel": "作废", "self_handle": "自行处置", "escalate": "逐级上报", "supervise": "督办",
    "callback": "回访", "reopen": "重办", "recategorize": "改类", "merge_duplicate": "合并重复件",
})

#: Who normally takes each action (docs/domain.md §3(c)2–5, §1.2); recorded, not enforced here.
ACTION_ACTORS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "accept": ("intake_clerk",), "reject": ("intake_clerk",), "file": ("shift_lead",),
    "dispatch": ("system", "dispatcher"), "acknowledge": ("department",),
    "start": ("department",), "resolve": ("department",), "begin_check": ("system",),
    "verify_pass": ("supervisor", "grid_worker"), "verify_fail": ("supervisor", "grid_worker"),
    "return": ("department",), "transfer": ("department", "dispatcher"),
    "request_extension": ("department",), "approve_extension": ("shift_lead",),
    "shelve": ("shift_lead",), "mediation_agreement": ("mediator",),
    "mediation_failed": ("mediator",), "cancel": ("shift_lead",),
    "self_handle": ("grid_worker",), "escalate": ("grid_worker", "system"),
    "supervise": ("system",), "callback": ("intake_clerk",), "reopen": ("shift_lead",),
    "recategorize": ("dispatcher", "shift_lead"), "merge_duplicate": ("shift_lead",),
})

#: Actions a closed case still accepts (the 12345 loop, docs/domain.md §1.5, §3(c)6).
AFTER_CLOSURE_ACTIONS: tuple[str, ...] = ("callback", "reopen")

#: Outcomes a rejection, cancellation or merge may record (the first is the default).
DISCARD_OUTCOMES: tuple[str, ...] = ("unfounded", "not_remit", "duplicate")

_STATE_ACTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    REPORTED: ("accept", "reject", "cancel", "merge_duplicate"),
    ACCEPTED: ("file", "self_handle", "escalate", "recategorize", "cancel", "merge_duplicate"),
    FILED: ("dispatch", "recategorize", "cancel", "merge_duplicate"),
    DISPATCHED: ("acknowledge", "return", "transfer", "request_extension", "approve_extension",
                 "shelve", "supervise", "recategorize", "cancel", "merge_duplicate"),
    ACKNOWLEDGED: ("start", "transfer", "request_extension", "approve_extension", "shelve",
                   "supervise", "recategorize", "cancel", "merge_duplicate"),
    IN_PROGRESS: ("resolve", "transfer", "request_extension", "approve_extension", "shelve",
                  "supervise", "recategorize", "cancel", "merge_duplicate"),
    RESOLVED: ("begin_check", "cancel", "merge_duplicate"),
    CHECKING: ("verify_pass", "verify_fail", "cancel", "merge_duplicate"),
    SHELVED: ("start", "cancel", "merge_duplicate"),
    MEDIATING: ("mediation_agreement", "mediation_failed", "supervise", "recategorize", "cancel",
                "merge_duplicate"),
    CLOSED: AFTER_CLOSURE_ACTIONS, REJECTED: (), CANCELLED: (),
})

# --------------------------------------------------------------------------- ladders, units

#: Coordinating levels for 逐级上报 (docs/domain.md §3(d)2).
ESCALATION_LEVELS: tuple[str, ...] = ("grid", "community", "street", "district")

# Mediation rungs (docs/domain.md §3(c)7, docs/seeds.md block E), lowest first: the contract's
# MEDIATION_LEVELS (shared/contract/actions.py), 院落/网格 → 社区调委会 → 街道调解中心 → 联动调解.
#: The rungs as dispatch's step notes name them: the contract's labels, the linked rung with whom
#: it brings in (court, legal workers, community police).
MEDIATION_NOTE_LABELS: Mapping[str, str] = MappingProxyType({
    **MEDIATION_LEVEL_LABELS, "linked": "联动调解(法院、法律工作者、社区民警)",
})

#: Department code of a street office (街道办); not in shared/data/taxonomy.yaml yet.
STREET_OFFICE = "street_office"
#: The police station (派出所) department of the taxonomy.
POLICE = "police"
#: Case flag that forks a dispute to the police (docs/domain.md §3(c)7).
VIOLENCE_FLAG = "violence"
#: The transfer count at which a transfer goes to the street office instead (docs/domain.md §1.5, §3(c)3).
TRANSFER_ESCALATION_THRESHOLD = 3
#: Highest supervision level: 1 = 督办 at red, 2 = 提级督办 at red + 5 WD (docs/domain.md §3(d)4).
MAX_SUPERVISION_LEVEL = 2


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None
                              or value.utcoffset() is None):
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")


def place_level(place_code: str, tenant: TenantConfig | None = None) -> str:
    """The coordinating level a case starts at: the tenant's level of the place if listed, else
    by code length (docs/domain.md §3(a): ≥15 grid, ≥12 community, ≥9 street, shorter district)."""
    if tenant is not None:
        owner = tenant.owner(place_code)
        if owner is not None and owner.level in ESCALATION_LEVELS:
            return owner.level
    n = len(place_code)
    if n >= 15:
        return "grid"
    if n >= 12:
        return "community"
    if n >= 9:
        return "street"
    return "district"


def unit_at(place_code: str, level: str, tenant: TenantConfig | None = None) -> str | None:
    """The place code of the unit at ``level`` (e.g. ``street``) that contains ``place_code``:
    the tenant's listed ancestor (or the place itself) on that level; without a tenant, the code
    prefix of the standard length (docs/domain.md §3(a): community 12, street 9, district 6) when the
    code is that long and numeric; else ``None``."""
    if tenant is not None:
        chain = list(tenant.ancestors(place_code))
        own = tenant.place(place_code)
        if own is not None:
            chain.append(own)
        for place in chain:
            if place.level == level:
                return place.code
        return None
    length = STANDARD_LEVEL_LENGTHS.get(level)
    if length is None or len(place_code) < length or not place_code[:length].isdigit():
        return None
    return place_code[:length]


# --------------------------------------------------------------------------- data


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
        _aware(self.deadline, "deadline")
        _aware(self.paused_since, "paused_since")
        _aware(self.dispatched_at, "dispatched_at")
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
    tenant (:func:`_original`)."""

    route: RouteDecision | None = None
    limit: Limit | None = None
    tenant: TenantConfig | None = None
    tz: tzinfo | None = None
    calendar: WorkCalendar | None = None
    taxonomy: Taxonomy | None = None
    case_id: str | None = None
    case_tenant: str | None = None
    original: OriginalCase | None = None

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


# --------------------------------------------------------------------------- queries


def max_reopens(context: Context | None) -> int:
    """How often a case may be reopened: the tenant's ``max_reopens``, else
    :data:`~shared.domain.tenants.DEFAULT_MAX_REOPENS` (3, [P22])."""
    if context is not None and context.tenant is not None:
        return context.tenant.max_reopens
    return DEFAULT_MAX_REOPENS


def _guard(case: Case, action: str, now: datetime | None, context: Context | None = None) -> str | None:
    """Why ``action`` (allowed by state) is not allowed for this case now, or ``None``."""
    if action == "callback":
        if case.satisfaction is not None and case.satisfaction != "unreachable":
            return "已回访 this closure was already called back (one callback per closure)"
    elif action == "reopen":
        bound = max_reopens(context)
        if case.reopen_count >= bound:
            return (f"重办已达上限 reopened {case.reopen_count} times, the tenant allows {bound} "
                    "(≥3 redos go to higher-level supervision, [P22])")
    elif action == "escalate":
        if case.level not in ESCALATION_LEVELS:
            return f"level {case.level!r} has no escalation ladder"
        if case.level == ESCALATION_LEVELS[-1]:
            return "already at the top level (district)"
    elif action == "request_extension":
        if case.extension_requested:
            return "延期只能申请一次 (an extension may be requested only once)"
        if case.deadline is None:
            return "no deadline to extend"
        if now is not None and now >= case.deadline:
            return "延期须在期限前申请 (extension must be requested before the deadline)"
    elif action == "approve_extension":
        if not case.extension_requested:
            return "no extension was requested"
        if case.deadline is None:
            return "no deadline to extend"
        if case.extension_used:
            return "延期只能批准一次 (the extension was already granted)"
    elif action == "supervise":
        if case.deadline is None:
            return "no deadline, nothing to supervise"
        if case.supervision_level >= MAX_SUPERVISION_LEVEL:
            return "already at 提级督办 (supervision level 2)"
        if now is not None and now < case.deadline:
            return "督办 starts at the deadline (red alert)"
    return None


def allowed_actions(case: Case, now: datetime | None = None,
                    context: Context | None = None) -> tuple[str, ...]:
    """Actions allowed for ``case`` in its state, after the case's own guards (one extension
    request, one approval, supervision up to level 2, escalation below the top, one successful
    callback per closure, reopens up to the tenant's bound — ``context.tenant``, default 3).
    With ``now`` also the time guards (extension only before the deadline, 督办 only from the
    deadline). Command-dependent checks (evidence, target department, extension days, outcome,
    rating, category) happen in :func:`decide`. Rejected and cancelled give ``()``; closed gives
    at most ``callback`` and ``reopen``."""
    return tuple(a for a in _STATE_ACTIONS[case.state] if _guard(case, a, now, context) is None)


# --------------------------------------------------------------------------- decide


class _Builder:
    def __init__(self, case: Case, command: Command, now: datetime, context: Context) -> None:
        self.original = case
        self.case = case
        self.command = command
        self.now = now
        self.context = context
        self.transitions: list[Transition] = []

    def step(self, action: str, new: Case, reason: str, rule: str | None = None, *,
             outcome: bool = False, rating: bool = False, category_code: str | None = None) -> None:
        """Record ``action`` from the current case to ``new``. ``outcome``: the step records the
        outcome now on ``new`` (an ending step, or ``resolve``); ``rating``: it records the
        callback's rating; ``category_code``: the category the step set."""
        old = self.case
        self.transitions.append(Transition(
            action=action, from_state=old.state, to_state=new.state, at=self.now,
            actor_role=self.command.actor_role, reason=reason, department=new.department,
            target_kind=new.target_kind, mediation_level=new.mediation_level, level=new.level,
            unit=new.unit, deadline=new.deadline, transfer_count=new.transfer_count,
            return_count=new.return_count, rework_count=new.rework_count,
            supervision_level=new.supervision_level,
            extension_requested=new.extension_requested, extension_used=new.extension_used,
            note=self.command.note, evidence=self.command.evidence, rule=rule,
            actor_ref=self.command.actor_ref, from_department=old.department,
            from_mediation_level=old.mediation_level, place_code=new.place_code,
            outcome=new.outcome if outcome else None,
            duplicate_of=new.duplicate_of if outcome else None,
            satisfaction=new.satisfaction if rating else None,
            resident_resolved=new.resident_resolved if rating else None,
            category_code=category_code, reopen_count=new.reopen_count,
            recategorize_count=new.recategorize_count,
        ))
        self.case = new

    def refuse(self, reason: str) -> IllegalAction:
        """The refusal of this command (raise it): the state and allowed actions of the case as
        it was before the command (nothing changes)."""
        return _illegal(self.original, self.now, reason, self.command.action, self.context)

    def decision(self) -> Decision:
        return Decision(self.case, tuple(self.transitions))


def _illegal(case: Case, now: datetime, reason: str, action: str,
             context: Context | None = None) -> IllegalAction:
    return IllegalAction(case.state, allowed_actions(case, now, context), reason, action)


def _decision_for(department: str, rule: str, place_code: str) -> RouteDecision:
    if department == MEDIATION_DEPARTMENT:
        return RouteDecision("mediation", department, rule, mediation_level_for(place_code))
    if department == TRIAGE_DEPARTMENT:
        return RouteDecision("triage", department, rule, None)
    return RouteDecision("department", department, rule, None)


def _assign(case: Case, decision: RouteDecision, now: datetime, ctx: Context) -> tuple[Case, str]:
    """The case sent where ``decision`` says (dispatch, re-dispatch, transfer); starts the clock
    at the first dispatch to a handler."""
    kind, department, rung = decision.target_kind, decision.department, decision.mediation_level
    reason = f"派遣 dispatched by {decision.rule}"
    if kind == "mediation" and VIOLENCE_FLAG in case.flags:
        kind, department, rung = "department", POLICE, None
        reason += "; 涉暴力纠纷分流派出所 (a violent dispute forks to the police, docs/domain.md §3(c)7)"
    if kind == "triage":
        state, department, rung = FILED, TRIAGE_DEPARTMENT, None
        reason = f"待指挥中心分拨 (triage queue) by {decision.rule}"
    elif kind == "mediation":
        state = MEDIATING
        rung = rung if rung in MEDIATION_LEVELS else mediation_level_for(case.place_code)
    else:
        state, rung = DISPATCHED, None
    limit = ctx.limit if ctx.limit is not None else case.limit
    deadline, started = case.deadline, case.dispatched_at
    if deadline is None and state != FILED:
        if limit is not None:
            deadline = dispose_deadline(now, limit, ctx.zone, ctx.calendar)
        if started is None:
            started = now
    new = replace(case, state=state, department=department, target_kind=kind,
                  mediation_level=rung, limit=limit, deadline=deadline, dispatched_at=started)
    return new, reason


def _handler_of(case: Case, decision: RouteDecision) -> str:
    """The department :func:`_assign` would give ``case`` for ``decision`` (a violent dispute's
    mediation route goes to the police)."""
    if decision.target_kind == "mediation" and VIOLENCE_FLAG in case.flags:
        return POLICE
    return decision.department


def _original(b: _Builder) -> str:
    """The case ``duplicate_of`` names (docs/domain.md §3(c)5 "Duplicates"): required; not the case
    itself; a case dispatch holds (``context.original``) of the same tenant (another tenant's case
    is refused with the same words as a case dispatch does not hold); not rejected or
    cancelled, since such a case is outside every figure and the matter would count nowhere
    (docs/kpis.md §2); and not itself a duplicate, so that every duplicate names the case that
    counts (the refusal names that case)."""
    original = (b.command.duplicate_of or "").strip()
    if not original:
        raise b.refuse("重复件须注明原件 (a duplicate needs duplicate_of, the original case)")
    if b.context.case_id is not None and original == str(b.context.case_id):
        raise b.refuse("a case cannot be a duplicate of itself")
    found = b.context.original
    # another tenant's case is refused as one dispatch does not hold: the refusal must not tell a
    # tenant's staff that an id is a case elsewhere (intake answers such a probe 404 "no case")
    if (found is None or found.case_id != original
            or (b.context.case_tenant is not None and found.tenant != b.context.case_tenant)):
        raise b.refuse(f"原件不存在 the original case {original} is not a case dispatch holds")
    if found.state in (REJECTED, CANCELLED):
        if found.duplicate_of is not None:
            raise b.refuse(f"原件本身是重复件 the case {original} is itself a duplicate of "
                           f"{found.duplicate_of}: name that case")
        raise b.refuse(f"原件{STATE_LABELS[found.state]} the original case {original} is {found.state}: "
                       "it is not counted, so its duplicate would count nowhere")
    return original


def _outcome(b: _Builder, allowed: tuple[str, ...], default: str) -> dict:
    """The outcome fields an ending step (or ``resolve``) sets: the command's outcome, else
    ``default``; ``unresolved`` needs a reason in the note, ``duplicate`` the original case."""
    outcome = b.command.outcome or default
    if outcome not in allowed:
        raise b.refuse(f"{b.command.action} records one of {', '.join(allowed)}, not {outcome!r}")
    if outcome == "unresolved" and not b.command.note.strip():
        raise b.refuse("未解决须说明原因 (outcome unresolved needs the reason in note)")
    return {"outcome": outcome, "duplicate_of": _original(b) if outcome == "duplicate" else None}


def _correction(b: _Builder, ctx: Context) -> tuple[dict, str] | None:
    """The case fields a category/place correction changes, and its reason; ``None`` when the
    command corrects nothing (same category, same place).

    The limit becomes the corrected category's (``ctx.limit``). If the case's clock runs and
    the limit changed, the deadline is recounted from when the clock started (the first
    dispatch, :attr:`Case.dispatched_at`; now if unknown), as if the category had been right
    from the start; when that moves the deadline, supervision and extension, granted against
    the old deadline, start afresh.
    A new place restarts the coordinating level at the new place's."""
    case, cmd, tenant = b.case, b.command, ctx.tenant
    code = cmd.category_code or case.category_code
    place = cmd.to_place_code or case.place_code
    if cmd.category_code and ctx.taxonomy is not None and ctx.taxonomy.category(code) is None:
        raise b.refuse(f"unknown category {code!r}: not in the taxonomy")
    if cmd.to_place_code and tenant is not None and tenant.owner(place) is None:
        raise b.refuse(f"place {place!r} is not a place of tenant {tenant.tenant!r}")
    if code == case.category_code and place == case.place_code:
        return None
    limit = ctx.limit if ctx.limit is not None else case.limit
    changes: dict = {"category_code": code, "place_code": place, "limit": limit,
                     "recategorize_count": case.recategorize_count + 1}
    reason = f"改类 recategorized {case.category_code or '?'}→{code}"
    if place != case.place_code:
        changes.update(level=place_level(place, tenant), unit=None)
        reason += f", place {case.place_code}→{place}"
    if case.deadline is not None and limit is not None and limit != case.limit:
        start = case.dispatched_at or b.now
        deadline = dispose_deadline(start, limit, ctx.zone, ctx.calendar)
        if deadline != case.deadline:  # another limit can give the same moment (24 h = 1 WD)
            changes.update(deadline=deadline, supervision_level=0, extension_requested=False,
                           extension_used=False)
            reason += (f"; deadline recounted: {limit.value:g} {limit.unit} from the first dispatch "
                       f"{start.isoformat()} (docs/domain.md §3(d)3)")
    return changes, reason


def _route_on(b: _Builder, ctx: Context, returned_by: str | None = None) -> None:
    """Dispatch the (filed) case by the corrected category's route, unless the route names no
    handler (triage) or names ``returned_by``, the department that just returned it: then the
    case waits in the triage queue."""
    decision = ctx.route
    if decision is None or decision.target_kind == "triage":
        return
    if returned_by is not None and _handler_of(b.case, decision) == returned_by:
        return
    new, reason = _assign(b.case, decision, b.now, ctx)
    b.step("dispatch", new, f"改类后派遣 dispatched by the corrected category; {reason}",
           rule=decision.rule, category_code=new.category_code)


def _accept(b: _Builder, ctx: Context) -> None:
    b.step("accept", replace(b.case, state=ACCEPTED), "受理 accepted")


def _reject(b: _Builder, ctx: Context) -> None:
    fields = _outcome(b, DISCARD_OUTCOMES, "unfounded")
    b.step("reject", replace(b.case, state=REJECTED, **fields), "不予受理 rejected (invalid report)",
           outcome=True)


def _file(b: _Builder, ctx: Context) -> None:
    b.step("file", replace(b.case, state=FILED), "立案 filed")


def _self_handle(b: _Builder, ctx: Context) -> None:
    if not any(e and e.strip() for e in b.command.evidence):
        raise b.refuse("自行处置须附照片等证据 (self_handle needs evidence, "
                       "docs/domain.md §3(c)2)")
    fields = _outcome(b, OUTCOMES, "resolved")
    b.step("self_handle", replace(b.case, state=CLOSED, **fields),
           "自行处置结案 closed by the grid worker's own handling (能处则处)", outcome=True)


def _escalate(b: _Builder, ctx: Context) -> None:
    case = b.case
    upper = ESCALATION_LEVELS[ESCALATION_LEVELS.index(case.level) + 1]
    unit = unit_at(case.place_code, upper, ctx.tenant)
    b.step("escalate", replace(case, level=upper, unit=unit),
           f"逐级上报 {case.level}→{upper} (能处则处,不能办理则逐级上报, docs/seeds.md block E)")


def _dispatch(b: _Builder, ctx: Context) -> None:
    if ctx.route is None:
        raise b.refuse("dispatch needs the router's decision (context.route)")
    new, reason = _assign(b.case, ctx.route, b.now, ctx)
    b.step("dispatch", new, reason, rule=ctx.route.rule)


def _acknowledge(b: _Builder, ctx: Context) -> None:
    b.step("acknowledge", replace(b.case, state=ACKNOWLEDGED), "签收 acknowledged")


def _start(b: _Builder, ctx: Context) -> None:
    case = b.case
    if case.state != SHELVED:
        b.step("start", replace(case, state=IN_PROGRESS), "开始处置 started")
        return
    paused_from = case.paused_since
    if b.now < paused_from:
        raise b.refuse("cannot resume before the case was shelved")
    deadline = case.deadline
    if deadline is not None:
        if case.limit is not None:
            deadline = resume(deadline, paused_from, b.now, case.limit, ctx.zone, ctx.calendar)
        else:
            deadline = deadline + (b.now - paused_from)
    b.step("start", replace(case, state=IN_PROGRESS, deadline=deadline, paused_since=None),
           "解除挂账,恢复处置 resumed from shelving; deadline shifted by the paused time")


def _resolve(b: _Builder, ctx: Context) -> None:
    fields = _outcome(b, OUTCOMES, "resolved")
    b.step("resolve", replace(b.case, state=RESOLVED, **fields),
           "处置反馈 resolved by the department", outcome=True)
    _begin_check(b, ctx)


def _begin_check(b: _Builder, ctx: Context) -> None:
    b.step("begin_check", replace(b.case, state=CHECKING), "核查 check begins (automatic)")


def _verify_pass(b: _Builder, ctx: Context) -> None:
    # a case resolved before outcomes were recorded closes as resolved (resolve's default)
    b.step("verify_pass", replace(b.case, state=CLOSED, outcome=b.case.outcome or "resolved"),
           "核查通过,结案 check passed, closed", outcome=True)


def _verify_fail(b: _Builder, ctx: Context) -> None:
    case = b.case
    b.step("verify_fail", replace(case, state=IN_PROGRESS, rework_count=case.rework_count + 1,
                                  outcome=None, duplicate_of=None),
           "核查不通过,返工 rework by the same department (docs/domain.md §3(c)5)")


def _return(b: _Builder, ctx: Context) -> None:
    case, cmd, target = b.case, b.command, b.command.target_department
    if target is not None and target == case.department:
        raise b.refuse("a return must name another department")
    correction = _correction(b, ctx) if cmd.category_code or cmd.to_place_code else None
    returned = replace(case, state=FILED, department=TRIAGE_DEPARTMENT, target_kind="triage",
                       mediation_level=None, return_count=case.return_count + 1)
    b.step("return", returned, f"退回(错误派遣) returned by {case.department}: wrong dispatch")
    corrected = None
    if correction is not None:
        changes, reason = correction
        b.step("recategorize", replace(b.case, **changes), f"{reason} (on the return)",
               category_code=changes["category_code"])
        corrected = changes["category_code"]
    if target is not None:
        decision = _decision_for(target, "return:redispatch", b.case.place_code)
        new, reason = _assign(b.case, decision, b.now, ctx)
        b.step("dispatch", new, f"改派 re-dispatched after a return; {reason}",
               rule=decision.rule, category_code=corrected)
    elif corrected is not None:
        _route_on(b, ctx, returned_by=case.department)


def _recategorize(b: _Builder, ctx: Context) -> None:
    case, code = b.case, b.command.category_code
    if not code:
        raise b.refuse("recategorize needs category_code (the corrected category)")
    correction = _correction(b, ctx)
    if correction is None:
        raise b.refuse(f"nothing to correct: the case already has category {code} at place "
                       f"{case.place_code}")
    changes, reason = correction
    corrected = replace(case, **changes)
    if case.state in (ACCEPTED, FILED):
        # not with a handler yet: filing routes by the new category; a filed case routes now
        b.step("recategorize", corrected, reason, category_code=code)
        if case.state == FILED:
            _route_on(b, ctx)
        return
    decision = ctx.route
    if (decision is None or decision.target_kind == "triage"
            or _handler_of(case, decision) == case.department):
        b.step("recategorize", corrected, f"{reason}; {case.department} keeps the case", category_code=code)
        return
    b.step("recategorize", replace(corrected, state=FILED, department=TRIAGE_DEPARTMENT,
                                   target_kind="triage", mediation_level=None),
           f"{reason}; leaves {case.department} (the dispatch was not accurate)", category_code=code)
    _route_on(b, ctx)


def _transfer(b: _Builder, ctx: Context) -> None:
    case, target = b.case, b.command.target_department
    if not target:
        raise b.refuse("transfer needs target_department")
    if target == case.department:
        raise b.refuse("transfer to the same department")
    if target == TRIAGE_DEPARTMENT:
        raise b.refuse("use return to send a case back to triage")
    count = case.transfer_count + 1
    counted = replace(case, transfer_count=count)
    if count == TRANSFER_ESCALATION_THRESHOLD and case.department != STREET_OFFICE:
        street = unit_at(case.place_code, "street", ctx.tenant)
        level = case.level
        if level in ESCALATION_LEVELS and ESCALATION_LEVELS.index(level) < 2:
            level = "street"
        new = replace(counted, state=DISPATCHED, department=STREET_OFFICE,
                      target_kind="department", mediation_level=None, unit=street, level=level)
        b.step("transfer", new, f"转办≥3次提级至街道 third transfer escalates to the street office "
               f"{street or '(unknown street)'} instead of {target} (docs/domain.md §1.5, §3(c)3)",
               rule="transfer:escalate-street")
        return
    decision = _decision_for(target, "transfer", case.place_code)
    new, reason = _assign(counted, decision, b.now, ctx)
    b.step("transfer", new, f"转办 transfer {case.department}→{new.department} (#{count}); {reason}",
           rule=decision.rule)


def _request_extension(b: _Builder, ctx: Context) -> None:
    days = b.command.extension_days
    asked = f" {days:g} WD" if days else ""
    b.step("request_extension", replace(b.case, extension_requested=True),
           f"申请延期{asked} extension requested before the deadline")


def _approve_extension(b: _Builder, ctx: Context) -> None:
    days = b.command.extension_days
    if days is None or isinstance(days, bool) or not days > 0:
        raise b.refuse("approve_extension needs extension_days > 0")
    case = b.case
    deadline = add_working_days(case.deadline, days, ctx.zone, ctx.calendar)
    b.step("approve_extension", replace(case, deadline=deadline, extension_used=True),
           f"批准延期 {days:g} WD (once, docs/domain.md §3(c)4)")


def _shelve(b: _Builder, ctx: Context) -> None:
    b.step("shelve", replace(b.case, state=SHELVED, paused_since=b.now),
           "挂账 shelved: the clock is paused (docs/domain.md §3(c)4)")


def _mediation_agreement(b: _Builder, ctx: Context) -> None:
    if b.command.outcome not in (None, "resolved"):
        raise b.refuse("an agreement (调解协议) resolves the dispute (outcome resolved); "
                       "use mediation_failed when it does not")
    rung = b.case.mediation_level
    b.step("mediation_agreement", replace(b.case, state=CLOSED, outcome="resolved", duplicate_of=None),
           f"达成调解协议 agreement at {MEDIATION_NOTE_LABELS[rung]}", outcome=True)


def _mediation_failed(b: _Builder, ctx: Context) -> None:
    case = b.case
    i = MEDIATION_LEVELS.index(case.mediation_level)
    if i + 1 < len(MEDIATION_LEVELS):
        upper = MEDIATION_LEVELS[i + 1]
        unit = unit_at(case.place_code, upper, ctx.tenant) if upper != "linked" else case.unit
        b.step("mediation_failed", replace(case, mediation_level=upper, unit=unit),
               f"调解不成,上报{MEDIATION_NOTE_LABELS[upper]} mediation failed at "
               f"{case.mediation_level}, up to {upper}")
        return
    b.step("mediation_failed",
           replace(case, state=DISPATCHED, department=POLICE, target_kind="department",
                   mediation_level=None),
           "联动调解不成,调解终结,转派出所 mediation failed at the last rung (linked): "
           "dispatched to the police")


def _cancel(b: _Builder, ctx: Context) -> None:
    fields = _outcome(b, DISCARD_OUTCOMES, "unfounded")
    b.step("cancel", replace(b.case, state=CANCELLED, **fields), "作废 cancelled", outcome=True)


def _merge(b: _Builder, ctx: Context) -> None:
    original = _original(b)
    b.step("merge_duplicate", replace(b.case, state=CANCELLED, outcome="duplicate", duplicate_of=original),
           f"合并重复件 merged into {original} as its duplicate", outcome=True)


def _callback(b: _Builder, ctx: Context) -> None:
    rating, resolved = b.command.satisfaction, b.command.resident_resolved
    if rating not in SATISFACTIONS:
        raise b.refuse(f"回访须有满意度 (callback needs satisfaction, one of "
                       f"{', '.join(SATISFACTIONS)}; got {rating!r})")
    if resolved is not None and not isinstance(resolved, bool):
        raise b.refuse("resident_resolved must be true, false or absent")
    if rating == "unreachable" and resolved is not None:
        raise b.refuse("未联系上 an unreachable resident cannot judge whether it was resolved")
    judged = "" if resolved is None else ("; 群众认为已解决 resolved" if resolved
                                          else "; 群众认为未解决 not resolved")
    b.step("callback", replace(b.case, satisfaction=rating, resident_resolved=resolved),
           f"回访 callback: {SATISFACTION_LABELS[rating]} {rating}{judged}", rating=True)


def _reopen(b: _Builder, ctx: Context) -> None:
    case = b.case
    if not b.command.note.strip():
        raise b.refuse("重办须说明原因 (reopen needs the reason in note)")
    limit = case.limit if case.limit is not None else ctx.limit
    if case.target_kind == "mediation" and case.mediation_level in MEDIATION_LEVELS:
        state, department, kind, rung = MEDIATING, case.department, "mediation", case.mediation_level
        whom = MEDIATION_NOTE_LABELS[rung]
    elif case.department and case.department != TRIAGE_DEPARTMENT:
        state, department, kind, rung = DISPATCHED, case.department, case.target_kind or "department", None
        whom = case.department
    else:  # closed without a handler (自行处置): the triage queue decides
        state, department, kind, rung = FILED, TRIAGE_DEPARTMENT, "triage", None
        whom = "the triage queue"
    clock = state != FILED
    deadline = dispose_deadline(b.now, limit, ctx.zone, ctx.calendar) if clock and limit else None
    count = case.reopen_count + 1
    new = replace(case, state=state, department=department, target_kind=kind, mediation_level=rung,
                  limit=limit, deadline=deadline, dispatched_at=b.now if clock else None,
                  paused_since=None, supervision_level=0, extension_requested=False,
                  extension_used=False, outcome=None, duplicate_of=None, satisfaction=None,
                  resident_resolved=None, reopen_count=count)
    b.step("reopen", new, f"重办 reopened ({count} of at most {max_reopens(ctx)}), back to {whom} "
           "with a full new limit from now (docs/domain.md §3(c)6)")


def _supervise(b: _Builder, ctx: Context) -> None:
    case = b.case
    target = b.command.level if b.command.level is not None else case.supervision_level + 1
    if isinstance(target, bool) or target not in (1, 2) or target <= case.supervision_level:
        raise b.refuse(f"supervision level must rise to 1 or 2 (now "
                       f"{case.supervision_level}, asked {target!r})")
    if target == 2:
        due = higher_supervision_at(case.deadline, ctx.zone, ctx.calendar)
        if b.now < due:
            raise b.refuse(f"提级督办 falls due 5 WD after red, at {due.isoformat()}")
    for level in range(case.supervision_level + 1, target + 1):
        if level == 1:
            reason = ("督办 red alert: automatic supervision, superior of "
                      f"{case.department} notified (docs/domain.md §3(d)4)")
        else:
            reason = "提级督办并通报 higher-level supervision 5 WD after red (docs/domain.md §3(d)4)"
        b.step("supervise", replace(b.case, supervision_level=level), reason)


_HANDLERS: Mapping[str, Callable[[_Builder, Context], None]] = MappingProxyType({
    "accept": _accept, "reject": _reject, "file": _file, "self_handle": _self_handle,
    "escalate": _escalate, "dispatch": _dispatch, "acknowledge": _acknowledge, "start": _start,
    "resolve": _resolve, "begin_check": _begin_check, "verify_pass": _verify_pass,
    "verify_fail": _verify_fail, "return": _return, "transfer": _transfer,
    "request_extension": _request_extension, "approve_extension": _approve_extension,
    "shelve": _shelve, "mediation_agreement": _mediation_agreement,
    "mediation_failed": _mediation_failed, "cancel": _cancel, "supervise": _supervise,
    "merge_duplicate": _merge, "callback": _callback, "reopen": _reopen, "recategorize": _recategorize,
})


def decide(case: Case, command: Command, now: datetime, context: Context | None = None) -> Decision:
    """Apply ``command`` to ``case`` at ``now``; pure.

    Rules (docs/domain.md §3(c), see the module docstring for choices):

    - reported: ``accept`` → accepted, ``reject`` → rejected (outcome ``unfounded`` unless
      ``not_remit`` or ``duplicate`` is given).
    - accepted: ``file`` → filed; ``self_handle`` → closed (evidence required; outcome
      ``resolved`` unless given); ``escalate`` → same state, level up (grid → community →
      street → district).
    - filed: ``dispatch`` (``context.route`` required) → dispatched | mediating (a ``violence``
      dispute → dispatched to police) | filed in triage. Starts the clock once.
    - dispatched: ``acknowledge``; ``return`` (return_count+1) → filed, then → dispatched to
      ``target_department`` if given.
    - acknowledged: ``start`` → in_progress. in_progress: ``resolve`` (the department's
      outcome, default ``resolved``) → resolved → ``begin_check`` → checking (two
      transitions). checking: ``verify_pass`` → closed with that outcome, ``verify_fail`` →
      in_progress (rework_count+1, outcome cleared).
    - dispatched / acknowledged / in_progress: ``transfer`` (transfer_count+1; the 3rd goes to
      the street office), ``request_extension`` (once, before the deadline),
      ``approve_extension`` (once, +``extension_days`` WD), ``shelve`` → shelved (clock paused).
    - shelved: ``start`` → in_progress, deadline shifted by the paused time (workcalendar.resume).
    - mediating: ``mediation_agreement`` → closed (outcome ``resolved``); ``mediation_failed``
      → next rung, or at ``linked`` → dispatched to police.
    - dispatched / acknowledged / in_progress / mediating: ``supervise`` (from the deadline) →
      supervision_level up, state unchanged.
    - accepted / filed / dispatched / acknowledged / in_progress / mediating: ``recategorize``
      (``category_code`` required) → re-routed by ``context.route``: a case with a handler the
      route does not name → filed → dispatched to the new target; else state unchanged; a
      filed case is dispatched by the route. ``return`` with ``category_code`` returns, then
      recategorizes and re-routes.
    - any non-terminal: ``cancel`` → cancelled; ``merge_duplicate`` (``duplicate_of`` required) →
      cancelled with outcome ``duplicate``.
    - closed: ``callback`` (``satisfaction`` required) → closed, once per closure unless
      unreachable; ``reopen`` (note required, up to ``max_reopens``) → dispatched | mediating |
      filed, a full new limit from now. Rejected and cancelled accept nothing.

    Args:
        case: the current case. command: the action and its parameters.
        now: when the action happens (timezone-aware). context: route, limit, tenant, tz.

    Returns:
        :class:`Decision` (new case, transitions in order).

    Raises:
        IllegalAction: unknown or disallowed action, or a failed command check; nothing changed.
        ValueError: naive ``now``. CalendarRangeError: a date outside the holiday data.
    """
    _aware(now, "now")
    ctx = context if context is not None else Context()
    action = command.action
    if action not in _HANDLERS:
        raise _illegal(case, now, f"{action!r} is not a known action", action, ctx)
    if case.state in TERMINAL_STATES and action not in _STATE_ACTIONS[case.state]:
        after = _STATE_ACTIONS[case.state]
        rest = f"; it accepts only {', '.join(after)}" if after else " and accepts no action"
        raise _illegal(case, now, f"{case.state} ({STATE_LABELS[case.state]}) has ended{rest}",
                       action, ctx)
    if action not in _STATE_ACTIONS[case.state]:
        raise _illegal(case, now, f"{action} is not an action of state {case.state} "
                       f"({STATE_LABELS[case.state]})", action, ctx)
    why = _guard(case, action, now, ctx)
    if why is not None:
        raise _illegal(case, now, why, action, ctx)
    builder = _Builder(case, command, now, ctx)
    _HANDLERS[action](builder, ctx)
    return builder.decision()


def supervise(case: Case, level: int, now: datetime, context: Context | None = None) -> Decision:
    """督办: raise ``case.supervision_level`` to ``level`` (1 at red = the deadline, 2 = 提级督办
    5 WD after red; docs/domain.md §3(d)4); one ``supervise`` transition per level passed, state and
    department unchanged. Same as ``decide(case, Command("supervise", level=level), now, ...)``.

    Raises:
        IllegalAction: not a supervisable state, no deadline, too early, or level not rising.
    """
    return decide(case, Command("supervise", actor_role="system", level=level), now, context)

