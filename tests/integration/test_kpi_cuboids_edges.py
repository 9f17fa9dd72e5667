"""The month cuboids (issue 14; services/reporting/kpis/cuboids.py) at the edges the property test of
tests/integration/test_kpi_rollups.py leaves out: a tenant in a zone with daylight saving time
(America/New_York), place codes that are not the standard 15 digits (shorter than a community's 12,
13 characters, 24), prefixes of 11, 12 and 13 characters, cases living for months (events and
deadlines weeks after the report), and periods of several months. The claim checked is the
feature's: for bounds at local month starts (or open ends), the cuboids give the scan's figures
whenever cuboids.choose finds one, and decline otherwise."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting.filters import CaseFilter
from services.reporting.kpis import rollup_query
from services.reporting.kpis.cuboids import choose
from services.reporting.kpis.periods import OPEN_END, OPEN_START, period_bounds
from services.reporting.kpis.queries import TOTAL, query_kpis, raw_figures
from services.reporting.kpis.rollup_query import rollup_figures
from shared.contract.events import (
    CaseDispatched,
    CaseReported,
    CaseTransitioned,
)
from shared.platform.db import snapshot_connection
from tests.integration.helpers import unique_tenant
from tests.integration.test_fold_properties import (
    _shuffled_with_redeliveries,
    fold_through_consumer,
)
from tests.integration.test_kpi_rollups import (
    PLACES,
    _diff,
    _normal,
    _quantiles_within_bound,
    a_case,
)

pytestmark = pytest.mark.integration

NY = ZoneInfo("America/New_York")
#: Cases reported over ten days around the end of daylight saving time (2024-11-03 02:00 EDT → 01:00 EST).
DAY0 = datetime(2024, 10, 27, tzinfo=NY)
MONTH_STARTS = [OPEN_START, *(datetime(y, m, 1, tzinfo=NY) for y, m in
                              ((2024, 9), (2024, 10), (2024, 11), (2024, 12), (2025, 1), (2025, 3))), OPEN_END]
#: The test cases' three places (test_kpi_rollups.PLACES) mapped to codes of other lengths: 13
#: characters (a community's 12 and one more), 7 and 9 (shorter than a community), 12, 24 (the longest).
CODES = {
    PLACES[0]: ["nycbk0101aaaX", "nycbk0101aaaY", "nycbk01"],
    PLACES[1]: ["nycbk0101aaaX", "nycbk0102", "nycbk0101aaaX" + "0" * 11],
    PLACES[2]: ["nycmn0101aaaX", "nycbk0101aaa", "990102001001001"],
}
PREFIXES = [None, None, "", "nycbk", "nycbk0101aa", "nycbk0101aaa", "nycbk0101aaaX", "nycbk0101aaaX0"]


async def fold_in(engine, tenant: str, tz, batches: list[list]) -> None:
    """test_fold_properties.fold_through_consumer with the tenant's days cut in ``tz``."""
    await fold_through_consumer(engine, tenant, batches, tz=tz)


@st.composite
def a_long_case(draw):
    """test_kpi_rollups.a_case around DAY0, its place codes mapped to :data:`CODES` and each later
    event moved by 0 to 80 days (a case open for months, deadlines and closures months away)."""
    events = draw(a_case(day0=DAY0))
    variant = draw(st.integers(0, 2))
    out = []
    for ev in events:
        upd = {"place_code": CODES[ev.place_code][variant]}
        if not isinstance(ev, CaseReported) and draw(st.integers(0, 2)) == 0:
            shift = timedelta(days=draw(st.integers(0, 80)), hours=draw(st.sampled_from([0, 5, 23])))
            upd["occurred_at"] = ev.occurred_at + shift
            for name in ("deadline", "closed_at"):
                if getattr(ev, name, None) is not None:
                    upd[name] = getattr(ev, name) + shift
        out.append(ev.model_copy(update=upd))
    return out


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_month_cuboids_give_the_scans_figures_in_a_dst_zone_with_odd_codes(reporting_engine, data):
    cases = data.draw(st.lists(a_long_case(), min_size=1, max_size=6))
    tenant = unique_tenant()
    await fold_in(reporting_engine, tenant, NY, _shuffled_with_redeliveries(data, [ev for c in cases for ev in c]))
    for _ in range(4):
        i = data.draw(st.integers(0, len(MONTH_STARTS) - 2))
        j = data.draw(st.integers(i + 1, len(MONTH_STARTS) - 1))
        start, end = MONTH_STARTS[i], MONTH_STARTS[j]
        group_by = data.draw(st.sampled_from([None, "grid", "community", "street", "category", "department",
                                              "channel", "period:month"]))
        now = DAY0 + timedelta(hours=data.draw(st.integers(-40 * 24, 120 * 24)), minutes=data.draw(st.sampled_from([0, 30])))
        filters = {"place_prefix": data.draw(st.sampled_from(PREFIXES)),
                   "category": data.draw(st.sampled_from([None, None, "100501"])),
                   "department": data.draw(st.sampled_from([None, None, "housing"]))}
        business = data.draw(st.booleans())
        flt = CaseFilter(tenant, None if start == OPEN_START else start, None if end == OPEN_END else end, tz=NY,
                         **filters)
        if group_by == "period:month":
            if start == OPEN_START or end == OPEN_END:
                continue
            bounds = period_bounds(start, end, "month", NY)
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
        assert rolled is not None, "the cuboids must answer for whole months"
        got, expected = _normal(rolled), _normal(scan)
        assert got == expected, (start, end, group_by, now, filters, _diff(got, expected), got, expected)
        _quantiles_within_bound(rolled, scan, (start, end, group_by, now, filters))


