"""The pure ASGI middlewares of shared/platform: HTTP metrics by route template and the in-flight
limit that sheds overload with 503 + Retry-After (issue 13), on a real FastAPI app."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from shared.platform.http import InFlightLimit, install_error_handlers
from shared.platform.telemetry import instrument_http


def sample(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_metrics_count_by_route_template_and_status():
    registry = CollectorRegistry()
    app = FastAPI()
    install_error_handlers(app)
    instrument_http(app, registry, "svc")

    @app.get("/v1/cases/{case_id}")
    async def case(case_id: str) -> dict:
        return {"case_id": case_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for case_id in ("a", "b", "c"):
            assert (await client.get(f"/v1/cases/{case_id}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
    # three requests, one template; the raw paths never become labels
    assert sample(registry, "svc_http_requests_total", method="GET", route="/v1/cases/{case_id}", status="200") == 3
    assert sample(registry, "svc_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert sample(registry, "svc_http_request_duration_seconds_count", method="GET", route="/v1/cases/{case_id}") == 3
    assert sample(registry, "svc_http_requests_total", method="GET", route="/v1/cases/a", status="200") == 0


async def test_a_request_beyond_the_limit_is_refused_at_once_and_the_rest_go_on():
    release = asyncio.Event()
    app = FastAPI()
    app.add_middleware(InFlightLimit, limit=2, retry_after_s=3)

    @app.post("/v1/reports")
    async def slow() -> dict:
        await release.wait()
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        held = [asyncio.create_task(client.post("/v1/reports", json={})) for _ in range(2)]
        limiter = None
        while limiter is None or limiter.in_flight < 2:  # the stack is built by the first request
            await asyncio.sleep(0.01)
            limiter = _find(app.middleware_stack)
        refused = await asyncio.wait_for(client.post("/v1/reports", json={}), timeout=5)  # not queued
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "3"
        assert refused.json()["error"] == "overloaded" and refused.json()["retry_after_s"] == 3
        assert (await client.get("/health")).status_code == 200  # probes are never shed
        release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert limiter.in_flight == 0
        assert (await client.post("/v1/reports", json={})).status_code == 200


def _find(stack) -> InFlightLimit | None:
    """The InFlightLimit instance in a built middleware stack (each layer keeps the next as ``app``)."""
    while stack is not None and not isinstance(stack, InFlightLimit):
        stack = getattr(stack, "app", None)
    return stack
