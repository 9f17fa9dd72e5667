"""Wake on commit: PostgreSQL ``LISTEN`` on a dedicated connection (issue 13).

An outbox table carries a statement-level trigger (:func:`outbox_notify_ddl`, installed by each
service's migration) that runs ``pg_notify('<schema>_outbox', '')`` in the transaction that inserts
rows. PostgreSQL delivers a notification only when that transaction commits, and folds the
notifications of one transaction on one channel into one. So every replica's relay wakes as soon as
any process (another replica, a CLI import, the supervisor's re-queue) commits rows, instead of
waiting for its next poll.

:class:`CommitListener` keeps one asyncpg connection (outside the service's pool) listening on the
channel and calls ``on_notify()`` for each notification. When the connection drops (PostgreSQL
restarted or killed), it reconnects with a capped backoff and calls ``on_notify()`` once it
listens again: commits made while it was deaf are then picked up at once. While it is not
listening, :attr:`CommitListener.listening` is false and the relay polls at its fast interval, so a
lost notification costs latency, never a row (the relay's poll still finds every unsent row).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from shared.platform.db import IDLE_IN_TRANSACTION_TIMEOUT_MS, libpq_url

log = logging.getLogger(__name__)


def outbox_channel(schema: str) -> str:
    """The notification channel of ``<schema>.outbox`` (a plain identifier: ``LISTEN`` takes it unquoted)."""
    return f"{schema}_outbox"


def outbox_notify_ddl(schema: str) -> list[str]:
    """Statements creating ``<schema>.outbox_notify()`` and the trigger that calls it after every
    ``INSERT`` into ``<schema>.outbox`` (one notification per statement, delivered at commit)."""
    channel = outbox_channel(schema)
    return [
        f"""CREATE OR REPLACE FUNCTION "{schema}".outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END $$""",
        f'DROP TRIGGER IF EXISTS outbox_notify ON "{schema}".outbox',
        f'CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox '
        f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".outbox_notify()',
    ]


def drop_outbox_notify_ddl(schema: str) -> list[str]:
    """Statements undoing :func:`outbox_notify_ddl` (a migration's downgrade)."""
    return [
        f'DROP TRIGGER IF EXISTS outbox_notify ON "{schema}".outbox',
        f'DROP FUNCTION IF EXISTS "{schema}".outbox_notify()',
    ]


class CommitListener:
    """``LISTEN channel`` on a connection of its own; ``on_notify()`` per notification.

    - ``check_seconds``: how often an idle connection is checked with ``SELECT 1`` (a connection
      whose server vanished without closing the socket is found then at the latest).
    - ``max_backoff_seconds``: cap of the reconnection backoff.
    """

    def __init__(
        self,
        database_url: str,
        channel: str,
        on_notify: Callable[[], None],
        *,
        check_seconds: float = 30.0,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.dsn = libpq_url(database_url)
        self.channel = channel
        self.on_notify = on_notify
        self.check_seconds = check_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.listening = False
        self.connections = 0  # successful LISTENs so far (tests read it)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        backoff = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=10,
                    server_settings={"idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
                                     "application_name": f"gridcase-listen-{self.channel}"},
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._notified)
                self.listening = True
                self.connections += 1
                backoff = 0.2
                self.on_notify()  # rows committed while nobody listened are published now
                await self._watch(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database away: the relay polls meanwhile
                log.info("outbox listener (%s): %s: %s; reconnecting in %.1fs",
                         self.channel, type(exc).__name__, exc, backoff)
            finally:
                self.listening = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_seconds)

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the connection is lost (closed by the server, or a check fails)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=self.check_seconds)
                return
            await conn.fetchval("SELECT 1", timeout=10)

    def _notified(self, *_args) -> None:
        self.on_notify()
