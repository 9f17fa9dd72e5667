"""Two batches folding different cases at once must not deadlock on the step cells' rows
(services/reporting/step_rollup.py ``apply``). The month cuboids (step_month_cells, issue 14) are
rows many cases share (a month × community × channel, say), so two batches of the consumer often
upsert the same ones; each upsert locks its rows in the order of its arrays, so the fold must pass
them in one order, as the KPI rollups do (services/reporting/kpis/rollup_fold.py ``_upsert``)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import date

import pytest

from services.reporting import step_rollup
from services.reporting.kpis.step_cells import CellKey, Contributions

pytestmark = pytest.mark.integration


def _cells(tenant: str, *keys: tuple[str, int, str, str, str]) -> Contributions:
    """One dispatch in each ``(place, day of April, category, department, channel)``, in that order."""
    out = Contributions.empty()
    for place, day, category, department, channel in keys:
        out.cells[CellKey(tenant, date(2024, 4, day), place, category, department, channel, None)] = Counter(
            events=1, dispatches=1)
    return out


async def _wait_until_blocked(conn, pid: int) -> None:
    for _ in range(200):
        found = (await conn.exec_driver_sql(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", (pid,))).scalar()
        if found == "Lock":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_two_batches_on_shared_month_rows_do_not_deadlock(reporting_engine):
    """Cell A (community …001001, category 100401, housing, phone) and cell B (community …002001,
    100402, water, grid_worker) have month rows of their own in every cuboid 0–3 (8 rows). Batch 1
    adds A then B (days 1, 2), batch 2 B then A (days 3, 4): no step or day cell in common, only
    the month rows. A third transaction holds B's grid row. Batch 2 starts first and waits for it;
    batch 1 then waits too, behind batch 2 (PostgreSQL queues a row's waiters in order). Were the
    rows locked in the order given, batch 1 would hold A's rows by then, and once the third commits
    batch 2 would take B's rows and wait for A's: a deadlock, every time. Taken in one order, batch
    2 takes A's grid row first and batch 1 waits for it; both commit: each month row ends with 1
    (the first fold) + 1 + 1 = 3 events."""
    tenant = f"it-lock-{uuid.uuid4().hex[:12]}"
    a = ("990102001001001", "100401", "housing", "phone")
    b = ("990102002001001", "100402", "water", "grid_worker")
    async with reporting_engine.begin() as conn:  # the month rows exist (upserts then lock them)
        await step_rollup.apply(conn, _cells(tenant, (a[0], 9, *a[1:]), (b[0], 10, *b[1:])))
    holder = await reporting_engine.connect()
    one = await reporting_engine.connect()
    two = await reporting_engine.connect()
    try:
        await holder.begin()
        await holder.exec_driver_sql("UPDATE reporting.step_month_cells SET events = events "
                                     "WHERE tenant = $1 AND cuboid = 0 AND place_code = $2", (tenant, b[0]))
        pids = []
        for conn in (one, two):
            await conn.begin()
            pids.append((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar())

        async def fold(conn, delta):
            await step_rollup.apply(conn, delta)
            await conn.commit()

        second = asyncio.create_task(fold(two, _cells(tenant, (b[0], 3, *b[1:]), (a[0], 4, *a[1:]))))
        await _wait_until_blocked(holder, pids[1])
        first = asyncio.create_task(fold(one, _cells(tenant, (a[0], 1, *a[1:]), (b[0], 2, *b[1:]))))
        await _wait_until_blocked(holder, pids[0])
        await holder.commit()
        results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 30)
        assert [r for r in results if r is not None] == []
    finally:
        for conn in (holder, one, two):
            await conn.close()
    async with reporting_engine.connect() as conn:
        events = (await conn.exec_driver_sql("SELECT cuboid, place_code, events FROM reporting.step_month_cells "
                                             "WHERE tenant = $1 ORDER BY 1, 2", (tenant,))).all()
    assert [tuple(r) for r in events] == [
        (0, a[0], 3), (0, b[0], 3), (1, a[0][:12], 3), (1, b[0][:12], 3),
        (2, a[0][:12], 3), (2, b[0][:12], 3), (3, a[0][:12], 3), (3, b[0][:12], 3)]
