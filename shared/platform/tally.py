"""Running totals of a table per tenant, kept by PostgreSQL as rows change (issue 13).

``GET /v1/progress`` (dispatch and reporting) answers "how many cases, how many events so far".
Counting them on every call scans every case of the tenant: at 640,000 cases, under load, the
million-report soak's wait loop (two calls every half second) got no answer within 10 s
(docs/operations.md §3.1). A tally answers from a few rows instead.

How it stays exact without a hot row:

- Statement-level triggers on the source table (``AFTER INSERT``, ``AFTER UPDATE``, ``AFTER
  DELETE``, each with its transition table) append **one delta row per tenant per statement** to
  ``<schema>.<tally>``: the sum of each counted expression over the new rows, minus over the old.
  They run inside the writer's transaction, so a delta commits or rolls back with the rows it
  counts, and a batch of a thousand rows adds one delta, not a thousand.
- Deltas are only inserted, never updated, so concurrent writers (replicas, imports, timers) never
  wait for each other on the tally, and cannot deadlock on it.
- A reader sums the deltas of the tenant (:func:`read_tally`). When a tenant has more than
  :data:`COMPACT_ABOVE` of them (all tenants: more than that beyond one each), the reader folds them into one row in its own transaction
  (:func:`compact_tally`): ``DELETE … RETURNING`` and the ``INSERT`` of their sum are one statement,
  so a concurrent reader sees the deltas or their sum, never both or neither; deltas committed
  after its snapshot are not deleted and stay counted.
- ``TRUNCATE`` of the source fires no row triggers: a fourth trigger, ``AFTER TRUNCATE``,
  empties the tally with it, whoever truncates (``gridcase reporting rebuild``, the KPI bench's
  loader, an operator). It deletes the rows after locking the tally (a compaction under way
  finishes first, and its sum is deleted too), since a statement that truncates the tally as well
  (the rebuild's) still uses it and PostgreSQL refuses to truncate it again from the trigger.
- "One delta per statement" is one per **row** for an executemany: SQLAlchemy with asyncpg sends it
  as one statement per parameter set, and dispatch's case updates are executemanys (the reporting
  fold's upserts too when a batch holds a case twice in one group; a group of distinct cases is one
  statement, shared/domain/casefacts.py ``unnest_upsert``), so a batch of a thousand events can
  append about a thousand deltas. A tally nobody
  reads would grow with every event, past the size of its source table; each service therefore
  runs :func:`upkeep` every :data:`UPKEEP_SECONDS`.
- A compaction is housekeeping: when it fails (a serialization failure under a database whose
  default isolation is ``REPEATABLE READ``, a deadlock, a lost connection), the totals already read
  are answered and the deltas stay for the next one.

A migration installs the tally with :func:`tally_ddl` and counts the rows already there in the same
transaction (the trigger's creation locks out writers until it commits).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

#: A tenant's deltas above which a reader folds them into one row.
COMPACT_ABOVE = 64

#: Seconds between two rounds of a service's :func:`upkeep`.
UPKEEP_SECONDS = 10


def tally_ddl(schema: str, source: str, tally: str, counted: Mapping[str, str]) -> list[str]:
    """Statements creating ``<schema>.<tally>`` (``tenant`` and one ``bigint`` per key of
    ``counted``), the trigger function that appends deltas, its three triggers on
    ``<schema>.<source>``, and the first row per tenant from the rows already in ``source``.
    ``counted`` maps each tally column to an SQL expression over one source row (``1`` counts rows)."""
    cols = list(counted)
    fn = f'"{schema}".{tally}_delta'
    new_sums = ", ".join(f"sum({counted[c]})" for c in cols)
    target = f'"{schema}".{tally} (tenant, {", ".join(cols)})'
    return [
        f'CREATE TABLE "{schema}".{tally} (tenant text NOT NULL, '
        + ", ".join(f"{c} bigint NOT NULL" for c in cols) + ")",
        f'CREATE INDEX ix_{schema}_{tally}_tenant ON "{schema}".{tally} (tenant)',
        f'COMMENT ON TABLE "{schema}".{tally} IS ' + _quoted(_comment(source)),
        _function_ddl(schema, tally, counted),
        f'CREATE TRIGGER {tally}_insert AFTER INSERT ON "{schema}".{source} '
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f'CREATE TRIGGER {tally}_update AFTER UPDATE ON "{schema}".{source} '
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f'CREATE TRIGGER {tally}_delete AFTER DELETE ON "{schema}".{source} '
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f'INSERT INTO {target} SELECT tenant, {new_sums} FROM "{schema}".{source} AS new_rows GROUP BY tenant',
    ]


def _function_ddl(schema: str, tally: str, counted: Mapping[str, str]) -> str:
    """The trigger function: appends the delta of a statement's rows per tenant, or empties the
    tally when the source is truncated."""
    cols = list(counted)
    new_sums = ", ".join(f"sum({counted[c]})" for c in cols)
    delta_sums = ", ".join(f"sum({c})" for c in cols)
    signed = ", ".join(f"{counted[c]} AS {c}" for c in cols)
    minus = ", ".join(f"-({counted[c]}) AS {c}" for c in cols)
    nonzero = " OR ".join(f"sum({c}) <> 0" for c in cols)
    target = f'"{schema}".{tally} (tenant, {", ".join(cols)})'
    return f"""CREATE OR REPLACE FUNCTION "{schema}".{tally}_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {target} SELECT tenant, {new_sums} FROM new_rows GROUP BY tenant;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {target} SELECT tenant, {delta_sums}
            FROM (SELECT tenant, {minus} FROM old_rows) d GROUP BY tenant;
    ELSIF TG_OP = 'TRUNCATE' THEN
        -- not TRUNCATE: the statement may truncate the tally too (gridcase reporting rebuild),
        -- and a table a statement of the session still uses cannot be truncated; the lock waits
        -- for a compaction under way, so that its sum is deleted too
        LOCK TABLE "{schema}".{tally} IN EXCLUSIVE MODE;
        DELETE FROM "{schema}".{tally};
    ELSE
        INSERT INTO {target} SELECT tenant, {delta_sums}
            FROM (SELECT tenant, {signed} FROM new_rows UNION ALL SELECT tenant, {minus} FROM old_rows) d
            GROUP BY tenant HAVING {nonzero};
    END IF;
    RETURN NULL;
