"""What a case allows now: the guards of each action beyond its state (one extension, one
approval, supervision up to level 2, escalation below the top, one callback per closure, the
reopen bound) and the refusal (:class:`IllegalAction`) that names them."""

from __future__ import annotations

from datetime import datetime

from services.dispatch.domain.lifecycle.model import Case, Context, IllegalAction
from services.dispatch.domain.lifecycle.states import (
    ESCALATION_LEVELS,
    LEAVING_ACTIONS,
    MAX_SUPERVISION_LEVEL,
    STATE_ACTIONS,
)
from shared.domain.tenants import DEFAULT_MAX_REOPENS


def max_reopens(context: Context | None) -> int:
    """How often a case may be reopened: the tenant's ``max_reopens``, else
    :data:`~shared.domain.tenants.DEFAULT_MAX_REOPENS` (3, [P22])."""
    if context is not None and context.tenant is not None:
        return context.tenant.max_reopens
    return DEFAULT_MAX_REOPENS


def merged_duplicates_refusal(action: str, merged: tuple[str, ...]) -> str:
    """Why a case with merged duplicates (``merged``, their ids) may not take ``action``, one of
    :data:`LEAVING_ACTIONS`: the duplicates count as this case and only as it (docs/kpis.md §2
    "Duplicates"), so were it rejected, cancelled or merged they would count nowhere
    (docs/domain.md §3(c)5). The refusal says how many and what to do instead; it does not name
    them: a duplicate may lie in a place the caller may not see (within 50 m, across a grid's or a
    street's edge), and the refusal reaches the caller whatever its scope."""
    head = f"原件有合并重复件 {len(merged)} case(s) merged into this case as its duplicates count as this case"
    if action == "merge_duplicate":
        return (f"{head}: merged itself, it and they would name a case that counts nowhere; merge the "
                "other case into this one instead")
    return (f"{head}: {action} would leave them counted nowhere; close it through the check "
            "(resolve, with outcome unfounded or not_remit if so) instead")


def guard(case: Case, action: str, now: datetime | None, context: Context | None = None) -> str | None:
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
    elif action in LEAVING_ACTIONS and context is not None and context.merged_duplicates:
        return merged_duplicates_refusal(action, context.merged_duplicates)
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
    return tuple(a for a in STATE_ACTIONS[case.state] if guard(case, a, now, context) is None)



def illegal(case: Case, now: datetime, reason: str, action: str,
             context: Context | None = None) -> IllegalAction:
    return IllegalAction(case.state, allowed_actions(case, now, context), reason, action)

