"""Dispatch's handlers: the consumer's batch handler and the deadline-timer loop.

Plain module-level functions that take what they need as parameters (cosmicpython's service-layer
handlers): ``main.py`` binds them to the case book and the metrics, and the service kit runs them —
:func:`apply_batch` inside the batch transaction of shared/platform/consumer.py (so the case rows,
the processed-event records and the outbox rows commit together, before the Kafka offsets),
:func:`run_timers` as a background task. Tests can call them with a connection and a
:class:`~services.dispatch.store.CaseBook`, without an app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.dispatch.domain.events import transition_events
from services.dispatch.domain.reports import handle_report, live_state, start_live_case
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.store import CaseBook, case_row
from shared.contract.events import CaseActionRequested, CaseReported, Event

log = logging.getLogger("gridcase.dispatch")


async def apply_batch(conn: AsyncConnection, events: list[Event], *, book: CaseBook, metrics: DispatchMetrics) -> None:
    """Apply one batch of ``case.reported`` and ``case.action_requested`` events.

    Each new report becomes a case (a historical record replayed as it happened, a live one
    started and, from a grid worker, dispatched at once) with its deadline timers; actions parked
    for these cases are applied next, in the order they arrived; then the batch's actions in the
    order they were requested. Every derived event goes to the outbox. A report already stored
    (redelivered) derives nothing.
    """
    now = book.clock.now()
    rows, out, fresh_live = [], [], {}
    for ev in events:
        if not isinstance(ev, CaseReported):
            continue
        tenant = book.tenants.get(ev.tenant)
        if ev.history is not None:
            state, derived = handle_report(ev, tenant, book.taxonomy, now)
            case, seq, kind = None, 1, state.target_kind
        else:
            case, transitions, ctx = start_live_case(ev, tenant, book.taxonomy, now)
            rule = ctx.route.rule if ctx.route else None
            derived = transition_events(ev.case_id, ev.tenant, ev.place_code, transitions, first_seq=1, rule=rule)
            state = live_state(case, transitions, rule)
            seq, kind = len(transitions), case.target_kind or "none"
            fresh_live[ev.case_id] = (case, state.dispatched_at)
        rows.append(case_row(ev, state, case, seq=seq, emitted=len(derived)))
        out.append((ev, kind, derived))
    produced: list = []
    if rows:
        new = await book.insert_new(conn, rows)
        for ev, kind, derived in out:
            if ev.case_id in new:
                produced += derived
                metrics.dispatched.labels(ev.tenant, kind).inc()
        await book.schedule_new(conn, ((case_id, case, dispatched_at)
                                       for case_id, (case, dispatched_at) in fresh_live.items() if case_id in new), now)
    # actions that arrived before their report first, then the batch's in the order they were requested
    actions = await book.take_parked(conn, new) if rows else []
    actions += sorted((e for e in events if isinstance(e, CaseActionRequested)), key=lambda e: e.occurred_at)
    produced += await book.apply_actions(conn, actions, now)
    await book.publish(conn, produced)


async def run_timers(engine: AsyncEngine, *, book: CaseBook, metrics: DispatchMetrics, wake: Callable[[], None],
                     interval_s: float) -> None:
    """Fire due deadline timers until cancelled: each round claims due timers and writes their
    events to the outbox in one transaction, then ``wake()`` s the relay and goes again at once;
    with nothing due it sleeps ``interval_s``. A database error is logged and retried next round."""
    while True:
        fired = []
        try:
            async with engine.begin() as conn:
                fired = await book.fire_due_timers(conn, book.clock.now())
                await book.publish(conn, fired)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - database away: try again next tick
            log.warning("deadline timers: %r", exc)
        if fired:
            metrics.supervised.inc(sum(1 for e in fired if e.event_type == "case.supervised"))
            wake()
            continue
        await asyncio.sleep(interval_s)
