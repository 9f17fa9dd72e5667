"""What an ending step records: the outcome (结案类型) and, for a duplicate, the original it names
(docs/domain.md §3(c)5 "Duplicates", docs/kpis.md §2); the discarding steps ``reject``, ``cancel``
and ``merge_duplicate`` (合并重复件)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from services.dispatch.domain.lifecycle.builder import Builder
from services.dispatch.domain.lifecycle.model import Context, replace
from services.dispatch.domain.lifecycle.states import (
    CANCELLED,
    DISCARD_OUTCOMES,
    REJECTED,
    REPORTED,
    STATE_LABELS,
)


def original_of(b: Builder) -> str:
    """The case ``duplicate_of`` names (docs/domain.md §3(c)5 "Duplicates"): required; not the case
    itself; a case dispatch holds (``context.original``) of the same tenant (another tenant's case
    is refused with the same words as a case dispatch does not hold); not rejected or
    cancelled, since such a case is outside every figure and the matter would count nowhere
    (docs/kpis.md §2); accepted (受理), since a report still awaiting the clerk's ``accept`` is
    outside every figure too, and while it waited (or were it never accepted) the matter would
    count only as 合并重复件; and not itself a duplicate, so that every duplicate names the case that
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
        # intake has already refused an original that is no case of the tenant the caller sees
        # (422 unknown_original), so here it is most likely one reported moments ago whose report
        # has not reached dispatch yet (another partition): say so, and that a new request may pass
        raise b.refuse(f"原件不存在或尚未送达 the original case {original} is not a case dispatch holds "
                       "(yet): a case reported moments ago may not have reached dispatch; send the "
                       "merge again shortly")
    if found.state in (REJECTED, CANCELLED):
        if found.duplicate_of is not None:
            raise b.refuse(f"原件本身是重复件 the case {original} is itself a duplicate of "
                           f"{found.duplicate_of}: name that case")
        raise b.refuse(f"原件{STATE_LABELS[found.state]} the original case {original} is {found.state}: "
                       "it is not counted, so its duplicate would count nowhere")
    if found.state == REPORTED:
        raise b.refuse(f"原件尚未受理 the original case {original} has not been accepted yet: it is not "
                       "counted until it is, so its duplicate would count nowhere; accept it first, or "
                       "name this case as its original instead")
    return original


def outcome_fields(b: Builder, allowed: tuple[str, ...], default: str) -> dict:
    """The outcome fields an ending step (or ``resolve``) sets: the command's outcome, else
    ``default``; ``unresolved`` needs a reason in the note, ``duplicate`` the original case."""
    outcome = b.command.outcome or default
    if outcome not in allowed:
        raise b.refuse(f"{b.command.action} records one of {', '.join(allowed)}, not {outcome!r}")
    if outcome == "unresolved" and not b.command.note.strip():
        raise b.refuse("未解决须说明原因 (outcome unresolved needs the reason in note)")
    return {"outcome": outcome, "duplicate_of": original_of(b) if outcome == "duplicate" else None}

def _reject(b: Builder, ctx: Context) -> None:
    fields = outcome_fields(b, DISCARD_OUTCOMES, "unfounded")
    b.step("reject", replace(b.case, state=REJECTED, **fields), "不予受理 rejected (invalid report)",
           outcome=True)


def _cancel(b: Builder, ctx: Context) -> None:
    fields = outcome_fields(b, DISCARD_OUTCOMES, "unfounded")
    b.step("cancel", replace(b.case, state=CANCELLED, **fields), "作废 cancelled", outcome=True)


def _merge(b: Builder, ctx: Context) -> None:
    original = original_of(b)
    b.step("merge_duplicate", replace(b.case, state=CANCELLED, outcome="duplicate", duplicate_of=original),
           f"合并重复件 merged into {original} as its duplicate", outcome=True)


#: The discarding actions and their rules (:func:`~services.dispatch.domain.lifecycle.machine.decide` runs them).
HANDLERS: Mapping[str, Callable[[Builder, Context], None]] = MappingProxyType({
    "reject": _reject, "cancel": _cancel, "merge_duplicate": _merge,
})
