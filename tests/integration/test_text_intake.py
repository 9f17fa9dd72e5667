"""Free text at intake (issue 15; docs/classifier.md §3–§4), on the running stack: tenant
demo-grid has the three-topic model of tests/textcorpus.py (tests/conftest.py ``stack``).

Expected values from the sources: the taxonomy routes 100401 下水道堵塞 to ``housing``
(shared/data/taxonomy.yaml); a report below the threshold (0.5, shared/domain/textclass.py) gets
``未分类``, which no rule names, so dispatch sends it to triage; 100403 is not a taxonomy code and
``100401`` differs from it in one digit of six (difflib ratio 5/6 ≥ 0.4)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from tests import api
from tests.integration.helpers import CST
from tests.integration.test_services import dispatched_event

pytestmark = pytest.mark.integration

TENANT = "demo-grid"
#: Heping Community Grid 2 (deploy/tenants/demo-grid.yaml): only this file's reports of these texts.
GRID = "990102001002002"


def body(**overrides) -> dict:
    out = {"tenant": TENANT, "place_code": GRID, "channel": "grid_worker",
           "reported_at": datetime.now(CST).isoformat()}
    out.update(overrides)
    return out


@pytest.fixture
async def http(stack):
    async with httpx.AsyncClient(timeout=15, headers=api.bearer()) as client:
        yield client


async def post(http, stack, payload: dict) -> httpx.Response:
    return await http.post(f"{stack.url('intake')}/v1/reports", json=payload)


async def reported_then_recategorized(infra, stack, http, payload: dict, category_code: str) -> tuple[str, dict]:
    """POST ``payload``, wait until dispatch has dispatched it, recategorize it to ``category_code``;
    return the case id and the case view after."""
    resp = await post(http, stack, payload)
    assert resp.status_code == 202, resp.text
    case_id = resp.json()["case_id"]
    await dispatched_event(infra, uuid.UUID(case_id))
    act = await http.post(f"{stack.url('intake')}/v1/cases/{case_id}/actions", headers={"Prefer": "wait=20"},
                          json={"action": "recategorize", "category_code": category_code, "note": "改类"})
    assert act.status_code == 200, act.text
    return case_id, (await http.get(f"{stack.url('intake')}/v1/cases/{case_id}")).json()


async def test_a_description_only_report_is_predicted_and_routed(infra, stack, http):
    tag = uuid.uuid4().hex[:8]
    resp = await post(http, stack, body(description=f"{tag} 小区门口下水道堵塞，污水外溢，井盖冒水，希望尽快处理"))
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert (answer["category_source"], answer["category_code"]) == ("predicted", "100401")
    assert answer["confidence"] >= 0.5 and answer["model_version"]
    assert [s["category_code"] for s in answer["suggestions"]][0] == "100401"
    event = await dispatched_event(infra, uuid.UUID(answer["case_id"]))
    assert (event["target_kind"], event["department"]) == ("department", "housing")
    view = (await http.get(f"{stack.url('intake')}/v1/cases/{answer['case_id']}")).json()
    assert (view["category_source"], view["category_code"], view["model_version"]) == (
        "predicted", "100401", answer["model_version"])


async def test_below_the_threshold_goes_to_triage_with_three_suggestions(infra, stack, http):
    resp = await post(http, stack, body(description=f"{uuid.uuid4().hex[:8]} 请问这个事情归哪里管"))
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert (answer["category_source"], answer["category_code"]) == ("unclassified", "未分类")
    assert len(answer["suggestions"]) == 3 and answer["confidence"] < 0.5
    event = await dispatched_event(infra, uuid.UUID(answer["case_id"]))
    assert event["target_kind"] == "triage"


async def test_an_unknown_code_is_refused_with_the_nearest(stack, http):
    resp = await post(http, stack, body(category_code="100403", description="下水道"))
    assert resp.status_code == 422, resp.text
    answer = resp.json()
    assert answer["error"] == "unknown_category" and answer["field"] == "category_code"
    assert "100401" in answer["nearest"]


async def test_a_reported_code_is_kept(stack, http):
    resp = await post(http, stack, body(category_code="100102", description=f"{uuid.uuid4().hex[:8]} 下水道堵塞"))
    assert resp.status_code == 202, resp.text
    assert (resp.json()["category_source"], resp.json()["category_code"]) == ("reported", "100102")


async def test_a_near_identical_second_report_lists_the_first(stack, http):
    tag = uuid.uuid4().hex
    text = f"{tag} 幸福路口垃圾桶满溢，垃圾堆放三天没有清运，苍蝇很多"
    first = await post(http, stack, body(category_code="100102", description=text))
    assert first.status_code == 202, first.text
    second = await post(http, stack, body(category_code="100102", description=text + "，请尽快处理"))
    assert second.status_code == 202, second.text
    duplicates = second.json()["possible_duplicates"]
    assert duplicates and duplicates[0]["case_id"] == first.json()["case_id"]
    assert duplicates[0]["similarity"] > 0.9
    view = (await http.get(f"{stack.url('intake')}/v1/cases/{second.json()['case_id']}")).json()
    assert view["possible_duplicates"][0]["case_id"] == first.json()["case_id"]
    # the first was reported before any other of its text: no candidate ranks near it
    # (earlier cases at the place sharing no character pair with it are listed with similarity None)
    assert all(d["similarity"] is None or d["similarity"] < 0.9 for d in first.json()["possible_duplicates"])


async def test_an_open311_request_with_only_a_description_is_classified(stack, http):
    """Open311 POST without ``service_code`` but with a description (issue 15 item 2)."""
    form = {"api_key": api.ADMIN_KEY, "jurisdiction_id": TENANT, "address_id": GRID,
            "description": f"{uuid.uuid4().hex[:8]} 路口下水道堵塞，污水外溢，井盖冒水"}
    resp = await http.post(f"{stack.url('intake')}/open311/v2/requests.json", data=form)
    assert resp.status_code == 200, resp.text
    case_id = resp.json()[0]["service_request_id"]
    view = (await http.get(f"{stack.url('intake')}/v1/cases/{case_id}")).json()
    assert (view["category_source"], view["category_code"]) == ("predicted", "100401")
    # without a description a missing service_code is still refused (Open311 spec: it is required)
    del form["description"]
    assert (await http.post(f"{stack.url('intake')}/open311/v2/requests.json", data=form)).status_code == 400


async def test_a_correction_is_shown_and_becomes_training_data(infra, stack, http, monkeypatch):
    """recategorize → ``category_source: corrected``; ``gridcase model train --tenant`` learns the
    corrected category from the masked text (gridcase/model.py)."""
    from gridcase.model import _tenant_pairs

    tag = uuid.uuid4().hex[:8]
    case_id, view = await reported_then_recategorized(
        infra, stack, http, body(description=f"{tag} 下水道堵塞，污水外溢，请回电13912345678"), "200101")
    assert (view["category_source"], view["category_code"]) == ("corrected", "200101")
    monkeypatch.setenv("DATABASE_URL", infra.database_url)
    pairs = dict((text, label) for text, label in await _tenant_pairs(TENANT) if tag in text)
    assert list(pairs.values()) == ["200101"]
    (text,) = pairs
    assert "13912345678" not in text and "[电话]" in text  # intake stores the masked text


async def import_reports(http, stack, reports: list[dict]) -> None:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reports).encode("utf-8")
    resp = await http.post(f"{stack.url('intake')}/v1/imports", params={"format": "jsonl", "tenant": TENANT},
                           content=lines, headers={"content-type": "application/octet-stream"})
    assert resp.status_code == 200 and resp.json()["accepted"] == len(reports), resp.text


def located_elsewhere(tag: str, category: str, when: datetime, n: int = 101) -> list[dict]:
    """``n`` reports of ``category`` at Xingfu Community Grid 1, each with coordinates 1.1 km or
    more north of 39.95° N 116.45° E (0.01° of latitude = 1,112 m): more than the 100 candidates
    read per report, all newer than the case each test looks for, none within 50 m of it."""
    return [body(category_code=category, place_code="990102001001001", description=f"{tag} 其他地点 #{i}",
                 latitude=39.96 + 0.001 * i, longitude=116.45, reported_at=when.isoformat()) for i in range(n)]


async def test_located_reports_elsewhere_do_not_crowd_out_one_at_the_place(stack, http):
    # a report without coordinates can only match at its place; 101 newer located reports of
    # the category elsewhere in the city are no candidates of it, and must not push out the
    # older one at the place (docs/classifier.md §4: same place, or both located within 50 m)
    tag, now = uuid.uuid4().hex, datetime.now(CST)
    text = f"{tag} 和平社区二网格楼道堆放杂物，堵塞消防通道"
    first = await post(http, stack, body(category_code="400102", description=text,
                                         reported_at=(now - timedelta(minutes=20)).isoformat()))
    assert first.status_code == 202, first.text
    await import_reports(http, stack, located_elsewhere(tag, "400102", now - timedelta(minutes=10)))
    second = await post(http, stack, body(category_code="400102", description=text + "，请处理",
                                          reported_at=now.isoformat()))
    assert second.status_code == 202, second.text
    assert first.json()["case_id"] in [d["case_id"] for d in second.json()["possible_duplicates"]]


async def test_a_located_report_finds_one_30_m_away_behind_101_farther_ones(stack, http):
    # 0.00027° of latitude = 30 m (6,371,008.8 m × π / 180 × 0.00027): within 50 m, in another grid
    tag, now = uuid.uuid4().hex, datetime.now(CST)
    text = f"{tag} 路口井盖破损，行人容易踩空"
    first = await post(http, stack, body(category_code="500101", description=text, place_code="990102001002001",
                                         latitude=39.95027, longitude=116.45,
                                         reported_at=(now - timedelta(minutes=20)).isoformat()))
    assert first.status_code == 202, first.text
    await import_reports(http, stack, located_elsewhere(tag, "500101", now - timedelta(minutes=10)))
    second = await post(http, stack, body(category_code="500101", description=text + "，请处理",
                                          latitude=39.95, longitude=116.45, reported_at=now.isoformat()))
    assert second.status_code == 202, second.text
    found = second.json()["possible_duplicates"]
    assert found and found[0]["case_id"] == first.json()["case_id"]


@pytest.mark.parametrize(("category", "first_at", "second_at"), [
    # south of the equator, west of Greenwich: 0.00027° of latitude = 30 m (as above), the box's
    # bounds negative numbers
    ("500101", (-34.60397, -58.3816), (-34.6037, -58.3816)),
    # across the 180th meridian at 16.5° S: 0.00025° of longitude = 0.00025 × 111,194.93 m (one
    # degree, 6,371,008.8 m × π / 180) × cos 16.5° (0.958820) = 26.65 m; the box would cross ±180,
    # so the store reads any longitude of the latitude band
    ("400102", (-16.5, 179.9999), (-16.5, -179.99985)),
    # 0.0002° (22.24 m) from the North Pole on meridians 90° apart: 22.24 m × √2 = 31.45 m; the
    # circle of 50 m holds the pole, so any longitude again
    ("100102", (89.9998, 10.0), (89.9998, 100.0)),
])
async def test_a_located_report_finds_one_30_m_away_where_longitude_wraps(stack, http, category, first_at, second_at):
    # the two queries bounding_box sends besides the Beijing one above: negative bounds, and a
    # latitude band alone (near the 180th meridian and the poles); 101 newer reports elsewhere
    # (39.96° N and more) must not be read instead
    tag, now = uuid.uuid4().hex, datetime.now(CST)
    text = f"{tag} 路口井盖破损，行人容易踩空"
    first = await post(http, stack, body(category_code=category, description=text, place_code="990102001002001",
                                         latitude=first_at[0], longitude=first_at[1],
                                         reported_at=(now - timedelta(minutes=20)).isoformat()))
    assert first.status_code == 202, first.text
    await import_reports(http, stack, located_elsewhere(tag, category, now - timedelta(minutes=10)))
    second = await post(http, stack, body(category_code=category, description=text + "，请处理",
                                          latitude=second_at[0], longitude=second_at[1], reported_at=now.isoformat()))
    assert second.status_code == 202, second.text
    found = second.json()["possible_duplicates"]
    assert found and found[0]["case_id"] == first.json()["case_id"]
    view = (await http.get(f"{stack.url('intake')}/v1/cases/{second.json()['case_id']}")).json()
    # the case view reads the same from the stored report (states may have moved on since)
    assert [d["case_id"] for d in view["possible_duplicates"]] == [d["case_id"] for d in found]


async def test_a_case_corrected_into_the_category_is_a_candidate(infra, stack, http):
    # docs/classifier.md §4 and shared/domain/duplicates.py: "the same category (the category
    # now)"; the first is reported 100102, corrected to 200101; the second, 200101 at the same
    # grid with the same text, must list it
    tag = uuid.uuid4().hex
    text = f"{tag} 幸福路口垃圾桶满溢，垃圾堆放三天没有清运"
    case_id, view = await reported_then_recategorized(
        infra, stack, http, body(category_code="100102", description=text), "200101")
    assert view["category_code"] == "200101"
    second = await post(http, stack, body(category_code="200101", description=text + "，请处理"))
    assert second.status_code == 202, second.text
    assert case_id in [d["case_id"] for d in second.json()["possible_duplicates"]]
    # the second's case view reads the stored report in its category now too
    second_view = (await http.get(f"{stack.url('intake')}/v1/cases/{second.json()['case_id']}")).json()
    assert case_id in [d["case_id"] for d in second_view["possible_duplicates"]]
