"""The synthetic load that bench/pipeline.py and bench/soak.py push through the stack: reports
of tenant demo-grid (no personal data) and the concurrent clients that POST them to intake."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx

from gridcase.client import auth_headers

TENANT = "demo-grid"
GRIDS = ("990102001001001", "990102001001002", "990102001002001")
CATEGORIES = ("100401", "100102", "100110", "200101", "300102", "400101")


def synthetic_report(i: int) -> dict:
    """The i-th synthetic report (no personal data; ~400 bytes of JSON)."""
    return {
        "tenant": TENANT,
        "category_code": CATEGORIES[i % len(CATEGORIES)],
        "place_code": GRIDS[i % len(GRIDS)],
        "description": f"基准测试上报 benchmark report #{i}: 网格员巡查发现问题，需要派遣处理。",
        "channel": "grid_worker",
        "reported_at": datetime.now(UTC).isoformat(),
    }


async def post_reports(intake: str, n: int, concurrency: int, make=synthetic_report, first: int = 0
                       ) -> dict[uuid.UUID, float]:
    """POST ``n`` reports ``make(first + i)``; return ``{case_id: POST start time (epoch seconds)}``."""
    started: dict[uuid.UUID, float] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(first + i)

    async with httpx.AsyncClient(base_url=intake, timeout=60, headers=auth_headers()) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.time()
                resp = await client.post("/v1/reports", json=make(i))
                resp.raise_for_status()
                started[uuid.UUID(resp.json()["case_id"])] = t0

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return started
