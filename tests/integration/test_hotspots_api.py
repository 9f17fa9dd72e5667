"""``GET /v1/hotspots`` on the running stack (issue 15 "Done when": a burst of similar reports in
one community shows as the top hot issue; docs/classifier.md §5).

Reports of tenant demo-grid dated in a week of March 2025 that no other test uses: five residents
report the same pile of rubbish in Xingfu Community (grids 1 and 2, deploy/tenants/demo-grid.yaml),
two unrelated reports elsewhere. Heat by hand (shared/domain/hotspots.py): n = r = 5 → weight 5;
period 2025-03-10 .. 2025-03-17, later half from 03-13 12:00; all five on 03-15 → growth 1; span
4 hours = 1/6 day → heat = 5 · 2 / (1 + log10(1 + 1/6)) = 9.37 (to two decimals)."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from tests import api
from tests.integration.helpers import CST

pytestmark = pytest.mark.integration

TENANT = "demo-grid"
COMMUNITY = "990102001001"
START = datetime(2025, 3, 10, tzinfo=CST)
END = datetime(2025, 3, 17, tzinfo=CST)


async def test_a_burst_in_one_community_is_the_top_hot_issue(stack):
    tag = uuid.uuid4().hex[:6]
    at = datetime(2025, 3, 15, 8, 0, tzinfo=CST)
    reports = [
        {"tenant": TENANT, "category_code": "100102", "place_code": COMMUNITY + ("001" if i % 2 else "002"),
         "channel": "phone", "reported_at": (at + timedelta(hours=i)).isoformat(),
         "description": f"幸福路菜市场门口垃圾堆积如山，臭气熏天，已经一个星期没人清运了{'！' * i}",
         "reporter": {"phone": f"1390000{i:04d}"}, "source": "hot", "source_id": f"hot-{tag}-{i}"}
        for i in range(5)
    ] + [
        {"tenant": TENANT, "category_code": "100401", "place_code": "990102001002001", "channel": "phone",
         "reported_at": datetime(2025, 3, 11, 9, tzinfo=CST).isoformat(), "description": "井盖松动",
         "source": "hot", "source_id": f"hot-{tag}-9"},
    ]
    async with httpx.AsyncClient(timeout=15, headers=api.bearer()) as http:
        for body in reports:
            r = await http.post(f"{stack.url('intake')}/v1/reports", json=body)
            assert r.status_code == 202, r.text
        params = {"tenant": TENANT, "start": START.isoformat(), "end": END.isoformat(), "limit": 5}
        answer = None
        for _ in range(60):
            answer = (await http.get(f"{stack.url('reporting')}/v1/hotspots", params=params)).json()
            if answer["hotspots"] and answer["hotspots"][0]["count"] >= 5:
                break
            await asyncio.sleep(0.5)
    top = answer["hotspots"][0]
    assert (top["place_code"], top["count"], top["reporters"], top["category_code"]) == (COMMUNITY, 5, 5, "100102")
    assert top["heat"] == round(10 / (1 + math.log10(1 + 4 / 24)), 2)
    assert "垃圾堆积如山" in top["sample"]
    assert "幸福社区" in top["place_label"] and "垃圾扰民" in top["category_label"]  # deploy/tenants, taxonomy
    assert all(h["count"] >= 2 for h in answer["hotspots"])  # the single 井盖 report is no hot issue
