"""Which actions an actor may ask for on a case, judged against intake's case view (a first
check; dispatch applies the action against its own, authoritative state).

This is the one module of intake that imports dispatch's lifecycle: cross-service import, removed
by the closed-loop issue (dispatch becomes the one authority for actions).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

# cross-service import, removed by the closed-loop issue (dispatch becomes the one authority for actions)
from services.dispatch.domain import lifecycle

#: Actions an actor may ask for: the lifecycle's user actions plus 逐级上报 (escalate: "handle it if
#: you can, report it up level by level if you cannot", docs/seeds.md block E).
API_ACTIONS = lifecycle.USER_ACTIONS + ("escalate",)


def allowed_actions(view: dict) -> tuple[str, tuple[str, ...]]:
    """The case's state as the view knows it (``reported`` for a state the lifecycle does not
    know) and the actions allowed in it.

    ``view`` is a case as store.py ``load_case`` returns it. The view does not know the extension
    flags: the actions allowed under either flag value are allowed here, and dispatch
    (authoritative) refuses the rest with ``case.action_rejected``.
    """
    state = view["state"] if view["state"] in lifecycle.STATES else lifecycle.REPORTED
    current = lifecycle.Case(
        state=state,
        department=view["department"],
        # the view keeps no rung; the allowed actions of a mediating case do not depend on it
        mediation_level="grid" if state == lifecycle.MEDIATING else None,
        paused_since=datetime.now(timezone.utc) if state == lifecycle.SHELVED else None,
        deadline=view["deadline"],
        transfer_count=view["transfer_count"],
        return_count=view["return_count"],
        rework_count=view["rework_count"],
        supervision_level=view["supervision_level"],
        place_code=view["report"]["place_code"],
    )
    allowed = tuple(dict.fromkeys(
        lifecycle.allowed_actions(current) + lifecycle.allowed_actions(dataclasses.replace(current, extension_requested=True))
    ))
    return current.state, allowed
