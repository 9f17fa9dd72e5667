"""``decide``: one command applied to one case, by the state's allowed actions, the case's guards
and the action's rule (each rule module's ``HANDLERS``); and ``supervise``, its 督办 shorthand."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType

from services.dispatch.domain.lifecycle.builder import Builder
from services.dispatch.domain.lifecycle.clock import HANDLERS as CLOCK_ACTIONS
from services.dispatch.domain.lifecycle.closed_loop import (
    HANDLERS as CLOSED_LOOP_ACTIONS,
)
from services.dispatch.domain.lifecycle.corrections import (
    HANDLERS as CORRECTION_ACTIONS,
)
from services.dispatch.domain.lifecycle.guards import guard, illegal
from services.dispatch.domain.lifecycle.handling import HANDLERS as MAIN_PATH_ACTIONS
from services.dispatch.domain.lifecycle.model import (
    Case,
    Command,
    Context,
    Decision,
    require_aware,
)
from services.dispatch.domain.lifecycle.outcomes import HANDLERS as DISCARD_ACTIONS
from services.dispatch.domain.lifecycle.states import (
    STATE_ACTIONS,
    STATE_LABELS,
    TERMINAL_STATES,
)

_HANDLERS: Mapping[str, Callable[[Builder, Context], None]] = MappingProxyType({
    **MAIN_PATH_ACTIONS, **DISCARD_ACTIONS, **CORRECTION_ACTIONS, **CLOCK_ACTIONS,
    **CLOSED_LOOP_ACTIONS,
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
    require_aware(now, "now")
    ctx = context if context is not None else Context()
    action = command.action
    if action not in _HANDLERS:
        raise illegal(case, now, f"{action!r} is not a known action", action, ctx)
    if case.state in TERMINAL_STATES and action not in STATE_ACTIONS[case.state]:
        after = STATE_ACTIONS[case.state]
        rest = f"; it accepts only {', '.join(after)}" if after else " and accepts no action"
        raise illegal(case, now, f"{case.state} ({STATE_LABELS[case.state]}) has ended{rest}",
                       action, ctx)
    if action not in STATE_ACTIONS[case.state]:
        raise illegal(case, now, f"{action} is not an action of state {case.state} "
                       f"({STATE_LABELS[case.state]})", action, ctx)
    why = guard(case, action, now, ctx)
    if why is not None:
        raise illegal(case, now, why, action, ctx)
    builder = Builder(case, command, now, ctx)
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

