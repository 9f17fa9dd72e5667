"""The step cells statement (services/reporting/kpis/step_cells_sql.py ``cells_sql``) on rows
written by hand: a group row joins the group's summed cells with its summed case days, and a NULL
group key (a case without a channel) is not the empty one (a channel recorded as ''). The random
histories of test_step_cells_properties.py never draw an empty key, so this is checked here."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pytest
import sqlalchemy as sa

from services.reporting.db import step_case_days, step_cell_zones, step_cells
from services.reporting.filters import CaseFilter
from services.reporting.kpis import step_cells_sql
from shared.domain.workcalendar import DEFAULT_TZ

pytestmark = pytest.mark.integration

DAY = date(2024, 5, 2)


def _cell(tenant: str, channel: str | None, events: int, dispatches: int) -> dict:
    return {"tenant": tenant, "day": DAY, "place_code": "990102001001001", "category_code": "c1",
            "department": "housing", "channel": channel, "rung": None, "events": events, "dispatches": dispatches}


def _case_day(tenant: str, channel: str | None, cases: int) -> dict:
    return {"tenant": tenant, "day": DAY, "place_code": "990102001001001", "category_code": "c1",
            "department": None, "channel": channel, "rung": None, "figure": "escalated", "prev_day": None,
            "by_department": False, "by_rung": False, "cases": cases}


async def test_a_null_key_and_an_empty_key_are_two_groups(reporting_engine):
    """By hand: channel NULL has 2 dispatches (2 events) and 2 escalated cases, channel '' has 1 and
    1; each group row has its own, the total 3 and 3. Joining the case days on the key with NULL
    taken as '' would give each group both case-day rows (two rows per key)."""
    tenant = f"it-keys-{uuid.uuid4().hex[:12]}"
    async with reporting_engine.connect() as conn, conn.begin():
        await conn.execute(sa.insert(step_cell_zones), [{"tenant": tenant, "timezone": DEFAULT_TZ.key}])
        await conn.execute(sa.insert(step_cells), [_cell(tenant, None, 2, 2), _cell(tenant, "", 1, 1)])
        await conn.execute(sa.insert(step_case_days), [_case_day(tenant, None, 2), _case_day(tenant, "", 1)])
        start = datetime(2024, 5, 1, tzinfo=DEFAULT_TZ)
        end = datetime(2024, 5, 8, tzinfo=DEFAULT_TZ)  # a week: the day tables answer
        rows = await step_cells_sql.cell_rows(conn, CaseFilter(tenant, start, end, tz=DEFAULT_TZ), "channel", [start, end])
        await conn.rollback()
    assert sorted(((r["key"], r["g"], r["dispatches"], r["escalated"]) for r in rows), key=repr) == sorted(
        [(None, 0, 2, 2), ("", 0, 1, 1), (None, 1, 3, 3)], key=repr)
