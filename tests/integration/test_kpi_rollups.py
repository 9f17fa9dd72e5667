"""Property test of the KPI rollups (issue 14; services/reporting/kpis/cells.py, rollup_fold.py,
rollup_query.py) on the real PostgreSQL: for random event histories of a few cases, folded through
the consumer's BatchProcessor in a random order with redeliveries and any batching, the figures the
rollups give equal those of the scan of ``case_facts`` (services/reporting/kpis/sql.py ``kpi_sql``)
for random periods of whole local days, groupings and moments ``now``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.reporting.db import (
    kpi_cells,
    kpi_month_cells,
    kpi_month_sketches,
    kpi_month_spans,
    kpi_sketches,
    kpi_spans,
)
from services.reporting.filters import CaseFilter
from services.reporting.kpis.cell_columns import COUNTERS, SKETCH_STATS, SPAN_COUNTERS
from services.reporting.kpis.periods import OPEN_END, OPEN_START, period_bounds
from services.reporting.kpis.queries import TOTAL, raw_figures
from services.reporting.kpis.rollup_fold import rollups_from_facts
from services.reporting.kpis.rollup_query import rollup_figures
from services.reporting.kpis.sketch import ALPHA, summary
from shared.contract.actions import OUTCOMES
from shared.contract.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseSupervised,
    CaseTransferred,
    CaseTransitioned,
)
from shared.domain.workcalendar import DEFAULT_TZ
from tests.integration.helpers import DEMO_GRID_GRID, unique_tenant
from tests.integration.test_fold_properties import (
    _shuffled_with_redeliveries,
    fold_through_consumer,
)

pytestmark = pytest.mark.integration

TZ = DEFAULT_TZ
DAY0 = datetime(2024, 5, 1, tzinfo=TZ)
PLACES = [DEMO_GRID_GRID, "990102001002001", "990102002001001"]
STATES = ["acknowledged", "in_progress", "resolved", "closed", "filed", "dispatched", "shelved", "rejected",
          "cancelled", "mediating"]
KINDS = [("act", "dispatched", "acknowledged"), ("verify_pass", "checking", "closed"),
         ("verify_pass", "checking", "closed"), ("callback", "closed", "closed"), ("reopen", "closed", "dispatched"),
         ("shelve", "dispatched", "shelved"), ("accept", "reported", "accepted"), ("act", "in_progress", "resolved"),
         ("recategorize", "dispatched", "filed")]
#: figures compared exactly: every raw figure but the percentiles, which the rollups read from the
#: quantile sketches (services/reporting/kpis/sketch.py): compared by :func:`_quantiles_within_bound`
SKIP = ("_median", "_p90")


@st.composite
def a_case(draw, day0=DAY0):
    """One case's events: a report on one of ten days from ``day0`` at any hour, maybe a dispatch
    (deadline from two days before to five days after), transitions and history closures at later
    (or, rarely, earlier) times, transfers and supervision alerts."""
    case_id = uuid.uuid4()
    t = day0 + timedelta(hours=draw(st.integers(0, 10 * 24 - 1)), minutes=draw(st.sampled_from([0, 17, 59])))
    base = {"case_id": case_id, "tenant": "t", "place_code": draw(st.sampled_from(PLACES))}
    maybe = lambda values: st.sampled_from([None, *values])  # noqa: E731
    deadline = lambda at: draw(st.sampled_from([None, at + timedelta(hours=draw(st.integers(-48, 120)))]))  # noqa: E731
    events = [CaseReported(event_id=uuid.uuid4(), occurred_at=t, reported_at=t,
                           category_code=draw(st.sampled_from(["100401", "100501"])),
                           channel=draw(st.sampled_from(["grid_worker", "phone"])),
                           request_type=draw(st.sampled_from(["", "排查"])), **base)]
    if draw(st.booleans()):
        events.append(CaseDispatched(
            event_id=uuid.uuid4(), occurred_at=t + timedelta(minutes=draw(st.integers(-30, 300))),
            target_kind=draw(st.sampled_from(["department", "triage", "mediation"])),
            department=draw(st.sampled_from(["housing", "urban_management"])), rule="r", deadline=deadline(t),
            sequence=1, **base))
    counts = {"transfer_count": 0, "return_count": 0, "rework_count": 0, "supervision_level": 0, "reopen_count": 0,
              "recategorize_count": 0}
    for seq in range(2, 2 + draw(st.integers(0, 6))):
        t += timedelta(minutes=draw(st.integers(-60, 3000)))
        for key in counts:
            counts[key] += draw(st.integers(0, 1))
        action, from_state, to_state = draw(st.one_of(
            st.sampled_from(KINDS), st.tuples(st.just("act"), st.sampled_from(STATES), st.sampled_from(STATES))))
        events.append(CaseTransitioned(
            event_id=uuid.uuid4(), occurred_at=t, action=action, from_state=from_state, to_state=to_state,
            actor_role="department_staff", sequence=seq,
            department=draw(maybe(["housing", "urban_management"])), target_kind=draw(maybe(["department"])),
            deadline=deadline(t), outcome=draw(maybe(OUTCOMES)), category_code=draw(maybe(["100501"])),
            **counts, **{**base, "place_code": draw(st.sampled_from(PLACES))}))
    if draw(st.integers(0, 4)) == 0:
        events.append(CaseTransferred(event_id=uuid.uuid4(), occurred_at=t, sequence=1, to_department="health",
                                      history=True, **base))
    if draw(st.integers(0, 4)) == 0:
        at = t + timedelta(hours=draw(st.integers(-30, 50)))
        events.append(CaseClosed(event_id=uuid.uuid4(), occurred_at=at, closed_at=draw(maybe([at])), history=True,
                                 **base))
    for level in draw(st.lists(st.integers(0, 2), max_size=2)):
        events.append(CaseSupervised(event_id=uuid.uuid4(), occurred_at=t, alert="red", level=level, **base))
    return events


def _normal(raw: dict) -> dict:
    """Figures by key, missing counts 0 (the scan leaves out empty sums and unused sub-periods),
    means rounded to 1e-9 h (the scan's are numeric or float8, the rollups' from integer µs)."""
    out = {}
    for key, figures in raw.items():
        row = {}
        for k, v in figures.items():
            if v is None or k.endswith(SKIP):
                continue
            if k.endswith("_mean"):
                row[k] = round(float(v), 9)
            elif v:
                row[k] = int(v)
        if row:
            out["TOTAL" if key is TOTAL else key] = row
    return out


def _diff(got: dict, expected: dict) -> dict:
    return {key: {k: (repr(got.get(key, {}).get(k)), repr(figures.get(k))) for k, v in {**got.get(key, {}), **figures}.items()
                  if got.get(key, {}).get(k) != figures.get(k)}
            for key, figures in expected.items() if got.get(key) != figures} | \
           {key: "only in the rollups" for key in got if key not in expected}


@st.composite
def a_query(draw):
    first = draw(st.integers(-1, 11))
    days = draw(st.integers(1, 9))
    start = OPEN_START if first < 0 else DAY0 + timedelta(days=first)
    end = OPEN_END if draw(st.integers(0, 5)) == 0 else DAY0 + timedelta(days=max(first, 0) + days)
    group_by = draw(st.sampled_from([None, "grid", "community", "category", "department", "channel",
                                     "period:day", "period:week"]))
    now = DAY0 + timedelta(hours=draw(st.integers(0, 16 * 24)), minutes=draw(st.sampled_from([0, 1, 30])))
    return start, end, group_by, now, draw(st.booleans())


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_rollups_give_the_scans_figures(reporting_engine, data):
    cases = data.draw(st.lists(a_case(), min_size=1, max_size=5))
    tenant = unique_tenant()
    events = [ev for case in cases for ev in case]
    await fold_through_consumer(reporting_engine, tenant, _shuffled_with_redeliveries(data, events))
    for _ in range(3):
        start, end, group_by, now, business = data.draw(a_query())
        flt = CaseFilter(tenant, None if start == OPEN_START else start, None if end == OPEN_END else end, tz=TZ,
                         department=data.draw(st.sampled_from([None, None, "housing"])),
                         place_prefix=data.draw(st.sampled_from([None, None, "990102001"])))
        if group_by and group_by.startswith("period:"):
            if start == OPEN_START or end == OPEN_END:
                continue
            bounds = period_bounds(start, end, group_by.split(":")[1], TZ)
        else:
            bounds = [start, end]
        biz = ["100501"] if business else None
        async with reporting_engine.begin() as conn:
            scan = await raw_figures(conn, flt, group_by, bounds, now, biz, use_cuboids=False)
            rolled = await rollup_figures(conn, flt, group_by, bounds, now, biz, total=TOTAL)
            # the cuboids: for these days (rarely a month's first) the tenant by day, when nothing
            # but the period is asked (cuboids.choose_day)
            by_day = await rollup_figures(conn, flt, group_by, bounds, now, biz, total=TOTAL, by_month=True)
        assert rolled is not None, "the rollups must answer for bounds at local midnights"
        got, expected = _normal(rolled), _normal(scan)
        assert got == expected, (start, end, group_by, now, _diff(got, expected), got, expected)
        _quantiles_within_bound(rolled, scan, (start, end, group_by, now))
        plain = (group_by is None or group_by.startswith("period:")) and flt.place_prefix is None \
            and flt.department is None and biz is None
        if plain:
            assert by_day is not None, "the tenant by day must answer a question of the period alone"
        if by_day is not None:
            got = _normal(by_day)
            assert got == expected, ("by day", start, end, group_by, now, _diff(got, expected))
            _quantiles_within_bound(by_day, scan, ("by day", start, end, group_by, now))


def _quantiles_within_bound(rolled: dict, scan: dict, query) -> None:
    """docs/kpis.md §10: each median / p90 of the sketches is within relative α of the scan's
    ``percentile_cont`` (0 exactly when that is 0), and absent exactly when the scan's is."""
    for key, figures in scan.items():
        for name, exact in figures.items():
            if not name.endswith(SKIP):
                continue
            got = rolled.get(key, {}).get(name)
            if exact is None:
                assert got is None, (query, key, name, got)
                continue
            exact = float(exact)
            assert got is not None, (query, key, name, exact)
            # 1e-9 h: the scan's hours are float8 from timestamps, the sketch's from integer µs
            assert abs(got - exact) <= ALPHA * exact + 1e-9, (query, key, name, got, exact)
    for key, figures in rolled.items():
        if key not in scan:
            assert not any(v is not None for k, v in figures.items() if k.endswith(SKIP)), (query, key, figures)