async def _scan_only(*args, **kwargs):
    return None


def _table_figures(table: dict) -> dict:
    """A KPI table's rows by key (and its total), every column but the medians and p90 (those of
    the cuboids are within 1 %, compared by the test above); means and rates to 1e-9 (the scan's
    are float8 averages, the cuboids' integer µs over a count: they differ in the last bits)."""
    rows = {("TOTAL" if r is table["total"] else r["key"]): r for r in [*table["rows"], table["total"]]}
    return {key: {k: round(v, 9) if isinstance(v, float) else v for k, v in r.items()
                  if not k.endswith(("_median", "_p90"))} for key, r in rows.items()}


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_the_kpi_table_from_the_cuboids_is_the_scans(reporting_engine, data):
    """GET /v1/kpis' table (queries.query_kpis) for whole months, read through the cuboids (the
    default) and by the scan: the same rows, in the same order, with the same figures."""
    cases = data.draw(st.lists(a_long_case(), min_size=1, max_size=6))
    tenant = unique_tenant()
    await fold_in(reporting_engine, tenant, NY, _shuffled_with_redeliveries(data, [ev for c in cases for ev in c]))
    for _ in range(3):
        i = data.draw(st.integers(1, len(MONTH_STARTS) - 3))
        j = data.draw(st.integers(i + 1, len(MONTH_STARTS) - 2))
        group_by = data.draw(st.sampled_from([None, "grid", "community", "street", "category", "department",
                                              "channel", "period:month"]))
        flt = CaseFilter(tenant, MONTH_STARTS[i], MONTH_STARTS[j], tz=NY,
                         place_prefix=data.draw(st.sampled_from(PREFIXES)))
        now = DAY0 + timedelta(hours=data.draw(st.integers(-40 * 24, 120 * 24)))
        async with reporting_engine.begin() as conn:
            cuboids = await query_kpis(conn, flt, group_by, now=now)
            with patch("services.reporting.kpis.queries.rollup_figures", _scan_only):
                scan = await query_kpis(conn, flt, group_by, now=now)
        got, want = _table_figures(cuboids), _table_figures(scan)
        assert [r["key"] for r in cuboids["rows"]] == [r["key"] for r in scan["rows"]], (flt, group_by, now, got, want)
        assert got == want, (flt, group_by, now, {key: {k: (v, want.get(key, {}).get(k)) for k, v in row.items()
                                                       if v != want.get(key, {}).get(k)} for key, row in got.items()})


async def test_the_cuboids_answer_from_one_snapshot_while_a_fold_commits(reporting_engine):
    """The scan reads P in one statement, so a fold committing meanwhile is either wholly in its
    answer or wholly out; the cuboids read P in five statements (cells, dues, states, deadlines,
    sketches), each with its own snapshot under READ COMMITTED (the API's ``engine.connect()``).

    One case of Shanghai time, reported 2024-05-10 10:00 and dispatched; its closure on 05-12
    commits after the cells' statement and before the spans'. P = May 2024, now = 2024-07-01.
    Before the closure: 办结 closed 0, 在办 in_progress_own 1 (open at June 1). After: closed 1,
    in_progress_own 0. Any answer of one moment is one of these two; (0, 0) is none."""

    tz = ZoneInfo("Asia/Shanghai")
    tenant = unique_tenant()
    case_id, t0 = uuid.uuid4(), datetime(2024, 5, 10, 10, tzinfo=tz)
    base = {"case_id": case_id, "tenant": tenant, "place_code": PLACES[0]}
    await fold_through_consumer(reporting_engine, tenant, [[
        CaseReported(event_id=uuid.uuid4(), occurred_at=t0, reported_at=t0, category_code="100401", channel="phone",
                     **base),
        CaseDispatched(event_id=uuid.uuid4(), occurred_at=t0 + timedelta(minutes=30), target_kind="department",
                       department="housing", rule="r", deadline=t0 + timedelta(days=10), sequence=1, **base)]])
    closure = CaseTransitioned(event_id=uuid.uuid4(), occurred_at=t0 + timedelta(days=2), action="verify_pass",
                               from_state="checking", to_state="closed", actor_role="department_staff", sequence=2,
                               department="housing", outcome="resolved", **base)
    real_rows, reads = rollup_query.fetch_dicts, []

    async def rows_then_fold(conn, sql, params):
        out = await real_rows(conn, sql, params)
        reads.append(sql)
        if len(reads) == 1:  # after the cells, before the spans
            await fold_through_consumer(reporting_engine, tenant, [[closure]])
        return out

    flt = CaseFilter(tenant, datetime(2024, 5, 1, tzinfo=tz), datetime(2024, 6, 1, tzinfo=tz), tz=tz)
    # as the KPI routes read (services/reporting/api/kpis.py, summary.py, stats.py): one snapshot
    async with snapshot_connection(reporting_engine) as conn:
        with patch.object(rollup_query, "fetch_dicts", rows_then_fold):
            got = await raw_figures(conn, flt, None, [flt.start, flt.end], datetime(2024, 7, 1, tzinfo=tz))
    assert len(reads) >= 3, "the cuboids answered"
    assert (got[TOTAL]["closed"], got[TOTAL]["in_progress_own"]) in {(0, 1), (1, 0)}


