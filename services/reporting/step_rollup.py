"""Folding the per-event figures into their cells (issue 14): ``reporting.step_cells``, their sums
over places, categories and channels ``reporting.step_day_cells``, and ``reporting.step_case_days``
(services/reporting/db.py), in the fold's transaction.

When a batch of events touches a case, its old contributions (from its fact row and steps before
the batch) are retracted and its new ones added (:func:`services.reporting.kpis.step_cells.case_contributions`);
the touched cases are locked (:data:`LOCK_SQL`) and read with one statement before and one after the
fold (:data:`READ`; the KPI rollups, services/reporting/kpis/rollup_fold.py, take their fact rows
from the same two reads), and the differences of the whole batch are applied with one set-based upsert per table (``INSERT … SELECT FROM unnest …
ON CONFLICT DO UPDATE SET c = cell.c + excluded.c``). Additions commute, and a case's
contributions depend only on its current rows, which the fold keeps order-independent, so the cells
equal the sum over the cases of their current contributions whatever the order and batching of
the events. (An event is folded once: the consumer drops redeliveries through ``processed_events``;
folding one twice would not change the rows, so neither the cells.)

Each tenant's cells are computed in one timezone, recorded in ``reporting.step_cell_zones`` on its
first batch (the tenant's configured zone, shared/domain/tenants.py; an unknown tenant: the
default one); readers use the cells only for a request in that zone. ``gridcase reporting rebuild``
empties these tables (and their sums by month, ``step_month_cells`` and ``step_month_case_days``:
services/reporting/kpis/step_cuboids.py) with the facts and folds again. Each upsert passes its
rows sorted (:func:`lock_order`): batches folding different cases at once share rows, and rows
locked in two orders deadlock.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import (
    STEP_CASE_DAY_KEY,
    STEP_CELL_COUNTERS,
    STEP_CELL_KEY,
    STEP_DAY_CELL_KEY,
    STEP_MONTH_CASE_DAY_KEY,
    STEP_MONTH_CELL_KEY,
    case_facts,
    case_steps,
    step_case_days,
    step_cells,
    step_day_cells,
    step_month_case_days,
    step_month_cells,
)
from services.reporting.filters import COUNTED_SQL
from services.reporting.kpis.clock import working_clock
from services.reporting.kpis.rollup_fold import upsert_sql
from services.reporting.kpis.sql import bind
from services.reporting.kpis.step_cells import Contributions, case_contributions
from services.reporting.kpis.step_cuboids import month_case_days, month_cells
from shared.contract.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseStatusRecorded,
    CaseSupervised,
    CaseTransferred,
    CaseTransitioned,
)
from shared.domain.workcalendar import DEFAULT_TZ

#: Events that change a case's fact row or steps.
CASE_EVENTS = (CaseReported, CaseDispatched, CaseTransferred, CaseTransitioned, CaseClosed, CaseStatusRecorded,
               CaseSupervised)

_STEP_COLUMNS = ("sequence", "at", "action", "from_state", "to_state", "target_kind", "department", "from_department",
                 "mediation_level", "from_mediation_level", "satisfaction", "resident_resolved", "history")

#: The touched cases' fact rows (every ``case_facts`` column, and ``counted``: the KPI universe,
#: services/reporting/filters.py) with, for counted cases, their steps as one array per step column
#: in sequence order (NULL arrays: no counted steps), one row per case. The one statement both rollups
#: read the cases with: the step cells take their fields and steps, the KPI rollups
#: (services/reporting/kpis/rollup_fold.py) their fact rows.
_cf = case_facts.alias("cf")
_s = case_steps.alias("s")
_COUNTED = sa.literal_column(f"({COUNTED_SQL})", sa.Boolean)  # over the alias cf
_STEPS = (sa.select(*(sa.func.array_agg(aggregate_order_by(_s.c[c], _s.c.sequence)).label(f"step_{c}")
                      for c in _STEP_COLUMNS))
          .where(_s.c.case_id == _cf.c.case_id, _COUNTED).lateral("steps"))
READ = (sa.select(_cf, _COUNTED.label("counted"), *_STEPS.c).select_from(_cf.join(_STEPS, sa.true()))
        .where(_cf.c.case_id == sa.any_(sa.bindparam("ids", type_=pg.ARRAY(pg.UUID(as_uuid=True)))))
        .order_by(_cf.c.case_id))
#: :data:`READ` locking the fact rows (in case id order) for the fold that follows.
READ_FOR_UPDATE = READ.with_for_update(of=_cf)
_FACT_COLUMNS = (*(c.name for c in case_facts.c), "counted")


@lru_cache(maxsize=1)
def _configured_zones() -> dict[str, str]:
    """Each configured tenant's zone (the tenant files reporting itself loads, services/reporting/main.py)."""
    from shared.domain.tenants import load_all_tenants  # noqa: PLC0415
    from shared.platform.settings import ServiceSettings  # noqa: PLC0415

    return {name: t.timezone for name, t in load_all_tenants(ServiceSettings().tenants_dir or None).items()}