async def _nonzero_cells(engine, tenant: str) -> dict:
    out = {}
    async with engine.connect() as conn:
        for table in (kpi_cells, kpi_spans, kpi_sketches, kpi_month_cells, kpi_month_spans, kpi_month_sketches):
            counters = [c for c in table.c if c.name in (*COUNTERS, *SPAN_COUNTERS)]
            if table in (kpi_sketches, kpi_month_sketches):  # its counts are a jsonb map without zeros
                counters = [sa.cast(table.c.b, sa.Text)]
            rows = await conn.execute(sa.select(table).where(table.c.tenant == tenant, sa.or_(*[c != ("{}" if table in (kpi_sketches, kpi_month_sketches) else 0) for c in counters])))
            out[table.name] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_cells_from_the_facts_equal_the_folded_cells(reporting_engine, data):
    """Σ over the fold's deltas = the contributions of the final rows (rollups_from_facts)."""
    tenant = unique_tenant()
    cases = data.draw(st.lists(a_case(), min_size=1, max_size=4))
    await fold_through_consumer(reporting_engine, tenant, _shuffled_with_redeliveries(data, [e for c in cases for e in c]))
    folded = await _nonzero_cells(reporting_engine, tenant)
    async with reporting_engine.begin() as conn:
        assert await rollups_from_facts(conn, tenant, lambda t: TZ, page=2) == len(cases)  # several pages
    assert await _nonzero_cells(reporting_engine, tenant) == folded


