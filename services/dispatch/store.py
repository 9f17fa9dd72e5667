"""Dispatch's case book: applying reports, actions and deadline timers to stored cases.

The pure decisions are :mod:`services.dispatch.domain.lifecycle` (state machine) and
:mod:`services.dispatch.domain.reports` (history replay); this module loads and stores cases, turns
lifecycle transitions into events, schedules the deadline timers and fires them.

Policy choices (documented for users in README):

- A report from a grid worker (channel ``grid_worker``) is accepted and filed by the system at
  once (网格员上报 is already verified on site) and dispatched by the routing table; reports from
  other channels wait in ``reported`` for the intake clerk's ``accept``.
- Events: the dispatch transition is published as ``case.dispatched`` (department, rule,
  deadline); every other transition as ``case.transitioned``; each carries the case's transition
  ``sequence``. A refused action yields ``case.action_rejected``.
- An action that arrives before its case's report is parked in ``pending_actions`` and applied
  right after the report.
- Timers (yellow at 80 %, red at the deadline, higher-level supervision 5 working days after red;
  domain.md §3(d)4) are rows of ``dispatch.timers``; a new deadline (extension, resumed shelving)
  replaces the unfired ones; a closed, cancelled or shelved case has none. The timer loop claims
  due rows with ``FOR UPDATE SKIP LOCKED`` and marks them fired in the same transaction as the
  events they cause, so each fires exactly once even with several dispatch instances.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch import db
from services.dispatch.domain import lifecycle
from services.dispatch.domain.lifecycle import Case, Command, Context, IllegalAction, Transition
from services.dispatch.domain.routing import RouteDecision, route
from shared.contract.events import (
    CaseActionRejected,
    CaseActionRequested,
    CaseDispatched,
    CaseReported,
    CaseSupervised,
    CaseTransitioned,
    Envelope,
    derive_id,
)
from shared.domain.taxonomy import Taxonomy
from shared.domain.tenants import TenantConfig
from shared.domain.workcalendar import Limit, higher_supervision_at, limits_for, yellow_at

log = logging.getLogger(__name__)

AUTO_FILED_CHANNELS = frozenset({"grid_worker"})


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
    """Inverse of :func:`case_to_json`."""
    kwargs = dict(data)
    for name in ("deadline", "paused_since"):
        if kwargs.get(name):
            kwargs[name] = datetime.fromisoformat(kwargs[name])
    if kwargs.get("limit"):
        kwargs["limit"] = Limit(kwargs["limit"]["value"], kwargs["limit"]["unit"])
    kwargs["flags"] = frozenset(kwargs.get("flags") or ())
    known = {f.name for f in dataclasses.fields(Case)}
    return Case(**{k: v for k, v in kwargs.items() if k in known})


# --- transitions → events ---------------------------------------------------------------------------


def transition_events(case_id, tenant: str, place_code: str, transitions: tuple[Transition, ...],
                      first_seq: int, rule: str | None = None) -> list[Envelope]:
    """Events for ``transitions`` numbered from ``first_seq`` (ids derived from case and number)."""
    events: list[Envelope] = []
    base = {"case_id": case_id, "tenant": tenant, "place_code": place_code}
    for i, t in enumerate(transitions):
        seq = first_seq + i
        if t.action == "dispatch":
            events.append(
                CaseDispatched(
                    event_id=derive_id(case_id, "case.dispatched", seq),
                    occurred_at=t.at,
                    target_kind=t.target_kind or "department",
                    department=t.department or "triage",
                    rule=(t.rule or rule or "lifecycle")[:120],
                    mediation_level=t.mediation_level,
                    deadline=t.deadline,
                    sequence=seq,
                    state=t.to_state,
                    **base,
                )
            )
        else:
            events.append(
                CaseTransitioned(
                    event_id=derive_id(case_id, "case.transitioned", seq),
                    occurred_at=t.at,
                    action=t.action,
                    from_state=t.from_state,
                    to_state=t.to_state,
                    actor_role=t.actor_role,
                    actor_ref=t.actor_ref,
                    reason=(t.reason or t.note or "")[:500],
                    sequence=seq,
                    department=t.department,
                    target_kind=t.target_kind,
                    mediation_level=t.mediation_level,
                    deadline=t.deadline,
                    transfer_count=t.transfer_count,
                    return_count=t.return_count,
                    rework_count=t.rework_count,
                    supervision_level=t.supervision_level,
                    **base,
                )
            )
    return events


# --- the case book ----------------------------------------------------------------------------------


class CaseBook:
    """Reads and writes ``dispatch.cases`` and ``dispatch.timers`` inside a caller's transaction."""

    def __init__(self, tenants: dict[str, TenantConfig], taxonomy: Taxonomy, clock) -> None:
        self.tenants = tenants
        self.taxonomy = taxonomy
        self.clock = clock

    def context(self, tenant: str, category_code: str, place_code: str, urgency: str, at: datetime) -> Context:
        """Routing decision and limit for a case (routes by the tenant's table, limit by urgency
        with the category's override; workcalendar.limits_for)."""
        cfg = self.tenants.get(tenant)
        decision = route(category_code, place_code, cfg, self.taxonomy, at=at) if cfg else None
        overrides = {code: Limit(value, unit) for code, (value, unit) in self.taxonomy.dispose_limits().items()}
        limit = limits_for(urgency if urgency in ("特急", "紧急", "一般", "复杂") else "一般", category_code,
                           overrides).dispose
        return Context(route=decision, limit=limit, tenant=cfg)

    def start_live_case(self, report: CaseReported, now: datetime) -> tuple[Case, tuple[Transition, ...], Context]:
        """A new live case: grid-worker reports are accepted, filed and dispatched at once."""
        ctx = self.context(report.tenant, report.category_code, report.place_code, report.urgency, report.reported_at)
        case = Case.new(report.place_code, flags=report.flags, limit=ctx.limit, tenant=ctx.tenant)
        transitions: tuple[Transition, ...] = ()
        if report.channel in AUTO_FILED_CHANNELS:
            when = max(now, report.reported_at)
            for action in ("accept", "file", "dispatch"):
                case, steps = lifecycle.decide(case, Command(action=action, actor_role="system"), when, ctx)
                transitions += steps
        return case, transitions, ctx

    async def apply_action(self, conn: AsyncConnection, cmd: CaseActionRequested, now: datetime) -> list[Envelope]:
        """Apply one requested action to its stored case; return the events to publish.

        An action for a case dispatch does not know yet is parked (``pending_actions``).
        """
        c = db.cases
        row = (
            await conn.execute(sa.select(c).where(c.c.case_id == cmd.case_id).with_for_update())
        ).mappings().one_or_none()
        if row is None or row["lifecycle"] is None:
            await conn.execute(
                insert(db.pending_actions).on_conflict_do_nothing(),
                {"event_id": cmd.event_id, "case_id": cmd.case_id, "payload": cmd.model_dump(mode="json")},
            )
            return []
        case = case_from_json(row["lifecycle"])
        ctx = self.context(row["tenant"], row["category_code"], row["place_code"], row["urgency"] or "一般", now)
        if cmd.target_department:
            # a dispatcher's explicit choice replaces the routing table's answer
            ctx = dataclasses.replace(
                ctx, route=RouteDecision(target_kind="department", department=cmd.target_department,
                                                   rule="manual", mediation_level=None)
            )
        command = Command(action=cmd.action, actor_role=cmd.actor_role, note=cmd.note, evidence=cmd.evidence,
                          target_department=cmd.target_department, extension_days=cmd.extension_days,
                          actor_ref=cmd.actor_ref)
        try:
            new_case, transitions = lifecycle.decide(case, command, now, ctx)
            if cmd.action == "file" and new_case.state == lifecycle.FILED:
                new_case, more = lifecycle.decide(new_case, Command(action="dispatch", actor_role="system"), now, ctx)
                transitions += more
        except IllegalAction as exc:
            return [
                CaseActionRejected(
                    event_id=derive_id(cmd.event_id, "rejected"),
                    occurred_at=now,
                    case_id=cmd.case_id,
                    tenant=row["tenant"],
                    place_code=row["place_code"],
                    action=cmd.action,
                    state=exc.current_state,
                    allowed_actions=tuple(exc.allowed_actions),
                    reason=str(exc.reason)[:500],
                )
            ]
        events = transition_events(cmd.case_id, row["tenant"], row["place_code"], transitions, row["seq"] + 1)
        dispatched_at = next((t.at for t in transitions if t.action == "dispatch"), row["dispatched_at"])
        await self.store(conn, cmd.case_id, new_case, row["seq"] + len(transitions), now, previous=case,
                         dispatched_at=dispatched_at, emitted=len(events))
        return events

    async def store(self, conn: AsyncConnection, case_id, case: Case, seq: int, now: datetime,
                    previous: Case | None = None, dispatched_at: datetime | None = None, emitted: int = 0) -> None:
        """Write the case's new state (``emitted``: lifecycle events just derived for it) and
        reschedule its timers when the deadline or state changed."""
        c = db.cases
        values = {
            "lifecycle": case_to_json(case),
            "status": case.state,
            "seq": seq,
            "department": case.department or "triage",
            "target_kind": case.target_kind or "triage",
            "mediation_level": case.mediation_level,
            "transfer_count": case.transfer_count,
            "dispatched_at": dispatched_at,
            "events_emitted": c.c.events_emitted + emitted,
            "updated_at": now,
        }
        if case.state == lifecycle.CLOSED:
            values["closed_at"] = now
        await conn.execute(sa.update(c).where(c.c.case_id == case_id).values(**values))
        changed = previous is None or previous.deadline != case.deadline or previous.state != case.state
        if changed:
            await self.schedule(conn, case_id, case, seq, now, dispatched_at)

    async def schedule(self, conn: AsyncConnection, case_id, case: Case, generation: int, now: datetime,
                       dispatched_at: datetime | None = None) -> None:
        """Replace the case's unfired timers by yellow/red/higher for its current deadline."""
        t = db.timers
        await conn.execute(sa.delete(t).where(t.c.case_id == case_id, t.c.fired_at.is_(None)))
        if case.deadline is None or case.is_terminal or case.state in (lifecycle.SHELVED, lifecycle.REPORTED):
            return
        red = case.deadline
        rows = []
        if case.supervision_level < 1:
            start = dispatched_at or now
            yellow = yellow_at(start, case.limit) if case.limit and dispatched_at else None
            if yellow is not None and yellow < red:
                rows.append({"case_id": case_id, "kind": "yellow", "generation": generation, "due_at": yellow})
            rows.append({"case_id": case_id, "kind": "red", "generation": generation, "due_at": red})
        if case.supervision_level < 2:
            rows.append({"case_id": case_id, "kind": "higher", "generation": generation,
                         "due_at": higher_supervision_at(red)})
        if rows:
            await conn.execute(insert(t).on_conflict_do_nothing(), rows)

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
            case = case_from_json(row["lifecycle"])
            if case.is_terminal or case.state == lifecycle.SHELVED:
                continue
            base = {"case_id": timer["case_id"], "tenant": row["tenant"], "place_code": row["place_code"]}
            kind = timer["kind"]
            if kind == "yellow":
                events.append(CaseSupervised(
                    event_id=derive_id(timer["case_id"], "timer", kind, timer["generation"]), occurred_at=timer["due_at"],
                    alert="yellow", level=0, department=case.department, deadline=case.deadline, **base))
                await conn.execute(sa.update(c).where(c.c.case_id == timer["case_id"]).values(
                    events_emitted=c.c.events_emitted + 1))
                continue
            level = 1 if kind == "red" else 2
            try:
                new_case, transitions = lifecycle.supervise(case, level, max(now, timer["due_at"]))
            except IllegalAction as exc:
                log.info("timer %s for %s not applied: %s", kind, timer["case_id"], exc)
                continue
            seq = row["seq"]
            events += transition_events(timer["case_id"], row["tenant"], row["place_code"], transitions, seq + 1)
            superior = lifecycle.unit_at(row["place_code"], "street", self.tenants.get(row["tenant"]))
            events.append(CaseSupervised(
                event_id=derive_id(timer["case_id"], "timer", kind, timer["generation"]), occurred_at=timer["due_at"],
                alert="red" if level == 1 else "higher", level=level, department=case.department,
                escalated_to=superior, deadline=case.deadline, **base))
            await conn.execute(sa.update(c).where(c.c.case_id == timer["case_id"]).values(
                lifecycle=case_to_json(new_case), seq=seq + len(transitions), updated_at=now,
                events_emitted=c.c.events_emitted + len(transitions) + 1))
        return events
