"""``gridcase reporting rebuild`` recomputes everything from the events and gives the same figures
(issue 4 item 2) and the same KPI rollups (issue 14)."""

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from gridcase.client import import_file, wait_until_counted
from gridcase.demo import REPO
from services.reporting.db import (
    kpi_cells,
    kpi_month_cells,
    kpi_month_sketches,
    kpi_month_spans,
    kpi_sketches,
    kpi_spans,
    kpi_zones,
)
from services.reporting.kpis.cell_columns import COUNTERS, SPAN_COUNTERS
from shared.platform.db import make_engine
from tests import api

pytestmark = pytest.mark.e2e


def rounded(value):
    """Floats to 9 significant digits: a mean over double precision depends on the order rows are
    summed in, which a rebuild changes (the counts and medians are exact either way)."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def snapshot(stack, tenant: str) -> dict:
    url = stack.url("reporting")
    out = {}
    for group in (None, "department", "status", "place", "category"):
        params = {"tenant": tenant} | ({"group_by": group} if group else {})
        out[f"stats:{group}"] = api.get(f"{url}/v1/stats", params=params, timeout=30).json()
    out["kpis"] = api.get(f"{url}/v1/kpis", params={"tenant": tenant, "group_by": "department"}, timeout=30).json()
    out["patrols"] = api.get(f"{url}/v1/patrols", params={"tenant": tenant}, timeout=30).json()
    return rounded(out)


def step_rollups(database_url: str, tenants) -> list:
    """The non-zero step cells and case days of ``tenants`` (services/reporting/step_rollup.py), by day
    and by month, sorted;
    cells whose counters all went back to 0 are left out (where they remain depends on batching)."""

    import asyncpg  # noqa: PLC0415

    from shared.platform.db import libpq_url  # noqa: PLC0415

    async def read() -> list:
        conn = await asyncpg.connect(libpq_url(database_url))
        try:
            cells = await conn.fetch("SELECT * FROM reporting.step_cells WHERE tenant = ANY($1::text[]) AND events <> 0",
                                     list(tenants))
            days = await conn.fetch("SELECT * FROM reporting.step_case_days WHERE tenant = ANY($1::text[]) AND cases <> 0",
                                    list(tenants))
            days += await conn.fetch("SELECT * FROM reporting.step_day_cells WHERE tenant = ANY($1::text[]) "
                                     "AND events <> 0", list(tenants))
            days += await conn.fetch("SELECT * FROM reporting.step_month_cells WHERE tenant = ANY($1::text[]) "
                                     "AND events <> 0", list(tenants))
            days += await conn.fetch("SELECT * FROM reporting.step_month_case_days WHERE tenant = ANY($1::text[]) "
                                     "AND cases <> 0", list(tenants))
            zones = await conn.fetch("SELECT * FROM reporting.step_cell_zones WHERE tenant = ANY($1::text[])", list(tenants))
        finally:
            await conn.close()
        return sorted(repr(tuple(r.items())) for r in [*cells, *days, *zones])


def rollups(database_url: str, tenants: tuple[str, ...]) -> dict:
    """The tenants' KPI cells and sketch buckets with a count other than 0 (a cell whose cases all moved on keeps a
    row of zeros in the consumer's tables; a rebuild never writes it) and their zones."""
    async def read() -> dict:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                out = {}
                for table in (kpi_cells, kpi_spans, kpi_sketches, kpi_month_cells, kpi_month_spans, kpi_month_sketches):
                    counters = [c for c in table.c if c.name in (*COUNTERS, *SPAN_COUNTERS)]
                    if table in (kpi_sketches, kpi_month_sketches):  # its counts are a jsonb map without zeros
                        counters = [sa.cast(table.c.b, sa.Text)]
                    rows = await conn.execute(sa.select(table).where(table.c.tenant.in_(tenants),
                                                                       sa.or_(*[c != ("{}" if table in (kpi_sketches, kpi_month_sketches) else 0) for c in counters])))
                    out[table.name] = sorted(tuple(str(v) for v in r) for r in rows)
                out["zones"] = sorted(tuple(r) for r in await conn.execute(
                    sa.select(kpi_zones).where(kpi_zones.c.tenant.in_(tenants))))
                return out
        finally:
            await engine.dispose()
    return asyncio.run(read())


def test_rebuild_gives_the_same_figures(stack):
    result = import_file(stack.url("intake"), REPO / "data" / "nyc311_2018-10-21_sample.csv", "nyc311", "nyc")
    wait_until_counted(stack.url("dispatch"), stack.url("reporting"), "nyc", result["accepted"])
    resp = api.post(f"{stack.url('intake')}/v1/reports", timeout=10, json={
        "tenant": "demo-grid", "category_code": "100102", "place_code": "990102001001001", "channel": "grid_worker",
        "reported_at": "2026-11-02T08:00:00+08:00", "source": "rebuild-test", "source_id": "r-1"})
    resp.raise_for_status()
    case_id = resp.json()["case_id"]
    deadline = time.monotonic() + 30
    while api.get(f"{stack.url('intake')}/v1/cases/{case_id}", timeout=10).json()["state"] != "dispatched":
        assert time.monotonic() < deadline, "the report was not dispatched"
        time.sleep(0.3)
    tenants = ("nyc", "demo-grid")
    for tenant in tenants:
        progress = api.get(f"{stack.url('dispatch')}/v1/progress", params={"tenant": tenant}).json()
        wait_until_counted(stack.url("dispatch"), stack.url("reporting"), tenant, progress["cases"])
    before = {t: snapshot(stack, t) for t in tenants}
    steps_before = step_rollups(stack.infra.database_url, tenants)
    cells_before = rollups(stack.infra.database_url, tenants)
    assert len(cells_before["kpi_cells"]) > 100 and ("nyc", "America/New_York") in cells_before["zones"]
    assert len(cells_before["kpi_month_cells"]) >= 4  # at least one row per cuboid
    run = subprocess.run([sys.executable, "-m", "gridcase.cli", "reporting", "rebuild"], capture_output=True, text=True,
                         timeout=300, env=os.environ | {"DATABASE_URL": stack.infra.database_url})
    assert run.returncode == 0, run.stderr
    rebuilt = json.loads(run.stdout.strip().splitlines()[-1])["rebuilt"]
    assert rebuilt["events"] > 0 and rebuilt["cases"] >= 4000
    after = {t: snapshot(stack, t) for t in tenants}
    assert after == before
    assert step_rollups(stack.infra.database_url, tenants) == steps_before  # identical rollups
    assert rollups(stack.infra.database_url, tenants) == cells_before