END $$"""


def tally_truncate_ddl(schema: str, source: str, tally: str, counted: Mapping[str, str]) -> list[str]:
    """Statements adding to a tally made by :func:`tally_ddl` the fourth trigger: ``TRUNCATE`` of
    ``source`` empties the tally too (the function is replaced by one that knows ``TRUNCATE``).
    Repeatable: a migration after the tally's own runs them."""
    return [
        _function_ddl(schema, tally, counted),
        f'DROP TRIGGER IF EXISTS {tally}_truncate ON "{schema}".{source}',
        f'CREATE TRIGGER {tally}_truncate AFTER TRUNCATE ON "{schema}".{source} '
        f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".{tally}_delta()',
    ]


def drop_tally_ddl(schema: str, source: str, tally: str) -> list[str]:
    """Statements undoing :func:`tally_ddl` and :func:`tally_truncate_ddl` (a migration's downgrade)."""
    return [
        *(f'DROP TRIGGER IF EXISTS {tally}_{op} ON "{schema}".{source}'
          for op in ("insert", "update", "delete", "truncate")),
        f'DROP FUNCTION IF EXISTS "{schema}".{tally}_delta()',
        f'DROP TABLE IF EXISTS "{schema}".{tally}',
    ]


def _comment(source: str) -> str:
    """The tally's table comment, the same in the migration and in the metadata (Alembic's
    autogenerate compares them and would otherwise propose to change it in every new migration)."""
    return f"deltas of {source} per tenant, appended by triggers (shared/platform/tally.py); a total is the sum of a tenant's rows"


