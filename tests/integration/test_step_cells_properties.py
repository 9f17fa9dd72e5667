"""Property test of the step cells (issue 14; services/reporting/step_rollup.py,
services/reporting/kpis/step_cells.py) on the real PostgreSQL: for random event histories of a few
cases, folded in any order, with redeliveries and any batching through the consumer's
BatchProcessor, the per-event figures read from the cells (services/reporting/kpis/step_cells_sql.py)
equal those of the scan over the steps (services/reporting/kpis/sql.py ``step_sql``), for every
grouping, by period, and with the department, place and category filters (so from ``step_cells``,
``step_day_cells`` and, for whole months, the month cuboids of services/reporting/kpis/step_cuboids.py);
and migration 4e7a2c9d1b58's backfill of the month cuboids equals what the fold keeps."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting import step_rollup
from services.reporting.filters import CaseFilter
from services.reporting.kpis import queries, step_cells_sql
from services.reporting.kpis.periods import OPEN_END, OPEN_START, period_bounds
from shared.contract.actions import SATISFACTIONS
from shared.contract.events import (
    CaseDispatched,
    CaseReported,
    CaseTransferred,
    CaseTransitioned,
)
from shared.domain.workcalendar import DEFAULT_TZ, URGENCIES
from tests.integration.test_fold_properties import (
    _shuffled_with_redeliveries,
    fold_through_consumer,
)

pytestmark = pytest.mark.integration

EXAMPLES = 40
#: Labour Day 2024 (holidays 1–5 May, 调休 Sunday 28 April and Saturday 11 May): working-day limits
#: across holidays and weekends. 09:00 UTC is 17:00 in Shanghai, so steps cross local midnights.
T0 = datetime(2024, 4, 28, 9, 0, tzinfo=UTC)
GRIDS = ("990102001001001", "990102001002001", "990102002001001")
DEPTS = (None, "housing", "urban_management")
RUNGS = (None, "grid", "community", "street")
#: (action, from_state, to_state) of the transitions drawn: every figure's kind of step.
KINDS = [("acknowledge", "dispatched", "acknowledged"), ("return", "dispatched", "filed"), ("act", "acknowledged", "in_progress"),
         ("return", "dispatched", "filed"), ("recategorize", "dispatched", "filed"),
         ("recategorize", "filed", "filed"), ("verify_pass", "checking", "closed"),
         ("callback", "closed", "closed"), ("reopen", "closed", "dispatched"), ("reopen", "closed", "mediating"),
         ("escalate", "accepted", "accepted"), ("escalate", "filed", "filed"),
         ("mediation_failed", "mediating", "mediating"), ("mediation_failed", "mediating", "dispatched"),
         ("mediation_agreement", "mediating", "closed"), ("act", "mediating", "dispatched"),
         ("cancel", "dispatched", "cancelled"), ("accept", "reported", "accepted")]


@st.composite
def case_history(draw, start: datetime):
    """One case's events: a report, a first dispatch (or not), transitions, transfers and
    re-dispatches with growing sequence and time (as dispatch emits them)."""
    case_id = uuid.uuid4()
    place = draw(st.sampled_from(GRIDS))
    base = {"case_id": case_id, "tenant": "t", "place_code": place}
    t = start + timedelta(minutes=draw(st.integers(0, 3000)))
    maybe = lambda values: st.sampled_from([None, *values])  # noqa: E731
    events = [CaseReported(event_id=uuid.uuid4(), occurred_at=t, reported_at=t,
                           category_code=draw(st.sampled_from(["100401", "100402"])),
                           channel=draw(st.sampled_from(["grid_worker", "phone"])),
                           urgency=draw(st.sampled_from([*URGENCIES, "?"])), **base)]
    seq = 1
    if draw(st.integers(0, 5)) > 0:
        t += timedelta(minutes=draw(st.integers(0, 120)))
        events.append(CaseDispatched(event_id=uuid.uuid4(), occurred_at=t, sequence=1,
                                     target_kind=draw(st.sampled_from(["department", "mediation", "triage"])),
                                     department=draw(st.sampled_from(DEPTS[1:])), rule="r",
                                     mediation_level=draw(maybe(RUNGS[1:])),
                                     state=draw(st.sampled_from(["dispatched", "mediating", "filed"])), **base))
    for _ in range(draw(st.integers(0, 8))):
        seq += 1
        t += timedelta(minutes=draw(st.sampled_from([0, 10, 25, 90, 200, 700, 1500, 3000])))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            events.append(CaseTransferred(event_id=uuid.uuid4(), occurred_at=t, sequence=seq,
                                          from_department=draw(maybe(DEPTS[1:])), to_department=draw(maybe(DEPTS[1:])),
                                          **base))
        elif kind == 1:
            events.append(CaseDispatched(event_id=uuid.uuid4(), occurred_at=t, sequence=seq,
                                         target_kind=draw(st.sampled_from(["department", "mediation"])),
                                         department=draw(st.sampled_from(DEPTS[1:])), rule="r",
                                         mediation_level=draw(maybe(RUNGS[1:])), from_department=draw(maybe(DEPTS[1:])),
                                         state=draw(st.sampled_from(["dispatched", "mediating"])), **base))
        else:
            action, from_state, to_state = draw(st.sampled_from(KINDS))
            events.append(CaseTransitioned(
                event_id=uuid.uuid4(), occurred_at=t, action=action, from_state=from_state, to_state=to_state,
                actor_role="department_staff", sequence=seq, department=draw(st.sampled_from(DEPTS)),
                from_department=draw(maybe(DEPTS[1:])), mediation_level=draw(st.sampled_from(RUNGS)),
                from_mediation_level=draw(maybe(RUNGS[1:])), target_kind=draw(maybe(["department", "mediation"])),
                satisfaction=draw(maybe(SATISFACTIONS)), resident_resolved=draw(maybe([True, False])),
                category_code=draw(maybe(["100402"])) if action == "recategorize" else None,
                **{**base, "place_code": draw(st.sampled_from(GRIDS))}))
    return events


async def _both(conn, flt, group_by, bounds, monkeypatch):
    """(cells, scan) figures of the same request."""
    cells = await queries.step_figures(conn, flt, group_by, bounds, T0)
    with monkeypatch.context() as m:
        m.setattr(queries, "cell_rows", _no_cells)
        scan = await queries.step_figures(conn, flt, group_by, bounds, T0)
    return cells, scan


async def _no_cells(*args, **kwargs):
    return None


def _rounded(figures: dict) -> dict:
    return {k: {n: round(v, 9) if isinstance(v, float) else v for n, v in row.items()} for k, row in figures.items()}


REQUESTS = [
    (None, {}), ("department", {}), ("category", {}), ("channel", {}), ("grid", {}), ("community", {}),
    (None, {"department": "housing"}), ("grid", {"department": "urban_management"}),
    ("department", {"place_prefix": "990102001"}), ("channel", {"category": "100402"}),
]


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_cells_equal_the_scan_for_random_histories(reporting_engine, data, monkeypatch):
    tenant = f"it-{uuid.uuid4().hex[:16]}"
    cases = data.draw(st.lists(case_history(T0), min_size=1, max_size=4))
    events = [e for case in cases for e in case]
    await fold_through_consumer(reporting_engine, tenant, _shuffled_with_redeliveries(data, events))
    tz = DEFAULT_TZ
    day = lambda n: datetime.combine((T0 + timedelta(days=n)).astimezone(tz).date(), datetime.min.time(), tz)  # noqa: E731
    a, b = sorted(data.draw(st.lists(st.integers(-1, 12), min_size=2, max_size=2, unique=True)))
    # bounds within a day: the cells answer when no step lies between the bound and the day's edge
    ha, hb = (timedelta(minutes=data.draw(st.sampled_from([0, 1, 300, 1000]))) for _ in range(2))
    month = lambda y, m: datetime(y, m, 1, tzinfo=tz)  # noqa: E731
    async with reporting_engine.connect() as conn, conn.begin():
        for group_by, extra in REQUESTS:
            for start, end in ((None, None), (day(a), day(b)), (day(0), None), (day(a) + ha, day(b) + hb),
                               (month(2024, 4), month(2024, 6)), (month(2024, 5), None), (None, month(2024, 5))):
                flt = CaseFilter(tenant, start, end, tz=tz, **extra)
                bounds = [start or OPEN_START, end or OPEN_END]
                cells, scan = await _both(conn, flt, group_by, bounds, monkeypatch)
                assert _rounded(cells) == _rounded(scan), (group_by, extra, start, end)
        for unit in ("day", "week"):
            for start, end in ((day(a), day(b)), (day(a) + ha, day(b) + hb)):
                flt = CaseFilter(tenant, start, end, tz=tz)
                cells, scan = await _both(conn, flt, None, period_bounds(start, end, unit, tz), monkeypatch)
                assert _rounded(cells) == _rounded(scan), (unit, start, end)
        for extra in ({}, {"place_prefix": "990102001"}, {"department": "housing"}, {"category": "100401"}):
            flt = CaseFilter(tenant, month(2024, 4), month(2024, 7), tz=tz, **extra)
            cells, scan = await _both(conn, flt, None, period_bounds(flt.start, flt.end, "month", tz), monkeypatch)
            assert _rounded(cells) == _rounded(scan), ("month", extra)
        # the month requests above that keep a place, category or channel read the month cuboids
        whole_months = [step_cells_sql.FIRST_DAY, date(2024, 5, 1), step_cells_sql.LAST_DAY]
        assert step_cells_sql.month_cuboid(CaseFilter(tenant, tz=tz), "grid", whole_months) == 0
        assert step_cells_sql.month_cuboid(CaseFilter(tenant, tz=tz, category="100402"), "channel", whole_months) is None
        whole = CaseFilter(tenant, tz=tz)
        assert await queries.cell_rows(conn, whole, None, [OPEN_START, OPEN_END]) is not None  # the cells answered
        # an inner bound that is not a local midnight: the scan answers (the cells cannot)
        odd = CaseFilter(tenant, day(a), day(b), tz=tz)
        assert await queries.cell_rows(conn, odd, None, [day(a), day(a) + timedelta(hours=5), day(a + 1),
                                                         day(b)]) is None
    # recomputing the cells from the facts and steps as they stand gives the folded cells
    async with reporting_engine.begin() as conn:
        folded = await _rollup_rows(conn, tenant)
        await step_rollup.recompute(conn, tenant, page=2)
        assert await _rollup_rows(conn, tenant) == folded
    # the migration's backfill of the month cuboids from the day tables gives the folded ones
    migration = _migration("4e7a2c9d1b58")
    async with reporting_engine.begin() as conn:
        for table in ("step_month_cells", "step_month_case_days"):
            await conn.exec_driver_sql(f"DELETE FROM reporting.{table} WHERE tenant = $1", (tenant,))
        for cuboid in migration.CUBOIDS:
            await conn.exec_driver_sql(migration.backfill_cells_sql(cuboid, one_tenant=True), (tenant,))
        for cuboid in (*migration.CUBOIDS, migration.DAY_CUBOID):
            await conn.exec_driver_sql(migration.backfill_case_days_sql(cuboid, one_tenant=True), (tenant,))
        assert await _rollup_rows(conn, tenant) == folded


def _migration(revision: str):
    path = next(Path("services/reporting/migrations/versions").glob(f"{revision}_*.py"))
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _rollup_rows(conn, tenant: str) -> list:
    """The tenant's non-zero cells, day cells and case days, sorted."""
    rows = []
    for table, counter in (("step_cells", "events"), ("step_day_cells", "events"), ("step_case_days", "cases"),
                           ("step_month_cells", "events"), ("step_month_case_days", "cases")):
        result = await conn.exec_driver_sql(
            f"SELECT * FROM reporting.{table} WHERE tenant = $1 AND {counter} <> 0", (tenant,))
        rows += [repr(tuple(r)) for r in result.all()]
    return sorted(rows)