async def test_rollups_decline_bounds_that_are_not_local_midnights(reporting_engine):
    flt = CaseFilter(unique_tenant(), tz=TZ)
    noon = datetime.combine(DAY0.date(), time(12), TZ)
    async with reporting_engine.begin() as conn:
        assert await rollup_figures(conn, flt, None, [noon, noon + timedelta(days=1)], datetime.now(UTC)) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 29),
                                st.dictionaries(st.sampled_from(["close_hours", "ack_hours"]),
                                                st.dictionaries(st.sampled_from([-(2**31), -40, -3, 0, 1, 2, 57, 58, 300]),
                                                                st.integers(-2, 6), min_size=1, max_size=5),
                                                min_size=1, max_size=2)),
                      min_size=1, max_size=12))
async def test_the_sql_quantiles_of_the_sketches_equal_the_python_ones(reporting_engine, cells):
    """rollup_query.sketch_quantiles_sql finds the ranks in PostgreSQL; the answer must equal
    sketch.quantile over the same bucket counts summed per slot (here a grid, or a day when
    periods) and for the total, exactly — random cells of three grids over 30 days, counts that may
    be zero or negative (retractions) — as both follow percentile_cont's ⌊q(n−1)⌋ / ⌈q(n−1)⌉."""
    from services.reporting.kpis.rollup_query import (  # noqa: PLC0415
        _TOTAL_Q,
        _sketch_quantiles,
    )
    from services.reporting.kpis.sketch import quantile  # noqa: PLC0415

    tenant = unique_tenant()
    start = datetime(2024, 6, 1, tzinfo=DEFAULT_TZ)
    days = [(start + timedelta(days=i)).date() for i in range(31)]
    grid = {g: f"{DEMO_GRID_GRID[:-1]}{i}" for i, g in enumerate("abc")}
    rows, merged = {}, {}
    for g, d, stats in cells:
        key = (grid[g], d)
        into = rows.setdefault(key, {})
        for stat, buckets in stats.items():
            for b, n in buckets.items():
                into[f"{stat}:{b}"] = into.get(f"{stat}:{b}", 0) + n
    flt = CaseFilter(tenant, start, start + timedelta(days=30), tz=DEFAULT_TZ)
    params = {**flt.sql_params(), "days": [days[0], days[30]], "d0": days[0], "d1": days[30], "dn": days[30]}
    pdays = {**params, "days": days}
    async with reporting_engine.begin() as conn:
        for (place, d), b in rows.items():
            await conn.execute(sa.insert(kpi_sketches).values(
                tenant=tenant, place_code=place, day=days[d], b={k: n for k, n in b.items() if n}))
        by_grid = await _sketch_quantiles(conn, "grid", params, periods=False)
        by_day = await _sketch_quantiles(conn, "period:day", pdays, periods=True)
        await conn.execute(sa.delete(kpi_sketches).where(kpi_sketches.c.tenant == tenant))
    for slots, answer, slot_of in ((by_grid, "grid", lambda place, d: place), (by_day, "day", lambda place, d: d + 1)):
        merged = {}
        for (place, d), b in rows.items():
            for sb, n in b.items():
                stat, bucket = sb.rsplit(":", 1)
                for slot in (slot_of(place, d), _TOTAL_Q):
                    counts = merged.setdefault(slot, {}).setdefault(stat, {})
                    counts[int(bucket)] = counts.get(int(bucket), 0) + n
        want = {slot: {f"{stat}_{name}": quantile(counts, q) for stat, counts in stats.items()
                       for name, q in (("median", 0.5), ("p90", 0.9))}
                for slot, stats in merged.items()}
        want = {slot: {k: v for k, v in qs.items() if v is not None} for slot, qs in want.items()}
        want = {slot: qs for slot, qs in want.items() if qs}
        assert slots == want, answer