@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_concurrent_folds_of_one_tenants_month_rows(reporting_engine, data):
    """Two consumers folding different cases of one tenant at once, in small batches, add to the
    same month rows (one grid, one community, one month): no deadlock, and the rows come out as
    the rows recomputed from the final facts (rollup_fold.rollups_from_facts)."""
    import asyncio  # noqa: PLC0415

    from services.reporting.kpis.rollup_fold import rollups_from_facts  # noqa: PLC0415
    from tests.integration.test_kpi_rollups import _nonzero_cells  # noqa: PLC0415

    tenant = unique_tenant()
    streams = []
    for _ in range(2):
        cases = data.draw(st.lists(a_long_case(), min_size=3, max_size=6))
        events = [ev.model_copy(update={"place_code": "nycbk0101aaaX"}) for c in cases for ev in c]
        streams.append([[ev] for ev in data.draw(st.permutations(events))])
    await asyncio.gather(*(fold_in(reporting_engine, tenant, NY, s) for s in streams))
    folded = await _nonzero_cells(reporting_engine, tenant)
    async with reporting_engine.begin() as conn:
        await rollups_from_facts(conn, tenant, lambda t: NY)
    assert await _nonzero_cells(reporting_engine, tenant) == folded


#: Local midnights from three weeks before DAY0 to twelve weeks after it (the DST change 2024-11-03
#: lies on day 7), and the open ends.
DAY_BOUNDS = [DAY0 + timedelta(days=k) for k in range(-21, 85)]


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_the_tenant_by_day_gives_the_scans_figures_in_a_dst_zone(reporting_engine, data):
    """Cuboid 10 (cuboids.DAY_CUBOID) in America/New_York: for bounds at any local midnights (the
    DST day among them; or the open ends), a table of the period alone (None, period:day,
    period:week) read through the cuboids gives the scan's figures."""
    cases = data.draw(st.lists(a_long_case(), min_size=1, max_size=6))
    tenant = unique_tenant()
    await fold_in(reporting_engine, tenant, NY, _shuffled_with_redeliveries(data, [ev for c in cases for ev in c]))
    for _ in range(4):
        i = data.draw(st.integers(-1, len(DAY_BOUNDS) - 2))
        j = data.draw(st.integers(max(i, 0) + 1, len(DAY_BOUNDS)))
        start = OPEN_START if i < 0 else DAY_BOUNDS[i]
        end = OPEN_END if j == len(DAY_BOUNDS) else DAY_BOUNDS[j]
        group_by = data.draw(st.sampled_from([None, "period:day", "period:week"]))
        now = DAY0 + timedelta(hours=data.draw(st.integers(-40 * 24, 120 * 24)), minutes=data.draw(st.sampled_from([0, 30])))
        prefix = data.draw(st.sampled_from([None, None, ""]))
        flt = CaseFilter(tenant, None if start == OPEN_START else start, None if end == OPEN_END else end, tz=NY,
                         place_prefix=prefix)
        if group_by is not None:
            if start == OPEN_START or end == OPEN_END:
                continue
            bounds = period_bounds(start, end, group_by.split(":")[1], NY)
        else:
            bounds = [start, end]
        async with reporting_engine.begin() as conn:
            scan = await raw_figures(conn, flt, group_by, bounds, now, None, use_cuboids=False)
            rolled = await rollup_figures(conn, flt, group_by, bounds, now, None, total=TOTAL, by_month=True)
        assert rolled is not None, "the tenant by day must answer a question of the period alone"
        got, expected = _normal(rolled), _normal(scan)
        assert got == expected, (start, end, group_by, now, prefix, _diff(got, expected), got, expected)
        _quantiles_within_bound(rolled, scan, (start, end, group_by, now, prefix))
