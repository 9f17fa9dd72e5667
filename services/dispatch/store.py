"""Dispatch's case book: reads and writes ``dispatch.cases``, ``dispatch.timers``,
``dispatch.pending_actions`` and the outbox inside a caller's transaction.

The pure decisions are in :mod:`services.dispatch.domain` (the state machine, what a report becomes,
the events, the deadlines); this module loads and stores cases around them:

- A new report's row is inserted once (``ON CONFLICT DO NOTHING``: a redelivered report is no new
  case); :func:`case_row` builds it, historical or live.
- An action that arrives before its case's report is parked in ``pending_actions`` and applied
  right after the report (:meth:`CaseBook.take_parked`).
- An action is decided with the case's :class:`~services.dispatch.domain.lifecycle.Context`:
  the tenant's route and limit for the case's category and place — for a correction
  (``recategorize``, a ``return`` with a category) those of the corrected ones — plus the
  taxonomy, the case's id, the case a ``duplicate_of`` names and, for an action that would take
  the case out of the figures (cancel, reject, merge_duplicate), the cases merged into it as its
  duplicates, found in the book and among the merges decided earlier in the batch
  (:meth:`CaseBook.merged_into`; docs/domain.md §3(c)5), for the command's checks
  (:meth:`CaseBook.action_context`). The
  row's ``category_code``, ``place_code``, ``status``, ``department`` and ``closed_at`` follow
  the case.
- Timers (services/dispatch/domain/deadlines.py) are rows of ``dispatch.timers``; a new deadline
  replaces the unfired ones. :meth:`CaseBook.fire_due_timers` claims due rows with ``FOR UPDATE
  SKIP LOCKED`` and marks them fired in the same transaction as the events they cause, so each
  fires exactly once even with several dispatch instances.
- Derived events go to ``dispatch.outbox`` for ``TOPIC_LIFECYCLE`` (:meth:`CaseBook.publish`); the
  outbox relay publishes them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.dispatch import db
from services.dispatch.domain import deadlines, lifecycle
from services.dispatch.domain.events import (
    action_id_of,
    action_rejected,
    transition_events,
)
from services.dispatch.domain.lifecycle import (
    LEAVING_ACTIONS,
    Case,
    Command,
    Context,
    IllegalAction,
    OriginalCase,
)
from services.dispatch.domain.reports import CaseState, case_context
from services.dispatch.domain.routing import RouteDecision
from shared.contract.events import CaseActionRequested, CaseReported, Envelope
from shared.contract.topics import TOPIC_LIFECYCLE
from shared.domain.taxonomy import Taxonomy
from shared.domain.tenants import TenantConfig
from shared.domain.workcalendar import Limit
from shared.platform.db import any_of, insert_unnest
from shared.platform.outbox import OutboxRow, add_to_outbox
from shared.platform.tally import tally

log = logging.getLogger(__name__)


# --- (de)serialising the lifecycle Case ----------------------------------------------------------


def case_to_json(case: Case) -> dict[str, Any]:
    """The case as JSON-ready dict (datetimes ISO 8601, the limit as ``{value, unit}``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(case):
        value = getattr(case, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Limit):
            value = {"value": value.value, "unit": value.unit}
        elif isinstance(value, frozenset):
            value = sorted(value)
        out[f.name] = value
    return out


def case_from_json(data: dict[str, Any]) -> Case:
    """Inverse of :func:`case_to_json`. A case stored before a field existed gets its default;
    unknown keys are ignored."""
    kwargs = dict(data)
    for name in ("deadline", "paused_since", "dispatched_at"):
        if kwargs.get(name):
            kwargs[name] = datetime.fromisoformat(kwargs[name])
    if kwargs.get("limit"):
        kwargs["limit"] = Limit(kwargs["limit"]["value"], kwargs["limit"]["unit"])
    kwargs["flags"] = frozenset(kwargs.get("flags") or ())
    known = {f.name for f in dataclasses.fields(Case)}
    return Case(**{k: v for k, v in kwargs.items() if k in known})


def original_of(row: dict[str, Any]) -> OriginalCase:
    """What a duplicate's check needs of the stored case it names (``dispatch.cases`` row): id,
    tenant, state and, if it is itself a duplicate, the case it names. A historical record (no
    lifecycle) is in its recorded status."""
    case = case_from_json(row["lifecycle"]) if row["lifecycle"] is not None else None
    return OriginalCase(case_id=str(row["case_id"]), tenant=row["tenant"],
                        state=case.state if case is not None else row["status"],
                        duplicate_of=case.duplicate_of if case is not None else None)


def merged_original(row: dict[str, Any]) -> str | None:
    """The original (id as text) a stored case was merged into as its duplicate: cancelled with
    outcome ``duplicate``; ``None`` for any other case."""
    case = row["lifecycle"]
    if row["status"] != lifecycle.CANCELLED or case is None or case.get("outcome") != "duplicate":
        return None
    return case.get("duplicate_of")


# --- rows ------------------------------------------------------------------------------------------


def case_row(report: CaseReported, state: CaseState, case: Case | None, *, seq: int, emitted: int) -> dict[str, Any]:
    """The new ``dispatch.cases`` row of a reported case: ``state`` as decided, ``case`` the live
    lifecycle case (``None`` for a historical record), ``seq`` its last transition sequence,
    ``emitted`` the lifecycle events derived for it."""
    return {
        "case_id": report.case_id,
        "tenant": report.tenant,
        "place_code": report.place_code,
        "category_code": report.category_code,
        "status": state.status,
        "target_kind": state.target_kind,
        "department": state.department,
        "rule": state.rule,
        "mediation_level": state.mediation_level,
        "history": report.history is not None,
        "reported_at": report.reported_at,
        "dispatched_at": state.dispatched_at,
        "closed_at": state.closed_at,
        "transfer_count": state.transfer_count,
        "urgency": report.urgency,
        "lifecycle": case_to_json(case) if case is not None else None,
        "seq": seq,
        "events_emitted": emitted,
    }


# --- the case book ----------------------------------------------------------------------------------

#: The columns of ``dispatch.cases`` an action may change (the rest is the report's).
ROW_FOLLOWS_CASE = ("lifecycle", "status", "seq", "department", "target_kind", "mediation_level", "transfer_count",
                    "dispatched_at", "events_emitted", "updated_at", "category_code", "place_code", "closed_at")


@dataclasses.dataclass(frozen=True)
class Decided:
    """One action decided (:meth:`CaseBook.decide`): its events, the case's row after it (``None``:
    refused, nothing changes) and its new timers (``None``: keep them)."""

    events: list[Envelope]
    row: dict[str, Any] | None
    timers: tuple[Case, int, datetime | None] | None



class CaseBook:
    """Reads and writes ``dispatch.cases``, ``dispatch.timers``, ``dispatch.pending_actions`` and
    the outbox inside a caller's transaction. ``clock`` is the service's clock
    (services/dispatch/clock.py), the time the handlers apply events at."""

    def __init__(self, tenants: dict[str, TenantConfig], taxonomy: Taxonomy, clock) -> None:
        self.tenants = tenants
        self.taxonomy = taxonomy
        self.clock = clock

    def context(self, tenant: str, category_code: str, place_code: str, urgency: str, at: datetime) -> Context:
        """Routing decision and limit for a case of ``tenant``
        (:func:`services.dispatch.domain.reports.case_context`)."""
        return case_context(self.tenants.get(tenant), self.taxonomy, category_code, place_code, urgency, at)

    def action_context(self, row, cmd: CaseActionRequested, now: datetime, original: dict[str, Any] | None = None,
                       merged: tuple[str, ...] = ()) -> Context:
        """The context of ``cmd`` on the stored case ``row``: routed and limited for the corrected
        category and place if the command corrects them (``recategorize``, ``return``), else for
        the case's own; a dispatcher's explicit ``target_department`` replaces the routing table's
        answer; with the taxonomy, the case's id and tenant, and the stored row of the case the
        command's ``duplicate_of`` names (``original``, ``None`` if dispatch holds none) and the
        ids of the cases merged into this one (``merged``) for the command's checks."""
        category, place = row["category_code"], row["place_code"]
        if cmd.action in ("recategorize", "return"):
            category = cmd.category_code or category
            place = cmd.to_place_code or place
        ctx = self.context(row["tenant"], category, place, row["urgency"] or "一般", now)
        if cmd.target_department:
            # a dispatcher's explicit choice replaces the routing table's answer
            ctx = dataclasses.replace(
                ctx, route=RouteDecision(target_kind="department", department=cmd.target_department,
                                         rule="manual", mediation_level=None)
            )
        return dataclasses.replace(ctx, taxonomy=self.taxonomy, case_id=str(row["case_id"]), case_tenant=row["tenant"],
                                   original=original_of(original) if original is not None else None,
                                   merged_duplicates=merged)

    async def insert_new(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> set:
        """Insert :func:`case_row` rows; return the case ids that were new (a case already stored
        keeps its row)."""
        # the rows as arrays (insert_unnest): one statement text for any batch size, where an
        # executemany with RETURNING is sent as a multi-row VALUES, a new text per batch size,
        # each kept in every pooled connection's prepared-statement cache (issue 13)
        return set(await insert_unnest(conn, db.cases, rows, on_conflict_do_nothing=True, returning="case_id"))

    async def take_parked(self, conn: AsyncConnection, case_ids: set) -> list[CaseActionRequested]:
        """Remove and return the actions parked for ``case_ids``, in the order they arrived."""
        if not case_ids:
            return []
        p = db.pending_actions
        parked = (
            await conn.execute(sa.delete(p).where(any_of(p.c.case_id, case_ids)).returning(p.c.payload, p.c.received_at))
        ).all()
        return [CaseActionRequested.model_validate(payload) for payload, _ in sorted(parked, key=lambda r: r[1])]

    async def publish(self, conn: AsyncConnection, events: Iterable[Envelope]) -> None:
        """Write ``events`` to the outbox for ``TOPIC_LIFECYCLE`` (the relay sends them)."""
        await add_to_outbox(conn, db.outbox, (OutboxRow(TOPIC_LIFECYCLE, e) for e in events))

    async def apply_actions(self, conn: AsyncConnection, cmds: list[CaseActionRequested],
                            now: datetime) -> list[Envelope]:
        """Apply requested actions, in the order given, to their stored cases; return the events to
        publish. Set-based (issue 13): the batch's cases are read and locked in one statement
        (in case-id order, so two instances lock in the same order), the actions are decided in
        memory one after the other (a later action of a case sees the earlier one's result), and
        the rows, timers and parked actions are written with one statement per table. An action
        for a case dispatch does not know yet is parked (``pending_actions``)."""
        if not cmds:
            return []
        c = db.cases
        # the cases acted on and the originals their duplicates name (merge_duplicate), locked in one order
        ids = sorted({cmd.case_id for cmd in cmds} | {cmd.duplicate_of for cmd in cmds if cmd.duplicate_of})
        rows = {
            r["case_id"]: dict(r)
            for r in (await conn.execute(
                sa.select(c).where(any_of(c.c.case_id, ids)).order_by(c.c.case_id).with_for_update()
            )).mappings()
        }
        # the merged duplicates of the cases an action would take out of the figures (their refusal
        # counts them); merges decided in this batch are added as they happen, and those of a case
        # whose other action is refused are looked up then (the refusal's allowed actions)
        leaving = [rows[cmd.case_id] for cmd in cmds if cmd.action in LEAVING_ACTIONS and cmd.case_id in rows]
        merged = await self.merged_into(conn, leaving)
        looked_up = {str(row["case_id"]) for row in leaving}
        events: list[Envelope] = []
        parked: list[dict[str, Any]] = []
        changed: set = set()
        timers: dict[Any, tuple[Case, int, datetime | None]] = {}
        for cmd in cmds:
            row = rows.get(cmd.case_id)
            if row is None or row["lifecycle"] is None:
                parked.append({"event_id": cmd.event_id, "case_id": cmd.case_id, "payload": cmd.model_dump(mode="json")})
                continue
            original = rows.get(cmd.duplicate_of) if cmd.duplicate_of else None
            decided = self.decide(row, cmd, now, original, tuple(sorted(merged.get(str(cmd.case_id), ()))))
            if decided.row is None and str(cmd.case_id) not in looked_up:
                # a refusal lists the actions the case allows, which its merged duplicates narrow:
                # look them up for this case too (refusals are rare; the leaving actions' cases
                # were looked up above) and decide again
                looked_up.add(str(cmd.case_id))
                for key, found in (await self.merged_into(conn, [row])).items():
                    merged.setdefault(key, set()).update(found)
                if merged.get(str(cmd.case_id)):
                    decided = self.decide(row, cmd, now, original, tuple(sorted(merged[str(cmd.case_id)])))
            events += decided.events
            if decided.row is not None:
                rows[cmd.case_id] = decided.row
                changed.add(cmd.case_id)
                root = merged_original(decided.row)
                if root is not None:
                    merged.setdefault(root, set()).add(str(cmd.case_id))
            if decided.timers is not None:
                timers[cmd.case_id] = decided.timers
        if parked:
            await conn.execute(insert(db.pending_actions).on_conflict_do_nothing(), parked)
        if changed:
            await conn.execute(
                sa.update(c).where(c.c.case_id == sa.bindparam("b_case_id")).values(
                    {col: sa.bindparam(f"b_{col}") for col in ROW_FOLLOWS_CASE}),
                [{"b_case_id": cid, **{f"b_{col}": rows[cid][col] for col in ROW_FOLLOWS_CASE}} for cid in changed],
            )
        if timers:
            await self.reschedule(conn, timers, now)
        return events

    async def merged_into(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[str, set[str]]:
        """The cases merged as duplicates into the stored cases ``rows`` (``{original id: {duplicate
        id, …}}``, ids as text): cancelled with outcome ``duplicate`` naming one of them (a
        duplicate is of the original's tenant, so the tenant and status index finds them)."""
        if not rows:
            return {}
        c = db.cases
        named = c.c.lifecycle["duplicate_of"].astext
        found = await conn.execute(
            sa.select(c.c.case_id, named).where(
                any_of(c.c.tenant, {r["tenant"] for r in rows}), c.c.status == lifecycle.CANCELLED,
                c.c.lifecycle["outcome"].astext == "duplicate", any_of(named, {str(r["case_id"]) for r in rows}))
        )
        merged: dict[str, set[str]] = {}
        for case_id, original in found:
            merged.setdefault(original, set()).add(str(case_id))
        return merged

    def decide(self, row: dict[str, Any], cmd: CaseActionRequested, now: datetime,
               original: dict[str, Any] | None = None, merged: tuple[str, ...] = ()) -> Decided:
        """``cmd`` decided on the case as ``row`` holds it (``original``: the row of the case its
        ``duplicate_of`` names, if dispatch holds it; ``merged``: the ids of the cases merged into
        it as its duplicates): the events, the row after it (``None``
        when refused) and the timers to set (``(case, generation, dispatched_at)``, ``None`` when
        neither the deadline nor the state changed). ``closed_at`` is set when the case closes (not
        again on a callback) and cleared when it is reopened; a corrected category or place
        replaces the row's."""
        case = case_from_json(row["lifecycle"])
        if case.category_code is None:  # stored before the case kept its category
            case = dataclasses.replace(case, category_code=row["category_code"])
        ctx = self.action_context(row, cmd, now, original, merged)
        command = Command(action=cmd.action, actor_role=cmd.actor_role, note=cmd.note, evidence=cmd.evidence,
                          target_department=cmd.target_department, extension_days=cmd.extension_days,
                          actor_ref=cmd.actor_ref, outcome=cmd.outcome,
                          duplicate_of=str(cmd.duplicate_of) if cmd.duplicate_of else None,
                          satisfaction=cmd.satisfaction, resident_resolved=cmd.resident_resolved,
                          category_code=cmd.category_code, to_place_code=cmd.to_place_code)
        try:
            new_case, transitions = lifecycle.decide(case, command, now, ctx)
            if cmd.action == "file" and new_case.state == lifecycle.FILED:
                new_case, more = lifecycle.decide(new_case, Command(action="dispatch", actor_role="system"), now, ctx)
                transitions += more
        except IllegalAction as exc:
            return Decided([action_rejected(cmd, row["tenant"], row["place_code"], exc, now)], None, None)
        events = transition_events(cmd.case_id, row["tenant"], row["place_code"], transitions, row["seq"] + 1,
                                   action_id=action_id_of(cmd))
        dispatched_at = next((t.at for t in transitions if t.action == "dispatch"), row["dispatched_at"])
        seq = row["seq"] + len(transitions)
        was_closed = case.state == lifecycle.CLOSED
        closed_at = row["closed_at"]
        if new_case.state == lifecycle.CLOSED and not was_closed:
            closed_at = now
        elif was_closed and new_case.state != lifecycle.CLOSED:
            closed_at = None
        after = {
            **row,
            "lifecycle": case_to_json(new_case),
            "status": new_case.state,
            "seq": seq,
            "department": new_case.department or "triage",
            "target_kind": new_case.target_kind or "triage",
            "mediation_level": new_case.mediation_level,
            "transfer_count": new_case.transfer_count,
            "dispatched_at": dispatched_at,
            "events_emitted": row["events_emitted"] + len(events),
            "updated_at": now,
            "category_code": new_case.category_code or row["category_code"],
            "place_code": new_case.place_code or row["place_code"],
            "closed_at": closed_at,
        }
        rescheduled = case.deadline != new_case.deadline or case.state != new_case.state
        return Decided(events, after, (new_case, seq, new_case.dispatched_at or dispatched_at) if rescheduled else None)

    async def reschedule(self, conn: AsyncConnection, cases: dict[Any, tuple[Case, int, datetime | None]],
                         now: datetime) -> None:
        """Replace the unfired timers of ``cases`` (``{case_id: (case, generation, dispatched_at)}``)
        by yellow/red/higher for their current deadlines: one DELETE and one INSERT."""
        t = db.timers
        await conn.execute(sa.delete(t).where(any_of(t.c.case_id, cases), t.c.fired_at.is_(None)))
        await self._insert_timers(conn, ((cid, *timing) for cid, timing in cases.items()), now)

    async def schedule_new(self, conn: AsyncConnection, cases: Iterable[tuple[Any, Case, datetime | None]],
                           now: datetime) -> None:
        """The first timers (generation 0) of cases just inserted (``(case_id, case,
        dispatched_at)``): a new case has no timers to replace."""
        await self._insert_timers(conn, ((cid, case, 0, at) for cid, case, at in cases), now)

    async def _insert_timers(self, conn: AsyncConnection, cases: Iterable[tuple[Any, Case, int, datetime | None]],
                             now: datetime) -> None:
        """Insert yellow/red/higher timers of ``(case_id, case, generation, dispatched_at)`` in one statement."""
        rows = [{"case_id": case_id, "kind": kind, "generation": generation, "due_at": due_at}
                for case_id, case, generation, dispatched_at in cases
                for kind, due_at in deadlines.timers_for(case, now, dispatched_at)]
        if rows:
            await conn.execute(insert(db.timers).on_conflict_do_nothing(), rows)

    async def fire_due_timers(self, conn: AsyncConnection, now: datetime, limit: int = 50) -> list[Envelope]:
        """Claim due timers (SKIP LOCKED), apply them, mark them fired; return the events."""
        t, c = db.timers, db.cases
        due = (
            await conn.execute(
                sa.select(t).where(t.c.fired_at.is_(None), t.c.due_at <= now)
                .order_by(t.c.due_at).limit(limit).with_for_update(skip_locked=True)
            )
        ).mappings().all()
        events: list[Envelope] = []
        for timer in due:
            await conn.execute(
                sa.update(t).where(t.c.case_id == timer["case_id"], t.c.kind == timer["kind"],
                                   t.c.generation == timer["generation"]).values(fired_at=now)
            )
            row = (
                await conn.execute(sa.select(c).where(c.c.case_id == timer["case_id"]).with_for_update())
            ).mappings().one_or_none()
            if row is None or row["lifecycle"] is None:
                continue
            try:
                alert = deadlines.fire(
                    timer["kind"], timer["generation"], timer["due_at"], case_from_json(row["lifecycle"]),
                    case_id=timer["case_id"], tenant=row["tenant"], place_code=row["place_code"], seq=row["seq"],
                    tenant_config=self.tenants.get(row["tenant"]), now=now)
            except IllegalAction as exc:
                log.info("timer %s for %s not applied: %s", timer["kind"], timer["case_id"], exc)
                continue
            if alert is None:
                continue
            events += alert.events
            values: dict[str, Any] = {"events_emitted": c.c.events_emitted + len(alert.events)}
            if alert.case is not None:
                values.update(lifecycle=case_to_json(alert.case), seq=row["seq"] + len(alert.transitions), updated_at=now)
            await conn.execute(sa.update(c).where(c.c.case_id == timer["case_id"]).values(**values))
        return events


async def progress(engine: AsyncEngine, tenant: str | None) -> tuple[int, int]:
    """Cases dispatch holds and lifecycle events derived for them, of ``tenant`` or of all tenants
    (from the tally the triggers keep: shared/platform/tally.py)."""
    totals = await tally(engine, db.case_tally, tenant)
    return totals["cases"], totals["events_emitted"]
