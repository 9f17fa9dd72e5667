"""The case state machine (docs/domain.md §3(c)): states, actions, and the pure ``decide`` function.

Pure domain code: no I/O, no broker or database. Events are the history; this module only says,
for one case and one command, what the case becomes and which transitions to record.

The package is one state machine, split by reason to change:

- :mod:`.states`: the states, actions, which actions each state allows, ladders and constants;
- :mod:`.places`: the coordinating level and the unit above a place;
- :mod:`.model`: :class:`Case`, :class:`Command`, :class:`Context`, :class:`OriginalCase`,
  :class:`Transition`, :class:`Decision`, :class:`IllegalAction`;
- :mod:`.guards`: what a case allows now (:func:`allowed_actions`, :func:`max_reopens`);
- :mod:`.builder`: how a decision records its steps and assigns a case to a handler;
- the rules, one module per concern, each with its table of actions (``HANDLERS``):
  :mod:`.handling` (main path, check, transfer, mediation), :mod:`.outcomes` (outcomes, the
  original a duplicate names, reject / cancel / merge_duplicate), :mod:`.corrections`
  (recategorize, return), :mod:`.clock` (extension, shelving, 督办), :mod:`.closed_loop`
  (callback, reopen);
- :mod:`.machine`: :func:`decide` and :func:`supervise`.

This package's namespace is the public face: callers import from
``services.dispatch.domain.lifecycle``; its modules import each other, never the package.

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

from services.dispatch.domain.lifecycle.guards import (
    allowed_actions,
    max_reopens,
)
from services.dispatch.domain.lifecycle.machine import (
    decide,
    supervise,
)
from services.dispatch.domain.lifecycle.model import (
    Case,
    Command,
    Context,
    Decision,
    IllegalAction,
    OriginalCase,
    Transition,
    replace,
)
from services.dispatch.domain.lifecycle.places import (
    place_level,
    unit_at,
)
from services.dispatch.domain.lifecycle.states import (
    ACCEPTED,
    ACKNOWLEDGED,
    ACTION_ACTORS,
    ACTION_LABELS,
    ACTIONS,
    AFTER_CLOSURE_ACTIONS,
    CANCELLED,
    CHECKING,
    CLOSED,
    DISCARD_OUTCOMES,
    DISPATCHED,
    ESCALATION_LEVELS,
    FILED,
    IN_PROGRESS,
    LEAVING_ACTIONS,
    MAX_SUPERVISION_LEVEL,
    MEDIATING,
    MEDIATION_NOTE_LABELS,
    POLICE,
    REJECTED,
    REPORTED,
    RESOLVED,
    SHELVED,
    STATE_LABELS,
    STATES,
    STREET_OFFICE,
    SUPERVISABLE_STATES,
    SYSTEM_ACTIONS,
    TERMINAL_STATES,
    TRANSFER_ESCALATION_THRESHOLD,
    USER_ACTIONS,
    VIOLENCE_FLAG,
)

__all__ = [
    "ACCEPTED",
    "ACKNOWLEDGED",
    "ACTIONS",
    "ACTION_ACTORS",
    "ACTION_LABELS",
    "AFTER_CLOSURE_ACTIONS",
    "CANCELLED",
    "CHECKING",
    "CLOSED",
    "Case",
    "Command",
    "Context",
    "DISCARD_OUTCOMES",
    "DISPATCHED",
    "Decision",
    "ESCALATION_LEVELS",
    "FILED",
    "LEAVING_ACTIONS",
    "IN_PROGRESS",
    "IllegalAction",
    "MAX_SUPERVISION_LEVEL",
    "MEDIATING",
    "MEDIATION_NOTE_LABELS",
    "OriginalCase",
    "POLICE",
    "REJECTED",
    "REPORTED",
    "RESOLVED",
    "SHELVED",
    "STATES",
    "STATE_LABELS",
    "STREET_OFFICE",
    "SUPERVISABLE_STATES",
    "SYSTEM_ACTIONS",
    "TERMINAL_STATES",
    "TRANSFER_ESCALATION_THRESHOLD",
    "Transition",
    "USER_ACTIONS",
    "VIOLENCE_FLAG",
    "allowed_actions",
    "decide",
    "max_reopens",
    "place_level",
    "replace",
    "supervise",
    "unit_at",
]