def configured_zone(tenant: str) -> str:
    """The tenant's configured timezone name, the default zone's for a tenant not configured."""
    return _configured_zones().get(tenant, DEFAULT_TZ.key)


async def zones_of(conn: AsyncConnection, tenants: Iterable[str]) -> dict[str, tzinfo]:
    """The zone each tenant's cells are computed in, recorded now for tenants new to the cells."""
    tenants = sorted(set(tenants))
    # one statement: the rows inserted now (RETURNING) and those recorded before (the snapshot)
    text, args = bind(
        "WITH ins AS (INSERT INTO reporting.step_cell_zones (tenant, timezone) "
        "SELECT * FROM unnest(:t::text[], :z::text[]) ON CONFLICT (tenant) DO NOTHING RETURNING tenant, timezone) "
        "SELECT tenant, timezone FROM ins UNION ALL "
        "SELECT tenant, timezone FROM reporting.step_cell_zones WHERE tenant = ANY(:t::text[])",
        {"t": tenants, "z": [configured_zone(t) for t in tenants]})
    zones = {r[0]: ZoneInfo(r[1]) for r in (await conn.exec_driver_sql(text, args)).all()}
    if len(zones) < len(tenants):  # recorded by a transaction that committed while this one waited
        text, args = bind("SELECT tenant, timezone FROM reporting.step_cell_zones WHERE tenant = ANY(:t::text[])",
                          {"t": tenants})
        zones = {r[0]: ZoneInfo(r[1]) for r in (await conn.exec_driver_sql(text, args)).all()}
    return zones


