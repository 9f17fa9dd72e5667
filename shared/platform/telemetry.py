"""Logging and Prometheus helpers shared by the services.

Each service has its own ``CollectorRegistry`` (one process per service; docs/architecture.md §4) and
exposes it at ``/metrics``. Metric names carry the service prefix and a base unit; labels are
bounded (tenant, department, event type) and never hold case ids or grid codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
import time

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

_SECRET_QUERY = re.compile(r"(?i)\b(api_key|access_token|token|key)=[^&\s\"]*")


def redact_query(text: str) -> str:
    """``text`` with the values of credential query parameters (``api_key``, ``access_token``,
    ``token``, ``key``) replaced by ``[redacted]``.

    >>> redact_query("/open311/v2/requests.json?api_key=gck_k1_abc&jurisdiction_id=x")
    '/open311/v2/requests.json?api_key=[redacted]&jurisdiction_id=x'
    """
    return _SECRET_QUERY.sub(r"\1=[redacted]", text)


class RedactAccessLog(logging.Filter):
    """Removes credentials from uvicorn's access log lines (Open311 clients send ``api_key`` in the
    query string, which uvicorn logs verbatim)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``service``, ``logger``,
    ``message`` and, for an exception, ``exception`` (the formatted traceback)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        body = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "service": self.service, "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_logging(level: str = "INFO", service: str = "gridcase", fmt: str = "text") -> None:
    """Log to stderr, one line per record, UTF-8, never with colour codes: ``fmt="text"`` as
    ``time level service logger: message``, ``fmt="json"`` as :class:`JsonLines`. uvicorn's loggers
    go through the same handler (``serve`` passes ``log_config=None``); its access log without
    credentials (:class:`RedactAccessLog`). Python warnings (``warnings.warn``) are logged too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(service) if fmt == "json"
                         else logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's and FastStream's loggers bring their own (colour) handlers: they use ours instead
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access",
                 "faststream.access.kafka"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())


def describe_tasks(tasks: set[asyncio.Task] | None = None) -> str:
    """Every asyncio task (default: the running loop's) with its chain of awaiting coroutines, one
    ``file:line function`` per level, innermost last. ``Task.print_stack`` shows only a suspended
    task's outermost frame; this follows ``cr_await`` down to where the task actually waits. Names
    and line numbers only, never local values (no personal data reaches the log)."""
    out = []
    for task in sorted(tasks if tasks is not None else asyncio.all_tasks(), key=lambda t: t.get_name()):
        out.append(f"task {task.get_name()}{' (done)' if task.done() else ''}")
        coro, depth = task.get_coro(), 0
        while coro is not None and depth < 100:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None:
                out.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            else:  # a future or an object awaited without a frame
                out.append(f"  awaiting {type(coro).__name__}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
            depth += 1
    return "\n".join(out)


def install_task_dump(logger: logging.Logger, signum: int = signal.SIGUSR1) -> None:
    """On signal ``signum`` (default SIGUSR1: ``kill -USR1 <pid>``), log :func:`describe_tasks` at
    WARNING: where a stalled consumer, relay or request is waiting, without stopping the service.
    Call from inside the running event loop (a lifespan). Where the loop cannot take signal
    handlers (not the main thread, e.g. an app run by a test client; not Unix), nothing is installed."""
    try:
        asyncio.get_running_loop().add_signal_handler(
            signum, lambda: logger.warning("asyncio tasks (signal %d):\n%s", signum, describe_tasks()))
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        logger.debug("no task dump on signal %d: %s", signum, exc)


def new_registry() -> CollectorRegistry:
    """A fresh registry with the process and platform collectors (CPU, memory, open fds)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class HttpMetrics:
    """Pure ASGI middleware (no ``BaseHTTPMiddleware``: no extra task and body copy per request)
    counting each HTTP request by method, matched route template and status, and timing it."""

    def __init__(self, app, requests: Counter, duration: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.duration = duration

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # the router writes the matched route into this same scope
            template = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], template, str(status)).inc()
            self.duration.labels(scope["method"], template).observe(time.perf_counter() - start)


def instrument_http(app: FastAPI, registry: CollectorRegistry, service: str) -> None:
    """Add RED metrics for HTTP (``<service>_http_requests_total{method,route,status}`` and
    ``<service>_http_request_duration_seconds{method,route}``) and a ``GET /metrics`` route.

    ``route`` is the matched route template (``/v1/cases/{case_id}``), never the raw path, so the
    label stays bounded.
    """
    requests = Counter(
        f"{service}_http_requests_total", "HTTP requests handled", ["method", "route", "status"], registry=registry
    )
    duration = Histogram(
        f"{service}_http_request_duration_seconds", "HTTP request duration", ["method", "route"], registry=registry
    )

    app.add_middleware(HttpMetrics, requests=requests, duration=duration)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
