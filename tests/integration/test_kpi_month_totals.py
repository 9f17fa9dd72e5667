"""The total of whole months asked by day or week (rollup_query._month_sketch_quantiles): since
6ec484d it reads the months' sketch rows (cuboid 4, the stored median and p90 of a month's one row)
instead of summing the tenant-by-day rows. Both hold the same buckets, so the total's medians and
p90 must be those the day tables give (``by_month=False``: the sum of ``kpi_sketches``), as must
every day's and week's, for random cases around the end of April (and for days that are not
whole months, whose total sums the day rows)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.reporting.filters import CaseFilter
from services.reporting.kpis.periods import period_bounds
from services.reporting.kpis.queries import TOTAL
from services.reporting.kpis.rollup_query import rollup_figures
from tests.integration.helpers import unique_tenant
from tests.integration.test_fold_properties import (
    _shuffled_with_redeliveries,
    fold_through_consumer,
)
from tests.integration.test_kpi_rollups import TZ, a_case

pytestmark = pytest.mark.integration

#: reports from 24 April to 3 May, their steps days later: sketches in April and May
DAY0 = datetime(2024, 4, 24, tzinfo=TZ)


def _quantiles(raw: dict) -> dict:
    return {("TOTAL" if key is TOTAL else key, k): v for key, figures in raw.items() for k, v in figures.items()
            if k.endswith(("_median", "_p90")) and v is not None}


@settings(max_examples=10, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_whole_months_by_day_or_week_give_the_day_tables_quantiles(reporting_engine, data):
    cases = data.draw(st.lists(a_case(DAY0), min_size=2, max_size=6))
    tenant = unique_tenant()
    await fold_through_consumer(reporting_engine, tenant, _shuffled_with_redeliveries(data, [e for c in cases for e in c]))
    month = lambda m: datetime(2024, m, 1, tzinfo=TZ)  # noqa: E731
    now = month(7)
    async with reporting_engine.begin() as conn:
        for unit in ("day", "week"):
            # and days that are not whole months: the total sums the day rows
            for start, end in ((month(4), month(5)), (month(5), month(6)), (month(4), month(6)),
                               (datetime(2024, 4, 27, tzinfo=TZ), datetime(2024, 5, 3, tzinfo=TZ))):
                flt = CaseFilter(tenant, start, end, tz=TZ)
                bounds = period_bounds(start, end, unit, TZ)
                days = await rollup_figures(conn, flt, f"period:{unit}", bounds, now, total=TOTAL)
                months = await rollup_figures(conn, flt, f"period:{unit}", bounds, now, total=TOTAL, by_month=True)
                expected, got = _quantiles(days), _quantiles(months)
                assert got.keys() == expected.keys(), (unit, start)
                for k, v in expected.items():
                    assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-12), (unit, start, k)