# --------------------------------------------------------------------------- month cuboids
#: Cases reported over ten days across the end of May 2024, so that their events, closures and
#: deadlines fall in May, June and (rarely) April or July.
MONTH_DAY0 = datetime(2024, 5, 26, tzinfo=TZ)
MONTH_STARTS = [OPEN_START, *(datetime(2024, m, 1, tzinfo=TZ) for m in (4, 5, 6, 7, 8)), OPEN_END]


@st.composite
def a_month_query(draw):
    """Bounds at month starts (or open ends), any grouping, filters of every kind."""
    i = draw(st.integers(0, len(MONTH_STARTS) - 2))
    j = draw(st.integers(i + 1, len(MONTH_STARTS) - 1))
    group_by = draw(st.sampled_from([None, "grid", "community", "street", "category", "department", "channel",
                                     "period:month"]))
    now = MONTH_DAY0 + timedelta(hours=draw(st.integers(-5 * 24, 20 * 24)), minutes=draw(st.sampled_from([0, 1, 30])))
    filters = {"place_prefix": draw(st.sampled_from([None, None, "990102001", "990102001001", PLACES[1]])),
               "category": draw(st.sampled_from([None, None, "100501"])),
               "department": draw(st.sampled_from([None, None, "housing"]))}
    return MONTH_STARTS[i], MONTH_STARTS[j], group_by, now, draw(st.booleans()), filters


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_month_cuboids_give_the_scans_figures(reporting_engine, data):
    """For whole months, the cuboids (services/reporting/kpis/cuboids.py) give the scan's figures
    whenever cuboids.choose finds one that keeps what the question asks, and decline otherwise."""
    from services.reporting.kpis.cuboids import choose  # noqa: PLC0415

    cases = data.draw(st.lists(a_case(day0=MONTH_DAY0), min_size=1, max_size=6))
    tenant = unique_tenant()
    await fold_through_consumer(reporting_engine, tenant,
                                _shuffled_with_redeliveries(data, [ev for case in cases for ev in case]))
    answered = 0
    for _ in range(4):
        start, end, group_by, now, business, filters = data.draw(a_month_query())
        flt = CaseFilter(tenant, None if start == OPEN_START else start, None if end == OPEN_END else end, tz=TZ,
                         **filters)
        if group_by == "period:month":
            if start == OPEN_START or end == OPEN_END:
                continue
            bounds = period_bounds(start, end, "month", TZ)
        else:
            bounds = [start, end]
        biz = ["100501"] if business else None
        async with reporting_engine.begin() as conn:
            scan = await raw_figures(conn, flt, group_by, bounds, now, biz, use_cuboids=False)
            rolled = await rollup_figures(conn, flt, group_by, bounds, now, biz, total=TOTAL, by_month=True)
        grouping = None if group_by == "period:month" else group_by
        if choose(grouping, filters["place_prefix"], filters["category"], filters["department"], business) is None:
            assert rolled is None, (group_by, filters, business)
            continue
        answered += 1
        assert rolled is not None, "the cuboids must answer for whole months"
        got, expected = _normal(rolled), _normal(scan)
        assert got == expected, (start, end, group_by, now, filters, _diff(got, expected), got, expected)
        _quantiles_within_bound(rolled, scan, (start, end, group_by, now, filters))
    await _assert_month_summaries_kept(reporting_engine, tenant)