async def test_python_response_clock_agrees_with_the_sql_clock(reporting_engine):
    """``responded`` is decided in Python for the cells (step_cells.py ``_in_time``) and in SQL for the
    scan (rules.py ``response_in_time_sql``): the same answer for hand-overs and acknowledgements
    across holidays, weekends, local midnights, summer time (New York; Shanghai 1986–1991, before
    the SQL clock's fixed offset) and every urgency."""
    import random  # noqa: PLC0415

    from services.reporting.kpis.clock import working_clock, working_clock_params  # noqa: PLC0415
    from services.reporting.kpis.rules import response_in_time_sql  # noqa: PLC0415
    from services.reporting.kpis.sql import bind  # noqa: PLC0415
    from services.reporting.kpis.step_cells import _in_time  # noqa: PLC0415

    rng = random.Random(14)
    starts = [datetime(2024, 4, 26, 15, 59, 59, tzinfo=UTC), datetime(2024, 4, 30, 2, tzinfo=UTC),
              datetime(2024, 10, 1, 0, 0, tzinfo=UTC), datetime(1990, 6, 1, 0, 30, tzinfo=UTC),
              datetime(2024, 3, 10, 6, 30, tzinfo=UTC), datetime(2024, 11, 3, 5, 0, tzinfo=UTC)]
    starts += [datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400)) for _ in range(40)]
    pairs = [(s, s + timedelta(seconds=d)) for s in starts
             for d in (0, 1800, 1801, 7200, 7201, 86400, 86401, 3 * 86400, 6 * 86400 + 3600, rng.randrange(10 ** 6))]
    async with reporting_engine.connect() as conn:
        for tz in (ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")):
            for urgency in URGENCIES:
                sql = (f"SELECT {response_in_time_sql('p.a', 'p.b', ':u::text')} FROM unnest(:a::timestamptz[], "
                       ":b::timestamptz[]) WITH ORDINALITY AS p(a, b, i) ORDER BY p.i")
                text, args = bind(sql, {"a": [a for a, _ in pairs], "b": [b for _, b in pairs], "u": urgency,
                                        **working_clock_params(tz)})
                got = [bool(r[0]) for r in (await conn.exec_driver_sql(text, args)).all()]
                want = [_in_time(a, b, urgency, tz, working_clock()) for a, b in pairs]
                assert got == want, (tz, urgency)
                assert any(want) and not all(want)


async def test_two_consumers_folding_one_case_at_once_count_it_once(reporting_engine):
    """The report and the lifecycle of a case come on two topics, so two consumers can fold the same
    case at once: the second batch waits for the first (step_rollup.py ``LOCK_SQL``) and the cells
    equal the case's contributions once (without the lock, the second batch would read the case as
    new and add it a second time)."""
    import asyncio  # noqa: PLC0415

    from services.reporting.handlers import apply_events  # noqa: PLC0415

    tenant = f"it-{uuid.uuid4().hex[:16]}"
    case = uuid.uuid4()
    base = {"case_id": case, "tenant": tenant, "place_code": GRIDS[0]}
    t = datetime(2024, 6, 3, 1, tzinfo=UTC)
    first = [CaseReported(event_id=uuid.uuid4(), occurred_at=t, reported_at=t, category_code="100401",
                          channel="grid_worker", **base),
             CaseDispatched(event_id=uuid.uuid4(), occurred_at=t, sequence=1, target_kind="department",
                            department="housing", rule="r", **base)]
    second = [CaseTransferred(event_id=uuid.uuid4(), occurred_at=t + timedelta(hours=1), sequence=2,
                              from_department="housing", to_department="water", **base)]
    async with reporting_engine.begin() as conn:  # the tenant's zone is recorded already
        await apply_events(conn, [first[0].model_copy(update={"case_id": uuid.uuid4(), "event_id": uuid.uuid4()})])
    async with reporting_engine.connect() as a:
        await a.begin()
        await apply_events(a, first)

        async def other():
            async with reporting_engine.begin() as b:
                await apply_events(b, second)

        waiting = asyncio.create_task(other())
        await asyncio.sleep(0.5)
        assert not waiting.done()  # it waits for the first batch's transaction
        await a.commit()
    await waiting
    async with reporting_engine.begin() as conn:
        folded = await _rollup_rows(conn, tenant)
        await step_rollup.recompute(conn, tenant)
        assert await _rollup_rows(conn, tenant) == folded
        # one cell (dispatch + transfer out of housing) and one (into water), as cells and as day
        # cells (4); by month: one row of the grid (cuboid 0) and one of the community and category
        # (1) and channel (3) each, the departments apart (2: two rows), so 5 more; no case days
        assert len(folded) == 4 + 5


async def _advisory_locks(conn) -> int:
    from sqlalchemy import text  # noqa: PLC0415
    return (await conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND pid = pg_backend_pid()"))).scalar_one()


async def test_a_batch_of_many_cases_holds_one_fold_lock_not_one_per_case(reporting_engine):
    """A batch that touches more than MAX_CASE_LOCKS cases (and a rebuild, which folds the whole log in
    one transaction) takes the exclusive fold lock instead of a lock per case: a lock per case would
    fill PostgreSQL's shared lock table (CI's rebuild failed with "out of shared memory"). A small
    batch holds the shared fold lock and one lock per case; both kinds exclude each other."""
    import asyncio  # noqa: PLC0415

    from services.reporting.handlers import apply_events  # noqa: PLC0415

    tenant = f"it-{uuid.uuid4().hex[:16]}"
    t = datetime(2024, 6, 3, 1, tzinfo=UTC)

    def report():
        return CaseReported(event_id=uuid.uuid4(), case_id=uuid.uuid4(), tenant=tenant, place_code=GRIDS[0],
                            occurred_at=t, reported_at=t, category_code="100401", channel="grid_worker")

    small = [report() for _ in range(3)]
    many = [report() for _ in range(step_rollup.MAX_CASE_LOCKS + 1)]
    async with reporting_engine.connect() as a:
        await a.begin()
        await apply_events(a, small)
        assert await _advisory_locks(a) == 1 + 3  # the shared fold lock and one per case

        async def wide(events, exclusive=False):
            async with reporting_engine.begin() as b:
                await apply_events(b, events, exclusive=exclusive)
                return await _advisory_locks(b)

        waiting = asyncio.create_task(wide(many))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # the exclusive fold lock waits for the small batch
        await a.commit()
    assert await waiting == 1
    # a rebuild's page: exclusive whatever its size
    assert await wide([report()], exclusive=True) == 1
    async with reporting_engine.begin() as conn:
        folded = await _rollup_rows(conn, tenant)
        await step_rollup.recompute(conn, tenant)
        assert await _rollup_rows(conn, tenant) == folded