async def read_cases(conn: AsyncConnection, ids: list[uuid.UUID], lock: bool = False
                     ) -> dict[uuid.UUID, tuple[dict, list[dict]]]:
    """``{case_id: (fact row, steps)}`` of ``ids`` (one statement, :data:`READ`; ``lock``: the fact
    rows ``FOR UPDATE``): the row's every column and ``counted``; steps only of counted cases."""
    out: dict[uuid.UUID, tuple[dict, list[dict]]] = {}
    if not ids:
        return out
    for row in (await conn.execute(READ_FOR_UPDATE if lock else READ, {"ids": ids})).mappings():
        steps = row["step_sequence"]
        columns = [row[f"step_{c}"] for c in _STEP_COLUMNS] if steps is not None else []
        out[row["case_id"]] = ({c: row[c] for c in _FACT_COLUMNS},
                               [dict(zip(_STEP_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)])
    return out


def contributions(cases: Mapping[uuid.UUID, tuple[dict, list[dict]]], zones: Mapping[str, tzinfo],
                  sign: int = 1, into: Contributions | None = None) -> Contributions:
    """The sum of the cases' contributions (× ``sign``), added to ``into``."""
    out = into or Contributions.empty()
    clock = working_clock()
    for fact, steps in cases.values():
        out.add(case_contributions(fact, steps, zones.get(fact["tenant"], DEFAULT_TZ), clock), sign)
    return out


CELLS_UPSERT = upsert_sql(step_cells, STEP_CELL_KEY, STEP_CELL_COUNTERS)
DAY_CELLS_UPSERT = upsert_sql(step_day_cells, STEP_DAY_CELL_KEY, STEP_CELL_COUNTERS)
CASE_DAYS_UPSERT = upsert_sql(step_case_days, STEP_CASE_DAY_KEY, ("cases",))
MONTH_CELLS_UPSERT = upsert_sql(step_month_cells, STEP_MONTH_CELL_KEY, STEP_CELL_COUNTERS)
MONTH_CASE_DAYS_UPSERT = upsert_sql(step_month_case_days, STEP_MONTH_CASE_DAY_KEY, ("cases",))


async def apply(conn: AsyncConnection, delta: Contributions) -> None:
    """Add ``delta`` to the cells and case days, and to their sums by month and cuboid
    (services/reporting/kpis/step_cuboids.py): one upsert per table, only the non-zero rows."""
    delta = delta.nonzero()
    if delta.cells:
        await _upsert_cells(conn, CELLS_UPSERT, STEP_CELL_KEY, delta.cells)
        # the same differences summed over places, categories and channels
        days: dict[tuple, Counter] = {}
        for k, counters in delta.cells.items():
            days.setdefault((k.tenant, k.day, k.department, k.rung), Counter()).update(counters)
        days = {k: c for k, c in days.items() if any(c.values())}
        if days:
            await _upsert_cells(conn, DAY_CELLS_UPSERT, STEP_DAY_CELL_KEY, days)
        months = month_cells(delta.cells)
        if months:
            await _upsert_cells(conn, MONTH_CELLS_UPSERT, STEP_MONTH_CELL_KEY, months)
    if delta.case_days:
        keys = sorted(delta.case_days, key=lock_order)
        args = [[getattr(k, c) for k in keys] for c in STEP_CASE_DAY_KEY] + [[delta.case_days[k] for k in keys]]
        await conn.exec_driver_sql(CASE_DAYS_UPSERT, tuple(args))
        months = month_case_days(delta.case_days)
        if months:
            await _upsert_counts(conn, MONTH_CASE_DAYS_UPSERT, STEP_MONTH_CASE_DAY_KEY, months)


#: Serializes the batches that touch a case (transaction-scoped advisory locks on the touched case
#: ids, taken in one order, so two batches cannot wait on each other): a batch reads a case's
#: "before" only once any other batch folding the same case has committed, as the difference it
#: applies needs. (Events of one case reach reporting on two topics, so two consumers of one group
#: can fold the same case at the same time.)
#:
#: Each lock takes a slot in PostgreSQL's shared lock table (max_locks_per_transaction × connections,
#: 6,400 by default) until the transaction ends, so a batch that touches many cases, or a rebuild
#: that folds the whole log in one transaction, would run out of shared memory. Two levels keep the
#: count bounded: every batch first takes the fold lock, shared when it then locks at most
#: :data:`MAX_CASE_LOCKS` case ids, exclusive (and no case ids) when it touches more or when the
#: caller folds the whole log (``exclusive``). An exclusive batch waits for every other batch and
#: excludes them, which is what the case locks would have given it; shared ones still run side by
#: side on different cases. The fold lock is taken first, always, so there is one order.
FOLD_LOCK = ("reporting", "fold")
MAX_CASE_LOCKS = 1000
FOLD_LOCK_SHARED_SQL = "SELECT pg_advisory_xact_lock_shared(hashtext(:a), hashtext(:b))"
FOLD_LOCK_EXCLUSIVE_SQL = "SELECT pg_advisory_xact_lock(hashtext(:a), hashtext(:b))"
LOCK_SQL = ("SELECT pg_advisory_xact_lock(keys.k) FROM (SELECT DISTINCT hashtextextended(id::text, 14) AS k "
            "FROM unnest(:ids::uuid[]) AS id ORDER BY k) AS keys")


async def lock_cases(conn: AsyncConnection, ids: list[uuid.UUID], exclusive: bool = False) -> None:
    """Take this batch's fold locks (above) for the touched case ids, until the transaction ends."""
    fold_lock = {"a": FOLD_LOCK[0], "b": FOLD_LOCK[1]}
    if exclusive or len(ids) > MAX_CASE_LOCKS:
        await conn.exec_driver_sql(*bind(FOLD_LOCK_EXCLUSIVE_SQL, fold_lock))
        return
    await conn.exec_driver_sql(*bind(FOLD_LOCK_SHARED_SQL, fold_lock))
    await conn.exec_driver_sql(*bind(LOCK_SQL, {"ids": ids}))


def lock_order(key) -> str:
    """A row key's place in the one order every fold upserts (and so locks) rows in: two batches
    folding different cases at once share rows (a day's department, a month's community or grid),
    and rows locked in two orders deadlock (tests/integration/test_step_cells_lock_order.py). The
    key's ``repr``: distinct keys of one table have distinct reprs (None apart from ''), and it is
    built in C, half the cost of a tuple of per-field sort keys (the fold sorts thousands of rows a
    batch)."""
    return repr(key)


async def _upsert_cells(conn: AsyncConnection, sql: str, key: tuple[str, ...], cells: Mapping[tuple, Counter]) -> None:
    """Upsert ``cells`` (keys in ``key`` order) with their counters, in :func:`lock_order`."""
    rows = sorted(cells, key=lock_order)
    args = [[k[i] for k in rows] for i in range(len(key))] + [[cells[k][c] for k in rows] for c in STEP_CELL_COUNTERS]
    await conn.exec_driver_sql(sql, tuple(args))


async def _upsert_counts(conn: AsyncConnection, sql: str, key: tuple[str, ...], counts: Mapping[tuple, int]) -> None:
    """Upsert plain tuples in ``key`` order with one count each, in :func:`lock_order`."""
    rows = sorted(counts, key=lock_order)
    args = [[k[i] for k in rows] for i in range(len(key))] + [[counts[k] for k in rows]]
    await conn.exec_driver_sql(sql, tuple(args))


class StepFold:
    """One batch's reads of the touched cases and its fold of the step cells. :meth:`start` locks
    the touched cases and reads them before the facts and steps are written (:data:`READ`, the
    fact rows ``FOR UPDATE``), :meth:`read_after` reads them again after, :meth:`finish` applies
    the difference to the step cells. The KPI rollups take their fact rows from the same two reads
    (:meth:`facts`; services/reporting/handlers.py ``apply_events``)."""

    def __init__(self, ids: list[uuid.UUID], before: dict, zones: dict[str, tzinfo]) -> None:
        self.ids, self.before, self.zones = ids, before, zones
        self.after: dict | None = None

    @classmethod
    async def start(cls, conn: AsyncConnection, events: Iterable, exclusive: bool = False) -> StepFold:
        touched = {ev.case_id: ev.tenant for ev in events if isinstance(ev, CASE_EVENTS)}
        ids = sorted(touched, key=str)
        if not ids:
            return cls(ids, {}, {})
        await lock_cases(conn, ids, exclusive)
        zones = await zones_of(conn, touched.values())
        return cls(ids, await read_cases(conn, ids, lock=True), zones)

    async def read_after(self, conn: AsyncConnection) -> None:
        """Read the touched cases as the fold left them (once; :meth:`finish` reads them if not yet)."""
        self.after = await read_cases(conn, self.ids)

    @staticmethod
    def facts(cases: Mapping[uuid.UUID, tuple[dict, list[dict]]]) -> dict[uuid.UUID, dict]:
        """The fact rows of ``cases`` (:attr:`before` or :attr:`after`)."""
        return {case_id: fact for case_id, (fact, _) in cases.items()}

    async def finish(self, conn: AsyncConnection) -> None:
        if not self.ids:
            return
        if self.after is None:
            await self.read_after(conn)
        delta = contributions(self.before, self.zones, sign=-1)
        contributions(self.after, self.zones, into=delta)
        await apply(conn, delta)


#: Every table of the step cells, in the order :func:`recompute` empties them.
STEP_TABLES = ("step_cells", "step_day_cells", "step_case_days", "step_month_cells", "step_month_case_days",
               "step_cell_zones")


async def recompute(conn: AsyncConnection, tenant: str, page: int = 5000) -> int:
    """Recompute ``tenant``'s step cells from its facts and steps as they stand (the fold's own
    reading and contributions, a page of cases at a time): empty them, record the zone, add every
    case's contributions. For data written without the fold (bench/kpi_data.py's synthetic cases);
    returns the number of cases read."""
    for table in STEP_TABLES:
        await conn.exec_driver_sql(*bind(f"DELETE FROM reporting.{table} WHERE tenant = :t", {"t": tenant}))
    zones = await zones_of(conn, [tenant])
    last, done = None, 0
    while True:
        text, args = bind("SELECT case_id FROM reporting.case_facts WHERE tenant = :t AND (:last::uuid IS NULL "
                          "OR case_id > :last::uuid) ORDER BY case_id LIMIT :n", {"t": tenant, "last": last, "n": page})
        ids = [r[0] for r in (await conn.exec_driver_sql(text, args)).all()]
        if not ids:
            return done
        await apply(conn, contributions(await read_cases(conn, ids), zones))
        last, done = ids[-1], done + len(ids)