async def _assert_month_summaries_kept(engine, tenant: str) -> None:
    """Every month sketch row the fold touched keeps, in ``q``, the median and p90 of its own
    buckets (sketch.summary, order cell_columns.SKETCH_STATS)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(kpi_month_sketches.c.b, kpi_month_sketches.c.q)
                                   .where(kpi_month_sketches.c.tenant == tenant))).all()
    for b, q in rows:  # none when no case of the history has a time figure
        assert q == summary(b, SKETCH_STATS), (b, q)


async def test_a_slot_of_one_month_row_reads_its_stored_quantiles(reporting_engine):
    """rollup_query._month_sketch_quantiles: a slot that is one row answers with the row's stored
    ``q`` (a planted value no bucket gives, so the test sees which was read), or with its buckets
    when ``q`` is not kept yet; a slot of several rows sums their buckets (and ignores their q); a
    row with an empty map does not count."""
    from services.reporting.kpis.rollup_query import _TOTAL_Q, _month_sketch_quantiles  # noqa: PLC0415

    tenant = unique_tenant()
    may, june = datetime(2024, 5, 1, tzinfo=TZ), datetime(2024, 6, 1, tzinfo=TZ)
    d0, dn = may.date(), june.date()
    one, two, three = "990102001001", "990102001002", "990102002001"

    def planted(**stats):  # q with the given (median, p90) per statistic, None elsewhere
        return [v for stat in SKETCH_STATS for v in stats.get(stat, (None, None))]

    rows = [
        # community one: one row, q planted (its buckets would answer 0.99); and a row whose map is
        # empty (its points retracted), which is no row: read as one, the slot would sum buckets
        dict(cuboid=6, place_code=one, lo=None, b={"close_hours:0": 2}, q=planted(close_hours=(111.0, 222.0))),
        dict(cuboid=6, place_code=one, lo=d0, b={}, q=None),
        # community two: two rows (a second span-day variant, lo = May), planted q ignored: summed
        dict(cuboid=6, place_code=two, lo=None, b={"close_hours:0": 1}, q=planted(close_hours=(999.0, 999.0))),
        dict(cuboid=6, place_code=two, lo=d0, b={"close_hours:35": 1}, q=planted(close_hours=(999.0, 999.0))),
        # community three: one row without q yet: its buckets
        dict(cuboid=6, place_code=three, lo=None, b={"ack_hours:0": 1}, q=None),
        # the tenant's row (cuboid 4) for the total
        dict(cuboid=4, place_code="", lo=None, b={"close_hours:0": 1}, q=planted(close_hours=(7.0, 8.0))),
    ]
    flt = CaseFilter(tenant, may, june, tz=TZ)
    params = {**flt.sql_params(), "days": [d0, dn], "d0": d0, "d1": dn, "dn": dn}
    async with reporting_engine.begin() as conn:
        await conn.execute(sa.insert(kpi_month_sketches), [{"tenant": tenant, "day": d0, **r} for r in rows])
        got = await _month_sketch_quantiles(conn, flt, "community", params, periods=False)
        await conn.execute(sa.delete(kpi_month_sketches).where(kpi_month_sketches.c.tenant == tenant))
    # two: values 0.99 and γ^35·0.99 = 1.99366 h (bucket answers, tests/unit/test_kpi_sketch.py):
    # median h = 0.5 → 0.99 + 0.5·1.00366 = 1.49183; p90 h = 0.9 → 0.99 + 0.9·1.00366 = 1.89329
    assert got == {
        one: {"close_hours_median": 111.0, "close_hours_p90": 222.0},
        two: {"close_hours_median": pytest.approx(1.49183, rel=1e-5), "close_hours_p90": pytest.approx(1.89329, rel=1e-5)},
        three: {"ack_hours_median": pytest.approx(0.99), "ack_hours_p90": pytest.approx(0.99)},
        _TOTAL_Q: {"close_hours_median": 7.0, "close_hours_p90": 8.0},
    }


async def test_the_total_of_a_month_by_day_reads_the_months_row(reporting_engine):
    """rollup_query._month_sketch_quantiles with the tenant by day (cuboid 10): each day's slot reads
    its day row, and the total of a P of whole months the month's one row (cuboid 4, a planted q no
    bucket gives) instead of summing the day rows; a P of other days sums (or reads) its day rows."""
    from services.reporting.kpis.cuboids import DAY_CUBOID  # noqa: PLC0415
    from services.reporting.kpis.rollup_query import _TOTAL_Q, _month_sketch_quantiles  # noqa: PLC0415

    tenant = unique_tenant()
    may1, may2, may3, june1 = (datetime(2024, m, d, tzinfo=TZ).date() for m, d in ((5, 1), (5, 2), (5, 3), (6, 1)))

    def planted(median: float, p90: float) -> list:
        return [v for stat in SKETCH_STATS for v in ((median, p90) if stat == "close_hours" else (None, None))]

    rows = [dict(cuboid=DAY_CUBOID, day=may1, b={"close_hours:0": 1}, q=planted(1.0, 1.5)),
            dict(cuboid=DAY_CUBOID, day=may2, b={"close_hours:35": 1}, q=planted(2.0, 2.5)),
            dict(cuboid=4, day=may1, b={"close_hours:0": 1, "close_hours:35": 1}, q=planted(7.0, 8.0))]

    async def ask(days):
        flt = CaseFilter(tenant, datetime.combine(days[0], time(0), TZ), datetime.combine(days[-1], time(0), TZ), tz=TZ)
        params = {**flt.sql_params(), "days": days, "d0": days[0], "d1": days[1], "dn": days[-1], "cuboid": DAY_CUBOID}
        return await _month_sketch_quantiles(conn, flt, None, params, periods=True)

    async with reporting_engine.begin() as conn:
        await conn.execute(sa.insert(kpi_month_sketches), [{"tenant": tenant, "place_code": "", "lo": None, **r}
                                                           for r in rows])
        month = await ask([may1, may2, june1])  # May: May 1, and May 2–31
        days = await ask([may1, may2, may3])  # May 1 and May 2
        await conn.execute(sa.delete(kpi_month_sketches).where(kpi_month_sketches.c.tenant == tenant))
    assert month == {1: {"close_hours_median": 1.0, "close_hours_p90": 1.5},
                     2: {"close_hours_median": 2.0, "close_hours_p90": 2.5},
                     _TOTAL_Q: {"close_hours_median": 7.0, "close_hours_p90": 8.0}}
    # not whole months: the total sums the two day rows, values 0.99 and 1.99366 h (as above):
    # median 1.49183, p90 1.89329
    assert days == {1: {"close_hours_median": 1.0, "close_hours_p90": 1.5},
                    2: {"close_hours_median": 2.0, "close_hours_p90": 2.5},
                    _TOTAL_Q: {"close_hours_median": pytest.approx(1.49183, rel=1e-5),
                               "close_hours_p90": pytest.approx(1.89329, rel=1e-5)}}


@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
async def test_the_migration_sums_the_sketch_cuboids_the_fold_keeps(reporting_engine, data):
    """Migration cb378725bf37 backfills the sketch-only cuboids 4–9 from the cuboids 0–3, and the
    tenant by day (cuboid 10) from the day tables: for a folded random history, its sums equal the
    rows the fold itself keeps (buckets; ``q`` is left NULL by the migration, and the reader then
    reads the buckets)."""
    import importlib.util  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    path = next(Path("services/reporting/migrations/versions").glob("cb378725bf37_*.py"))
    spec = importlib.util.spec_from_file_location("migration_cb378725bf37", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    cases = data.draw(st.lists(a_case(day0=MONTH_DAY0), min_size=1, max_size=5))
    tenant = unique_tenant()
    await fold_through_consumer(reporting_engine, tenant,
                                _shuffled_with_redeliveries(data, [ev for case in cases for ev in case]))
    t = kpi_month_sketches
    cols = [t.c.cuboid, t.c.day, t.c.lo, t.c.hi, t.c.place_code, t.c.category_code, t.c.department, t.c.channel,
            sa.cast(t.c.b, sa.Text)]
    cuboids = [*migration.BACKFILL, migration.DAY_CUBOID]
    mine = sa.and_(t.c.tenant == tenant, t.c.cuboid.in_(cuboids), t.c.b != sa.text("'{}'::jsonb"))
    # the tenant by day's counters and spans (rows of zeros left out: the fold may keep them)
    day_rows = {table: sa.and_(table.c.tenant == tenant, table.c.cuboid == migration.DAY_CUBOID,
                               sa.or_(*[table.c[n] != 0 for n in (COUNTERS if table is kpi_month_cells else SPAN_COUNTERS)]))
                for table in (kpi_month_cells, kpi_month_spans)}

    async def rows():
        out = {"sketches": sorted((tuple(r) for r in await conn.execute(sa.select(*cols).where(mine))), key=str)}
        for table, where in day_rows.items():
            out[table.name] = sorted((tuple(r) for r in await conn.execute(
                sa.select(*[c for c in table.c if c.name != "tenant"]).where(where))), key=str)
        return out

    async with reporting_engine.begin() as conn:
        folded = await rows()
        await conn.execute(sa.delete(t).where(t.c.tenant == tenant, t.c.cuboid.in_(cuboids)))
        for table in day_rows:
            await conn.execute(sa.delete(table).where(table.c.tenant == tenant, table.c.cuboid == migration.DAY_CUBOID))
        for target in migration.BACKFILL:
            await conn.exec_driver_sql(migration.backfill_sql(target, one_tenant=True), (tenant,))
        for sql in migration.backfill_day_sql(one_tenant=True):
            await conn.exec_driver_sql(sql, (tenant,))
        backfilled = await rows()
    assume(folded["sketches"])  # a history without any time figure has no sketch
    assert {r[0] for r in folded["sketches"]} == set(cuboids)
    assert folded["kpi_month_cells"] and folded["kpi_month_spans"]
    assert backfilled == folded


async def test_month_cuboids_decline_periods_that_are_not_whole_months(reporting_engine):
    """Bounds that are local midnights but not all month starts: a question that asks for a
    dimension (here a department filter, or a grouping by street) is declined (the scan answers);
    one that asks for nothing but the period is answered by the tenant by day (cuboid 10). The
    tenant's cells are cut in TZ (its kpi_zones row), so only the bounds decide."""
    tenant = unique_tenant()
    may, june = datetime(2024, 5, 1, tzinfo=TZ), datetime(2024, 6, 1, tzinfo=TZ)
    now = datetime.now(UTC)
    cases = [(None, [may, june - timedelta(days=1)]), (None, [may + timedelta(days=1), june]),
             ("period:day", period_bounds(may, june, "day", TZ)), ("period:week", period_bounds(may, june, "week", TZ))]
    async with reporting_engine.begin() as conn:
        await conn.exec_driver_sql("INSERT INTO reporting.kpi_zones (tenant, tz) VALUES ($1, $2)", (tenant, str(TZ)))
        for group_by, bounds in cases:
            by_department = CaseFilter(tenant, tz=TZ, department="housing")
            assert await rollup_figures(conn, by_department, group_by, bounds, now, by_month=True) is None
            assert await rollup_figures(conn, CaseFilter(tenant, tz=TZ), group_by, bounds, now, by_month=True) is not None
        assert await rollup_figures(conn, CaseFilter(tenant, tz=TZ), "street", cases[0][1], now, by_month=True) is None
        await conn.exec_driver_sql("DELETE FROM reporting.kpi_zones WHERE tenant = $1", (tenant,))


