"""Dispatch: owns each case's lifecycle. Consumes ``case.reported``, routes, publishes transitions.

For every new report, in one transaction: the case row in ``dispatch.cases``, the processed-event
record, and the lifecycle events in ``dispatch.outbox``; the outbox relay publishes them to
``TOPIC_LIFECYCLE``. Kafka offsets are committed after that transaction (shared/platform/consumer.py).

HTTP (health and metrics only): ``GET /health``, ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import sqlalchemy as sa
from fastapi import Depends, FastAPI
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from prometheus_client import Counter

from services.dispatch import db
from services.dispatch.store import CaseBook, case_to_json, transition_events
from services.dispatch.clock import Clock
from services.dispatch.domain.reports import handle_report
from shared.platform.auth import ADMIN, CITY_OPS, Principal
from shared.contract.events import CaseActionRequested, CaseReported, Event
from services.dispatch.settings import DispatchSettings
from shared.domain.taxonomy import load_taxonomy
from shared.platform.authhttp import caller, forbidden, not_found
from shared.platform.kit import ServiceKit
from shared.platform.outbox import OutboxRow, add_to_outbox
from shared.domain.tenants import load_all_tenants
from shared.contract.topics import TOPIC_ACTIONS, TOPIC_LIFECYCLE, TOPIC_REPORTED

log = logging.getLogger("gridcase.dispatch")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """Build dispatch's app: the lifespan migrates, starts the consumer and the outbox relay."""
    settings = settings or DispatchSettings()
    kit = ServiceKit("dispatch", settings, migrations=MIGRATIONS, schema=db.SCHEMA)
    registry = kit.registry
    dispatched = Counter(
        "dispatch_cases_dispatched_total", "Cases dispatched", ["tenant", "target_kind"], registry=registry
    )
    supervised = Counter("dispatch_supervisions_total", "Deadline alerts fired (督办 and warnings)", registry=registry)
    taxonomy = load_taxonomy()
    tenants = load_all_tenants(settings.tenants_dir or None)
    engine = kit.engine
    relay = kit.outbox_relay(db.outbox, batch=settings.relay_batch, idle_seconds=settings.relay_idle_seconds)

    clock = Clock()
    book = CaseBook(tenants, taxonomy, clock)

    async def apply(conn: AsyncConnection, events: list[Event]) -> None:
        now = clock.now()
        rows, out, fresh_live = [], [], {}
        for ev in events:
            if not isinstance(ev, CaseReported):
                continue
            if ev.history is not None:
                state, derived = handle_report(ev, tenants.get(ev.tenant), taxonomy, now)
                row = {
                    "status": state.status, "target_kind": state.target_kind, "department": state.department,
                    "rule": state.rule, "mediation_level": state.mediation_level, "dispatched_at": state.dispatched_at,
                    "closed_at": state.closed_at, "transfer_count": state.transfer_count, "lifecycle": None, "seq": 1,
                }
                kind = state.target_kind
            else:
                case, transitions, ctx = book.start_live_case(ev, now)
                derived = transition_events(ev.case_id, ev.tenant, ev.place_code, transitions, first_seq=1,
                                            rule=ctx.route.rule if ctx.route else None)
                dispatched_at = next((t.at for t in transitions if t.action == "dispatch"), None)
                row = {
                    "status": case.state, "target_kind": case.target_kind or "", "department": case.department or "",
                    "rule": (ctx.route.rule if ctx.route else "")[:120], "mediation_level": case.mediation_level,
                    "dispatched_at": dispatched_at, "closed_at": None, "transfer_count": case.transfer_count,
                    "lifecycle": case_to_json(case), "seq": len(transitions),
                }
                fresh_live[ev.case_id] = (case, dispatched_at)
                kind = case.target_kind or "none"
            row.update(
                case_id=ev.case_id, tenant=ev.tenant, place_code=ev.place_code, category_code=ev.category_code,
                history=ev.history is not None, reported_at=ev.reported_at, urgency=ev.urgency,
                events_emitted=len(derived),
            )
            rows.append(row)
            out.append((ev, kind, derived))
        produced: list = []
        if rows:
            result = await conn.execute(insert(db.cases).on_conflict_do_nothing().returning(db.cases.c.case_id), rows)
            new = {r[0] for r in result}
            for ev, kind, derived in out:
                if ev.case_id in new:
                    produced += derived
                    dispatched.labels(ev.tenant, kind).inc()
            for case_id, (case, dispatched_at) in fresh_live.items():
                if case_id in new:
                    await book.schedule(conn, case_id, case, 0, now, dispatched_at)
            # actions that arrived before their report
            if new:
                p = db.pending_actions
                parked = (
                    await conn.execute(sa.delete(p).where(p.c.case_id.in_(new)).returning(p.c.payload, p.c.received_at))
                ).all()
                for payload, _ in sorted(parked, key=lambda r: r[1]):
                    produced += await book.apply_action(conn, CaseActionRequested.model_validate(payload), now)
        for ev in sorted((e for e in events if isinstance(e, CaseActionRequested)), key=lambda e: e.occurred_at):
            produced += await book.apply_action(conn, ev, now)
        await add_to_outbox(conn, db.outbox, (OutboxRow(TOPIC_LIFECYCLE, e) for e in produced))

    kit.consume((TOPIC_REPORTED, TOPIC_ACTIONS), apply, db.processed_events, group_id=settings.group_id,
                after_batch=lambda outcome: relay.wake())
    kit.every(10, kit.sample_outbox, kit.lag_sampler(settings.group_id, (TOPIC_REPORTED,)))

    async def run_timers() -> None:
        while True:
            fired = []
            try:
                async with engine.begin() as conn:
                    fired = await book.fire_due_timers(conn, clock.now())
                    await add_to_outbox(conn, db.outbox, (OutboxRow(TOPIC_LIFECYCLE, e) for e in fired))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database away: try again next tick
                log.warning("deadline timers: %r", exc)
            if fired:
                supervised.inc(sum(1 for e in fired if e.event_type == "case.supervised"))
                relay.wake()
                continue
            await asyncio.sleep(settings.timer_interval_seconds)

    kit.background(run_timers, "deadline-timers")
    app = kit.app()

    if settings.test_clock:

        @app.post("/v1/test/clock/advance")
        async def advance_clock(seconds: float) -> dict:
            """Tests only (DISPATCH_TEST_CLOCK=true): move dispatch's clock forward."""
            return {"now": clock.advance(seconds).isoformat()}

    @app.get("/v1/progress")
    async def progress(tenant: str | None = None, who: Principal = Depends(caller)) -> dict:
        """Cases dispatched so far and lifecycle events they produced (for waiting on a run).
        Operational: city ops and admins of the tenant (403 for other roles, 404 for a tenant
        outside the credential; without ``tenant``, the credential's tenant)."""
        if who.role not in (CITY_OPS, ADMIN):
            raise forbidden("dispatch progress is for the operations centre (city_ops, admin)", role=who.role)
        if tenant is None and who.tenant != "*":
            tenant = who.tenant
        if tenant is not None and not who.sees_tenant(tenant):
            raise not_found(f"tenant {tenant!r} is not configured", field="tenant")
        c = db.cases
        q = sa.select(sa.func.count().label("cases"), sa.func.coalesce(sa.func.sum(c.c.events_emitted), 0).label("events"))
        if tenant:
            q = q.where(c.c.tenant == tenant)
        async with engine.connect() as conn:
            row = (await conn.execute(q)).one()
        return {"tenant": tenant, "cases": row.cases, "events_emitted": int(row.events)}

    return app
