"""One machine-readable error body for every service's HTTP API.

Every 4xx/5xx answer is JSON: ``{"error": <code>, "message": <text>, "field"?: <dotted name>,
"errors"?: [{"field", "problem", "type"}]}``. Validation errors never echo the input back (it may
be megabytes, hold personal data, or not even be encodable as JSON: lone surrogates, NaN).

A body that is not JSON at all answers 400 ``invalid_json`` with where the parser stopped:
``line`` and ``column`` (1-based, as an editor shows them), ``position`` (0-based character offset)
and ``reason`` (the parser's words, e.g. ``Expecting ',' delimiter``): :func:`invalid_json`.
"""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.platform.health import RETRY_AFTER_SECONDS, database_unavailable

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, **extra) -> JSONResponse:
    """A JSON error answer ``{"error": code, "message": message, **extra}``."""
    return JSONResponse(status_code=status, content={"error": code, "message": message, **extra})


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "header", "path")]
    return ".".join(parts)


def invalid_json(document: str | bytes | None, position: int, reason: str) -> JSONResponse:
    """400 ``invalid_json`` for a body the JSON parser stopped in at character ``position`` of
    ``document`` with ``reason``: line and column counted as :class:`json.JSONDecodeError` does
    (1-based; the column counts characters since the last line break). The body is not echoed."""
    if isinstance(document, bytes):
        document = document.decode("utf-8", errors="replace")
    document = document or ""
    position = max(0, min(int(position), len(document)))
    line = document.count("\n", 0, position) + 1
    column = position - document.rfind("\n", 0, position)
    reason = str(reason)[:200]
    return error_response(400, "invalid_json", f"the body is not valid JSON: {reason} at line {line}, column {column} "
                          f"(character {position})", line=line, column=column, position=position, reason=reason)


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers for request validation errors (422), HTTP errors, a database that cannot
    be reached (503 ``database_unavailable`` with ``Retry-After``: shared/platform/health.py
    :func:`database_unavailable`) and unexpected errors (500 with a generic body; the traceback
    goes to the log without request data)."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        broken = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if broken is not None:  # FastAPI: loc ("body", pos), ctx {"error": JSONDecodeError.msg}, exc.body the text
            loc = broken.get("loc", ())
            position = loc[-1] if loc and isinstance(loc[-1], int) else 0
            return invalid_json(exc.body, position, (broken.get("ctx") or {}).get("error", "JSON decode error"))
        errors = [
            {"field": _field(e.get("loc", ())), "problem": str(e.get("msg", ""))[:300], "type": e.get("type", "")}
            for e in exc.errors()[:50]
        ]
        first = errors[0] if errors else {"field": "", "problem": "invalid request"}
        return error_response(
            422, "validation_failed", f"{first['field'] or 'request'}: {first['problem']}", field=first["field"], errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if isinstance(detail, dict):
            body = {"error": detail.get("error", "http_error"), "message": detail.get("message", ""), **detail}
            return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)
        return JSONResponse(
            status_code=exc.status_code,
            content={"error": "http_error", "message": str(detail)},
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            return database_unavailable_response(request, exc)
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "the request could not be completed; it was not accepted")

    # Handled here, not by the catch-all above (which Starlette re-raises into the server's log
    # after answering): a lost database connection is expected while PostgreSQL restarts.
    for kind in (sa_exc.SQLAlchemyError, asyncpg.exceptions.PostgresError, asyncpg.exceptions.InterfaceError, OSError):
        app.add_exception_handler(kind, _unexpected)


def database_unavailable_response(request: Request, exc: BaseException) -> JSONResponse:
    """503 ``database_unavailable`` with ``Retry-After``: nothing was done, the client retries."""
    log.warning("database unavailable (%s) on %s %s; answered 503", type(exc).__name__, request.method,
                request.url.path)
    response = error_response(503, "database_unavailable",
                              "数据库暂时不可用，请稍后重试 the database is unavailable for a moment; the request was "
                              "not applied, retry after the time in Retry-After")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class BodyLimit:
    """ASGI middleware: refuse a request body to one of ``paths`` larger than ``limit`` bytes with
    413 ``too_large``: at once when ``Content-Length`` says so (or is not a number), else counting
    the bytes as they arrive, so a chunked body is bounded too. The body (at most ``limit`` bytes)
    is buffered and handed on unchanged."""

    def __init__(self, app, paths: tuple[str, ...], limit: int) -> None:
        self.app = app
        self.paths = paths
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        too_large = error_response(413, "too_large", f"a request body here may be at most {self.limit} bytes",
                                   limit_bytes=self.limit)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await too_large(scope, receive, send)  # refused before reading a byte
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            size += len(message.get("body", b""))
            if size > self.limit:
                await too_large(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class InFlightLimit:
    """ASGI middleware: at most ``limit`` requests in flight; one more is refused at once with 503
    ``overloaded`` and ``Retry-After`` (seconds), before its body is read. Under overload a
    service that queues every request answers all of them late (clients time out and retry:
    congestion collapse); one that sheds what it cannot start keeps answering the rest at its
    capacity. ``exempt`` paths (health, metrics) are never refused."""

    def __init__(self, app, limit: int, retry_after_s: int = 1,
                 exempt: tuple[str, ...] = ("/health", "/metrics")) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.exempt = exempt
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.limit <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            refused = error_response(503, "overloaded", "the service is at its capacity; retry after the "
                                     "time given in Retry-After", retry_after_s=self.retry_after_s)
            refused.headers["Retry-After"] = str(self.retry_after_s)
            await refused(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