async def test_the_cuboids_sum_a_big_citys_hours_beyond_64_bits(reporting_engine):
    """rollup_query.cells_sql: the sums of microseconds of P can pass 2⁶³ − 1 (9.22e18 µs) although
    each month row fits: a city of 1.5 million closures a month, 200 h each, over two years.

    Planted month rows (cuboid 3, the one an open question without filters reads, and the tenant
    by day, cuboid 10), one per month 2023-01 … 2024-12, each close_n = 1,500,000 and close_us =
    1,500,000 × 200 h × 3.6e9 µs/h = 1.08e18 (a bigint). P = all time: 24 × 1.08e18 = 2.592e19 µs,
    past 2⁶³. Expected: 办结 close_n = 24 × 1,500,000 = 36,000,000; mean 2.592e19 / 3.6e7 / 3.6e9 = 200 h."""
    tenant = unique_tenant()
    n, us = 1_500_000, 1_500_000 * 200 * 3_600_000_000
    months = [datetime(y, m, 1).date() for y in (2023, 2024) for m in range(1, 13)]
    rows = [{"cuboid": cuboid, "tenant": tenant, "day": d, "place_code": place, "channel": channel,
             "close_n": n, "close_us": us}
            for d in months for cuboid, place, channel in ((3, "990102001001", "phone"), (10, "", None))]
    flt = CaseFilter(tenant, tz=TZ)
    try:
        async with reporting_engine.begin() as conn:
            await conn.execute(sa.insert(kpi_month_cells), rows)
            await conn.execute(sa.text("INSERT INTO reporting.kpi_zones (tenant, tz) VALUES (:t, :z)"),
                               {"t": tenant, "z": str(TZ)})
        async with reporting_engine.begin() as conn:
            month = await rollup_figures(conn, flt, None, [OPEN_START, OPEN_END], datetime.now(UTC), total=TOTAL,
                                         by_month=True)
            # whole local days that are not a month's first: the tenant by day
            by_day = await rollup_figures(conn, flt, None, [datetime(2022, 12, 2, tzinfo=TZ), OPEN_END],
                                          datetime.now(UTC), total=TOTAL, by_month=True)
    finally:
        async with reporting_engine.begin() as conn:
            for table in (kpi_month_cells, sa.table("kpi_zones", sa.column("tenant"), schema="reporting")):
                await conn.execute(sa.delete(table).where(table.c.tenant == tenant))
    for got in (month, by_day):
        assert got[TOTAL]["close_n"] == 36_000_000
        assert got[TOTAL]["close_hours_mean"] == pytest.approx(200.0, rel=1e-12)
