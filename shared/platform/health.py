"""A service's dependencies, as ``GET /health`` reports them, and what "the database is away" means.

``GET /health`` (no credential) checks both dependencies every service has:

- ``database``: ``SELECT 1`` through the service's pool (3 s at most);
- ``broker``: a metadata request to the bootstrap servers (3 s at most; the answer is reused for
  :data:`BROKER_PROBE_TTL` seconds, so frequent probes cost one connection per interval).

200 ``{"status": "ok", "service": …, "dependencies": {"database": {"status": "up"}, "broker": {…}}}``
when both answer; 503 ``{"status": "unavailable", …}`` with ``Retry-After`` when one does not, the
missing one ``{"status": "down", "error": "<exception type>"}``. intake still takes reports while
only the broker is down (its outbox keeps them), but the pipeline behind it does not move, and the
503 says so (a load balancer or ``gridcase up`` sees it).

:func:`database_unavailable` tells a lost or refused database connection (503 with ``Retry-After``
instead of 500: shared/platform/http.py) from any other error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback

import asyncpg
import sqlalchemy as sa
from aiokafka.client import AIOKafkaClient
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

#: Seconds a broker probe's answer is reused.
BROKER_PROBE_TTL = 2.0
#: What ``Retry-After`` says while a dependency is down (seconds).
RETRY_AFTER_SECONDS = 5
#: Seconds each dependency check may take.
CHECK_TIMEOUT = 3.0

#: asyncpg errors that mean "no usable connection now": connection failures (class 08), the
#: server shutting down or starting up (57P01-57P03), too many connections (53300).
_ASYNCPG_UNAVAILABLE = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or an error it wraps) says the database cannot be reached now:

    - a SQLAlchemy error whose connection was invalidated (the server went away mid-statement);
    - one of the asyncpg errors above, or asyncpg's ``connection is closed``;
    - ``ConnectionError``, ``FileNotFoundError`` (the server's socket is gone) or ``TimeoutError``
      raised inside asyncpg or SQLAlchemy (a connection attempt: the pool passes these unwrapped).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _ASYNCPG_UNAVAILABLE):
            return True
        if isinstance(current, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(current):
            return True
        if isinstance(current, ConnectionError | FileNotFoundError | TimeoutError) and _raised_in_driver(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def _raised_in_driver(exc: BaseException) -> bool:
    return any(("/asyncpg/" in frame.f_code.co_filename or "/sqlalchemy/" in frame.f_code.co_filename)
               for frame, _ in traceback.walk_tb(exc.__traceback__))


class BrokerProbe:
    """Asks the bootstrap servers for metadata; remembers the answer :data:`BROKER_PROBE_TTL` s."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._lock = asyncio.Lock()
        self._checked = float("-inf")
        self._error: str | None = None

    async def check(self) -> str | None:
        """None when the broker answered, else the error's type name."""
        async with self._lock:
            if time.monotonic() - self._checked >= BROKER_PROBE_TTL:
                self._error = await self._probe()
                self._checked = time.monotonic()
            return self._error

    async def _probe(self) -> str | None:
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                request_timeout_ms=int(CHECK_TIMEOUT * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), CHECK_TIMEOUT)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means "down"; its type is the report
            return type(exc).__name__
        finally:
            with contextlib.suppress(Exception):  # closing a client that never connected
                await client.close()


async def check_database(engine: AsyncEngine) -> str | None:
    """None when ``SELECT 1`` answered within :data:`CHECK_TIMEOUT` s, else the error's type name."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; its type is the report
        return type(exc).__name__


HEALTH_RESPONSES = {
    200: {"description": "服务及其依赖可用 the service, its database and the broker answer"},
    503: {"description": "依赖不可用 the database or the broker does not answer (see `dependencies`; "
                         "`Retry-After` in seconds)"},
}


def health_router(engine: AsyncEngine, bootstrap: str, service: str) -> APIRouter:
    """``GET /health`` of ``service`` (see the module docstring)."""
    router = APIRouter()
    broker = BrokerProbe(bootstrap, f"gridcase-{service}-health")

    @router.get("/health", responses=HEALTH_RESPONSES)
    async def health() -> JSONResponse:
        errors = dict(zip(("database", "broker"),
                          await asyncio.gather(check_database(engine), broker.check()), strict=True))
        deps = {name: {"status": "up"} if error is None else {"status": "down", "error": error}
                for name, error in errors.items()}
        if all(error is None for error in errors.values()):
            return JSONResponse({"status": "ok", "service": service, "dependencies": deps})
        return JSONResponse({"status": "unavailable", "service": service, "dependencies": deps},
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    return router