def _quoted(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def tally_table(metadata: sa.MetaData, name: str, columns: list[str], source: str) -> sa.Table:
    """The tally ``name`` of the table ``source`` as a table of ``metadata`` (created by
    :func:`tally_ddl` in a migration)."""
    return sa.Table(name, metadata, sa.Column("tenant", sa.Text, nullable=False),
                    *(sa.Column(c, sa.BigInteger, nullable=False) for c in columns),
                    sa.Index(f"ix_{metadata.schema}_{name}_tenant", "tenant"),
                    comment=_comment(source))


async def read_tally(conn: AsyncConnection, table: sa.Table, tenant: str | None) -> tuple[dict[str, int], int]:
    """The totals of ``tenant`` (of every tenant for ``None``) in the tally ``table``, and how
    many delta rows they were summed from."""
    totals, rows, _ = await _read(conn, table, tenant)
    return totals, rows


async def _read(conn: AsyncConnection, table: sa.Table, tenant: str | None) -> tuple[dict[str, int], int, int]:
    """:func:`read_tally`, and how many tenants the rows are of."""
    cols = [c for c in table.c if c.name != "tenant"]
    q = sa.select(*(sa.func.coalesce(sa.func.sum(c), 0).label(c.name) for c in cols), sa.func.count().label("rows_"),
                  sa.func.count(sa.distinct(table.c.tenant)).label("tenants_"))
    if tenant is not None:
        q = q.where(table.c.tenant == tenant)
    row = (await conn.execute(q)).one()
    return {c.name: int(row._mapping[c.name]) for c in cols}, row.rows_, row.tenants_


async def compact_tally(engine: AsyncEngine, table: sa.Table, tenant: str | None) -> None:
    """Fold the delta rows of ``tenant`` (of every tenant for ``None``) into one row per tenant, in
    one statement: the rows deleted are exactly the rows summed."""
    cols = [c.name for c in table.c if c.name != "tenant"]
    where = "WHERE tenant = :tenant" if tenant is not None else ""
    name = f'"{table.schema}".{table.name}'
    statement = sa.text(
        f"WITH gone AS (DELETE FROM {name} {where} RETURNING *) "
        f"INSERT INTO {name} (tenant, {', '.join(cols)}) "
        f"SELECT tenant, {', '.join(f'sum({c})' for c in cols)} FROM gone GROUP BY tenant")
    async with engine.begin() as conn:
        await conn.execute(statement, {"tenant": tenant} if tenant is not None else {})


async def tally(engine: AsyncEngine, table: sa.Table, tenant: str | None) -> dict[str, int]:
    """The totals of ``tenant`` (every tenant for ``None``) in ``table``; compacts it when it
    holds more than :data:`COMPACT_ABOVE` deltas beyond one per tenant (a compact tally of more
    tenants than that is left as it is, not deleted and inserted again on every call). A
    compaction that fails is logged and left to the next reader: the totals were read before it."""
    async with engine.connect() as conn:
        totals, rows, tenants = await _read(conn, table, tenant)
    if rows - tenants > COMPACT_ABOVE:
        try:
            await compact_tally(engine, table, tenant)
        except sa.exc.DBAPIError as exc:
            log.warning("compacting %s.%s failed, left to the next reader: %s", table.schema, table.name,
                        str(exc.orig).splitlines()[0] if exc.orig is not None else exc)
    return totals


async def upkeep(engine: AsyncEngine, table: sa.Table) -> None:
    """Compact ``table`` for every tenant when it holds more than :data:`COMPACT_ABOVE` deltas,
    whether or not anyone reads it (module docstring: a fold appends about one delta per event).
    Each service runs it every :data:`UPKEEP_SECONDS`."""
    await tally(engine, table, None)
