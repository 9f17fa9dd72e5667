"""Migration 4e7a2c9d1b58 (the step cells by month, issue 14) on edge data, down and up again in a
database of the test's own: after ``downgrade`` to cb378725bf37 the two month tables are gone, and
``upgrade`` fills them from ``step_cells`` and ``step_case_days`` exactly as the fold had kept them
(services/reporting/step_rollup.py ``apply``, services/reporting/kpis/step_cuboids.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date

import pytest
from alembic import command
from alembic.config import Config

from services.reporting import step_rollup
from services.reporting.db import MIGRATIONS, SCHEMA
from services.reporting.kpis.step_cells import CaseDayKey, CellKey, Contributions
from shared.platform.db import async_url
from tests.integration.conftest import own_database

pytestmark = pytest.mark.integration

T = "it-mig"


def _edge_data() -> tuple[Contributions, Contributions]:
    """Cells with codes shorter than a community's and longer, NULL category, department, channel
    and rung, a cell whose counters cancel; case days per department and over all, whose previous
    day is in the same month, the month before, the year before, or none."""
    first, second = Contributions.empty(), Contributions.empty()
    cells = [
        CellKey(T, date(2024, 1, 31), "990102", None, None, None, None),
        CellKey(T, date(2024, 2, 1), "990102", None, None, None, None),
        CellKey(T, date(2024, 2, 29), "9901020010010012", "100401", "housing", "", "street"),
        CellKey(T, date(2024, 2, 3), "990102001001", "100401", "water", "phone", None),
    ]
    for i, k in enumerate(cells):
        first.cells[k] = Counter(events=i + 1, dispatches=i, mediation_hours_us=3_600_000_000 * (i + 1))
    second.cells[cells[3]] = Counter(events=-4, dispatches=-3, mediation_hours_us=-4 * 3_600_000_000)  # all gone
    for figure, d, prev, dept, by_dept in (("escalated", date(2024, 2, 10), None, None, False),
                                           ("escalated", date(2024, 2, 20), date(2024, 2, 10), None, False),
                                           ("escalated", date(2024, 3, 1), date(2024, 2, 20), None, False),
                                           ("escalated", date(2024, 1, 2), date(2023, 1, 20), "housing", True),
                                           ("mediated", date(2024, 2, 10), None, None, True)):
        first.case_days[CaseDayKey(T, figure, d, prev, "99010200100", None, dept, "phone", None, by_dept, False)] += 1
    return first, second


async def _month_rows(engine) -> list[tuple]:
    async with engine.connect() as conn:
        rows = []
        for table in ("step_month_cells", "step_month_case_days"):
            result = await conn.exec_driver_sql(f"SELECT * FROM reporting.{table} WHERE tenant = $1", (T,))
            names = list(result.keys())
            counter = "events" if table == "step_month_cells" else "cases"
            rows += [(table, *r) for r in result.all() if r[names.index(counter)] != 0]
    return sorted(rows, key=repr)


def _alembic(url: str, verb: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = async_url(url)
    cfg.attributes["schema"] = SCHEMA
    getattr(command, verb)(cfg, revision)


async def test_downgrade_and_upgrade_backfill_what_the_fold_kept(infra):
    async with own_database(infra, MIGRATIONS, SCHEMA) as engine:
        first, second = _edge_data()
        async with engine.begin() as conn:
            await step_rollup.apply(conn, first)
        async with engine.begin() as conn:
            await step_rollup.apply(conn, second)
        folded = await _month_rows(engine)
        # by hand: January's grid row (1 event) and February's (2) of "990102", the 16-digit grid
        # (3), the water cell cancelled: each kept in the cuboids 0–3 (4 rows per cell), so 3 × 4
        # month cells (the water cell's community × category row is the 16-digit grid's)
        assert sum(1 for r in folded if r[0] == "step_month_cells") == 12
        # case days: each in cuboid 10; those over all departments whose previous day is in another
        # month (or none) in the cuboids 0–3 too (2 × 4), those per department in cuboid 2 (2 × 1)
        assert sum(1 for r in folded if r[0] == "step_month_case_days") == 5 + 8 + 2
        url = engine.url.render_as_string(hide_password=False)
        await engine.dispose()
        await asyncio.to_thread(_alembic, url, "downgrade", "cb378725bf37")
        async with engine.connect() as conn:
            left = (await conn.exec_driver_sql(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'reporting' AND tablename LIKE 'step_month%'")).scalar()
        assert left == 0
        await engine.dispose()
        await asyncio.to_thread(_alembic, url, "upgrade", "head")
        assert await _month_rows(engine) == folded
