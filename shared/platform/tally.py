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
  :data:`COMPACT_ABOVE` of them, the reader folds them into one row in its own transaction
  (:func:`compact_tally`): ``DELETE … RETURNING`` and the ``INSERT`` of their sum are one statement,
  so a concurrent reader sees the deltas or their sum, never both or neither; deltas committed
  after its snapshot are not deleted and stay counted.
- ``TRUNCATE`` fires no row triggers: whoever truncates the source (``gridcase reporting
  rebuild``) truncates the tally with it.

A migration installs the tally with :func:`tally_ddl` and counts the rows already there in the same
transaction (the trigger's creation locks out writers until it commits).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: A tenant's deltas above which a reader folds them into one row.
COMPACT_ABOVE = 64


def tally_ddl(schema: str, source: str, tally: str, counted: Mapping[str, str]) -> list[str]:
    """Statements creating ``<schema>.<tally>`` (``tenant`` and one ``bigint`` per key of
    ``counted``), the trigger function that appends deltas, its three triggers on
    ``<schema>.<source>``, and the first row per tenant from the rows already in ``source``.
    ``counted`` maps each tally column to an SQL expression over one source row (``1`` counts rows)."""
    cols = list(counted)
    fn = f'"{schema}".{tally}_delta'
    new_sums = ", ".join(f"sum({counted[c]})" for c in cols)
    delta_sums = ", ".join(f"sum({c})" for c in cols)
    signed = ", ".join(f"{counted[c]} AS {c}" for c in cols)
    minus = ", ".join(f"-({counted[c]}) AS {c}" for c in cols)
    nonzero = " OR ".join(f"sum({c}) <> 0" for c in cols)
    target = f'"{schema}".{tally} (tenant, {", ".join(cols)})'
    return [
        f'CREATE TABLE "{schema}".{tally} (tenant text NOT NULL, '
        + ", ".join(f"{c} bigint NOT NULL" for c in cols) + ")",
        f'CREATE INDEX ix_{schema}_{tally}_tenant ON "{schema}".{tally} (tenant)',
        f"COMMENT ON TABLE \"{schema}\".{tally} IS 'deltas of {source} per tenant, appended by triggers "
        f"(shared/platform/tally.py); a total is the sum of a tenant''s rows'",
        f"""CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {target} SELECT tenant, {new_sums} FROM new_rows GROUP BY tenant;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {target} SELECT tenant, {delta_sums}
            FROM (SELECT tenant, {minus} FROM old_rows) d GROUP BY tenant;
    ELSE
        INSERT INTO {target} SELECT tenant, {delta_sums}
            FROM (SELECT tenant, {signed} FROM new_rows UNION ALL SELECT tenant, {minus} FROM old_rows) d
            GROUP BY tenant HAVING {nonzero};
    END IF;
    RETURN NULL;
END $$""",
        f'CREATE TRIGGER {tally}_insert AFTER INSERT ON "{schema}".{source} '
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f'CREATE TRIGGER {tally}_update AFTER UPDATE ON "{schema}".{source} '
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f'CREATE TRIGGER {tally}_delete AFTER DELETE ON "{schema}".{source} '
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f'INSERT INTO {target} SELECT tenant, {new_sums} FROM "{schema}".{source} AS new_rows GROUP BY tenant',
    ]


def drop_tally_ddl(schema: str, source: str, tally: str) -> list[str]:
    """Statements undoing :func:`tally_ddl` (a migration's downgrade)."""
    return [
        *(f'DROP TRIGGER IF EXISTS {tally}_{op} ON "{schema}".{source}' for op in ("insert", "update", "delete")),
        f'DROP FUNCTION IF EXISTS "{schema}".{tally}_delta()',
        f'DROP TABLE IF EXISTS "{schema}".{tally}',
    ]


def tally_table(metadata: sa.MetaData, name: str, columns: list[str]) -> sa.Table:
    """The tally ``name`` as a table of ``metadata`` (created by :func:`tally_ddl` in a migration)."""
    return sa.Table(name, metadata, sa.Column("tenant", sa.Text, nullable=False),
                    *(sa.Column(c, sa.BigInteger, nullable=False) for c in columns),
                    sa.Index(f"ix_{metadata.schema}_{name}_tenant", "tenant"),
                    comment="deltas per tenant appended by triggers (shared/platform/tally.py)")


async def read_tally(conn: AsyncConnection, table: sa.Table, tenant: str | None) -> tuple[dict[str, int], int]:
    """The totals of ``tenant`` (of every tenant for ``None``) in the tally ``table``, and how
    many delta rows they were summed from."""
    cols = [c for c in table.c if c.name != "tenant"]
    q = sa.select(*(sa.func.coalesce(sa.func.sum(c), 0).label(c.name) for c in cols), sa.func.count().label("rows_"))
    if tenant is not None:
        q = q.where(table.c.tenant == tenant)
    row = (await conn.execute(q)).one()
    return {c.name: int(row._mapping[c.name]) for c in cols}, row.rows_


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
    holds more than :data:`COMPACT_ABOVE` deltas for them."""
    async with engine.connect() as conn:
        totals, rows = await read_tally(conn, table, tenant)
    if rows > COMPACT_ABOVE:
        await compact_tally(engine, table, tenant)
    return totals
