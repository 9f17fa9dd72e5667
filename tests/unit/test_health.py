"""What counts as "the database is away" (503 with Retry-After, not 500) and the /health answer
with its dependencies (shared/platform/health.py, shared/platform/http.py)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.platform import health
from shared.platform.health import database_unavailable
from shared.platform.http import install_error_handlers


def _connect_refused_in_asyncpg() -> ConnectionRefusedError:
    """A refused connection raised from inside asyncpg's connect (a socket nobody listens on)."""

    async def attempt() -> None:
        await asyncpg.connect(host="127.0.0.1", port=_closed_port(), user="x", database="x", timeout=5)

    try:
        asyncio.run(attempt())
    except (ConnectionRefusedError, OSError) as exc:
        return exc
    raise AssertionError("a connection to a closed port was accepted")


def _closed_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_lost_connections_count_as_unavailable():
    invalidated = sa.exc.DBAPIError("SELECT 1", None, BrokenPipeError(), connection_invalidated=True)
    assert database_unavailable(invalidated)
    assert database_unavailable(asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))
    assert database_unavailable(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert database_unavailable(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert database_unavailable(_connect_refused_in_asyncpg())
    wrapped = RuntimeError("while loading the case")
    wrapped.__cause__ = asyncpg.exceptions.CannotConnectNowError("recovery")
    assert database_unavailable(wrapped)


def test_other_errors_do_not():
    assert not database_unavailable(ValueError("bad input"))
    assert not database_unavailable(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert not database_unavailable(sa.exc.DBAPIError("SELECT 1", None, ValueError(), connection_invalidated=False))
    # A refused connection that did not come from the database driver (e.g. an HTTP call).
    assert not database_unavailable(ConnectionRefusedError(111, "refused"))
    assert not database_unavailable(FileNotFoundError(2, "no such file", "deploy/tenants/x.yaml"))


def _app_raising(exc: BaseException) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_database_away_answers_503_with_retry_after():
    resp = _app_raising(asyncpg.exceptions.CannotConnectNowError("the database system is in recovery mode")).get("/boom")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == str(health.RETRY_AFTER_SECONDS)
    assert resp.json()["error"] == "database_unavailable"


def test_other_errors_still_answer_500():
    resp = _app_raising(asyncpg.exceptions.UniqueViolationError("duplicate key")).get("/boom")
    assert resp.status_code == 500
    assert "Retry-After" not in resp.headers
    assert resp.json()["error"] == "internal_error"


class _Engine:
    """Stands in for an AsyncEngine whose connect() fails as a stopped server's does."""

    def connect(self):
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize("database_up", [True, False])
def test_health_reports_each_dependency(monkeypatch, database_up):
    async def database(engine):
        return None if database_up else "ConnectionRefusedError"

    async def broker_down(self):
        return "KafkaConnectionError"

    monkeypatch.setattr(health, "check_database", database)
    monkeypatch.setattr(health.BrokerProbe, "check", broker_down)
    app = FastAPI()
    app.include_router(health.health_router(_Engine(), "127.0.0.1:1", "intake"))
    resp = TestClient(app).get("/health")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == str(health.RETRY_AFTER_SECONDS)
    deps = resp.json()["dependencies"]
    assert deps["broker"] == {"status": "down", "error": "KafkaConnectionError"}
    assert deps["database"] == ({"status": "up"} if database_up else {"status": "down", "error": "ConnectionRefusedError"})


def test_health_ok_when_both_answer(monkeypatch):
    async def up(*args):
        return None

    monkeypatch.setattr(health, "check_database", up)
    monkeypatch.setattr(health.BrokerProbe, "check", up)
    app = FastAPI()
    app.include_router(health.health_router(_Engine(), "127.0.0.1:1", "reporting"))
    resp = TestClient(app).get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": "reporting",
                           "dependencies": {"database": {"status": "up"}, "broker": {"status": "up"}}}


def test_real_probes_report_down_for_nothing_listening():
    async def probe() -> tuple:
        broker = health.BrokerProbe(f"127.0.0.1:{_closed_port()}", "test-health")
        return await broker.check(), await health.check_database(_Engine())

    broker_error, database_error = asyncio.run(probe())
    assert broker_error is not None
    assert database_error == "ConnectionRefusedError"
