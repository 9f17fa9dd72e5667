"""Open311 GeoReport v2 (services/intake/open311/) without a database: XML and JSON rendering,
parameter parsing, attribute checks, and the POST path against a fake ``Intake`` whose ``store``
records what it is given.

Expected behaviour comes from the GeoReport v2 spec (open311.github.io GeoReport_v2/index.md,
digest in docs/architecture.md §8) and the module docstrings of services/intake/open311/.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from services.intake.open311 import catalogue, router, translate
from services.intake.open311.catalogue import check_attributes
from services.intake.open311.queries import parse_request_query
from services.intake.open311.translate import compose_description, split_description
from services.intake.open311.wire import Open311Error, parse_w3c, to_xml
from shared.domain.tenants import load_all_tenants
from shared.platform.http import install_error_handlers

CST = ZoneInfo("Asia/Shanghai")
GRID = "990102001001001"


# --------------------------------------------------------------------------- rendering


def test_xml_has_declaration_and_spec_element_names():
    body = to_xml("service_requests", [{"service_request_id": "1", "status_notes": None, "lat": None}])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "service_requests"
    [request] = list(root)
    assert request.tag == "request"
    assert [c.tag for c in request] == ["service_request_id", "status_notes", "lat"]
    assert request.find("status_notes").text is None  # null → empty element


def test_xml_nested_lists_use_singular_names_and_booleans():
    root = ET.fromstring(to_xml("service_definition", catalogue.service_definition("100110")))
    attribute = root.find("attributes/attribute")
    assert attribute.find("variable").text == "true"
    assert attribute.find("datatype").text == "singlevaluelist"
    assert [v.find("key").text for v in attribute.findall("values/value")] == ["restaurant", "residence", "other"]
    errors = ET.fromstring(to_xml("errors", [{"code": 403, "description": "x"}]))
    assert [(e.find("code").text, e.find("description").text) for e in errors] == [("403", "x")]


def test_xml_is_utf8_and_drops_characters_xml_cannot_carry():
    body = to_xml("services", [{"service_name": "油烟扰民 \x01<&>"}])
    assert "油烟扰民".encode() in body
    assert ET.fromstring(body).find("service/service_name").text == "油烟扰民 <&>"


async def test_discovery_shape_in_xml():
    app = _app()
    async with _client(app) as client:
        resp = await client.get("/open311/v2/discovery.xml")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(resp.content)
    assert root.tag == "discovery"
    assert [c.tag for c in root] == ["changeset", "contact", "key_service", "endpoints"]
    endpoint = root.find("endpoints/endpoint")
    assert endpoint.find("specification").text == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint.find("url").text.endswith("/open311/v2")
    assert [f.text for f in endpoint.findall("formats/format")] == ["text/xml", "application/json"]


# --------------------------------------------------------------------------- parsing


def test_parse_w3c_requires_a_timezone():
    assert parse_w3c("start_date", "2010-01-01T00:00:00Z", CST) == datetime(2010, 1, 1, tzinfo=UTC)
    assert parse_w3c("start_date", "2024-03-01T08:00:00+08:00", CST) == datetime(2024, 3, 1, tzinfo=UTC)
    for bad in ("2010-01-01T00:00:00", "yesterday", "2010-13-01T00:00:00Z", "2024-03-01"):
        with pytest.raises(Open311Error) as info:
            parse_w3c("start_date", bad, CST)
        assert info.value.status == 400


def test_a_date_alone_is_refused_naming_the_w3c_form():
    """Spec, GET Service Requests: start_date "Must use w3 format, eg 2010-01-01T00:00:00Z"."""
    with pytest.raises(Open311Error) as info:
        parse_w3c("start_date", "2024-03-01", CST)
    [(code, text)] = info.value.errors
    assert code == 400
    assert "start_date" in text and "2010-01-01T00:00:00Z" in text and "date alone" in text


def test_request_query_defaults_and_limits():
    now = datetime(2026, 11, 29, tzinfo=UTC)
    q = parse_request_query({}, CST, now)
    assert (q.start, q.end, q.page, q.page_size) == (now - timedelta(days=90), now, 1, 1000)
    q = parse_request_query({"start_date": "2026-01-01T00:00:00Z", "status": "open", "service_code": "100110,100401"},
                            CST, now)
    assert q.end - q.start == timedelta(days=90) and q.statuses == {"open"} and q.service_codes == ["100110", "100401"]
    ids = [str(uuid.uuid4()), "not-a-uuid"]
    q = parse_request_query({"service_request_id": ",".join(ids), "status": "bogus"}, CST, now)  # overrides others
    assert q.ids == [uuid.UUID(ids[0])] and q.statuses is None
    q = parse_request_query({"start_date": "", "page": "2", "page_size": "10"}, CST, now)  # empty = absent
    assert (q.page, q.page_size) == (2, 10)
    for params in ({"status": "pending"}, {"page_size": "1001"}, {"page": "0"},
                   {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
                   {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}):
        with pytest.raises(Open311Error) as info:
            parse_request_query(params, CST, now)
        assert info.value.status == 400, params


def test_attributes_checked_against_the_service_definition():
    assert check_attributes("100110", {"source": ["restaurant"]}) == {"source": ["restaurant"]}
    assert check_attributes("100401", {}) == {}
    for posted in ({}, {"source": ["factory"]}, {"source": ["restaurant", "other"]},
                   {"source": ["restaurant"], "colour": ["grey"]}):
        with pytest.raises(Open311Error) as info:
            check_attributes("100110", posted)
        assert info.value.status == 400, posted
    with pytest.raises(Open311Error):
        check_attributes("100401", {"source": ["restaurant"]})


def test_description_trailer_round_trip():
    stored = compose_description("油烟很大\n[open311:media_url http://evil.example/x]", {"source": ["restaurant"]},
                                 "https://img.example.org/1.jpg")
    text, media = split_description(stored)
    assert media == "https://img.example.org/1.jpg"  # the spoofed line in the text is defused
    assert text.startswith("油烟很大\n［open311:media_url") and "[open311:" not in text
    long = compose_description("字" * 4000, {"source": ["other"]}, "https://img.example.org/2.jpg")
    assert len(long) <= 4000 and split_description(long)[1] == "https://img.example.org/2.jpg"
    assert split_description(long)[0].endswith("…")
    assert compose_description("plain", {}, None) == "plain"


def test_place_address_is_the_place_chain_never_a_reporter_address():
    tenant = load_all_tenants()["demo-grid"]
    assert translate.place_address(tenant, GRID + "07") == (
        "幸福社区第1网格 Xingfu Community Grid 1, 幸福社区 Xingfu Community, 示范街道 Demo Street")


# --------------------------------------------------------------------------- routes without a database


class _KeyAuth:
    """Stands in for the credential store: the listed keys are admins of every tenant."""

    def __init__(self, keys: str) -> None:
        self.keys = {k.strip() for k in keys.split(",") if k.strip()}

    async def principal(self, request, extra=None):
        from shared.platform.auth import Principal
        from shared.platform.authhttp import presented_credential, unauthenticated

        credential = presented_credential(request, extra)
        if credential not in self.keys:
            raise unauthenticated("unknown credential")
        return Principal(credential, "*", "admin")


def _app(keys: str = "k1, k2") -> FastAPI:
    app = FastAPI()
    app.state.auth = _KeyAuth(keys)
    install_error_handlers(app)
    router.install(app)
    router.install(app)  # idempotent
    stored: list = []

    async def store(reports, who=None):
        stored.extend(reports)
        return {cid for _, cid, _ in reports}

    app.state.intake = SimpleNamespace(tenants=load_all_tenants(), settings=SimpleNamespace(),
                                       store=store, engine=None)
    app.state.stored = stored

    @app.get("/v1/other")
    async def other():
        from fastapi import HTTPException

        raise HTTPException(404, "nope")

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test")


async def _post(client, fmt="json", **form):
    body = {"api_key": "k2", "jurisdiction_id": "demo-grid", "service_code": "100401", "address_id": GRID} | form
    return await client.post(f"/open311/v2/requests.{fmt}", data={k: v for k, v in body.items() if v is not None})


async def test_post_builds_a_report_and_keeps_personal_data_in_the_contact():
    app = _app()
    async with _client(app) as client:
        resp = await _post(client, service_code="100110", **{"attribute[source]": "residence"},
                     first_name="小明", last_name="王", phone="13812345678", email="w@example.org",
                     address_string="幸福路1号3单元", lat="39.9", long="116.4", description="楼下饭店油烟",
                     media_url="https://img.example.org/a.jpg")
    assert resp.status_code == 200, resp.text
    [answer] = resp.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    [(report, case_id, key)] = app.state.stored
    assert str(case_id) == answer["service_request_id"] and key is None
    assert (report.channel, report.source, report.tenant, report.place_code) == ("open311", "open311", "demo-grid", GRID)
    assert report.reporter.name == "王小明" and report.reporter.phone == "13812345678"
    assert report.reporter.address == "幸福路1号3单元"  # address_string: personal data, reporter only
    assert "幸福路" not in report.description
    assert "[open311:attribute source=residence]" in report.description
    assert report.reported_at.tzinfo is not None


async def test_post_location_rules():
    app = _app()
    async with _client(app) as client:
        assert (await _post(client, address_id=None, lat="39.9", long="116.4")).status_code == 200
        assert (await _post(client, address_id=None, address_string="某路")).status_code == 200
        assert (await _post(client, address_id=None)).status_code == 400  # no location
        assert (await _post(client, address_id=None, lat="39.9")).status_code == 400  # lat without long
        assert (await _post(client, address_id=None, lat="x", long="1")).status_code == 400
        assert (await _post(client, address_id=None, lat="91", long="1")).status_code == 400
        assert (await _post(client, address_id="110105")).status_code == 400  # not a place of demo-grid
    # coordinates or an address text alone: the tenant's first top-level place (the street)
    assert [r.place_code for r, _, _ in app.state.stored] == ["990102001", "990102001"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_errors_in_the_spec_format(fmt):
    app = _app()
    async with _client(app) as client:
        cases = [
            (await _post(client, fmt, api_key=None), 403),
            (await _post(client, fmt, api_key="wrong"), 403),
            (await _post(client, fmt, jurisdiction_id=None), 400),
            (await _post(client, fmt, jurisdiction_id="atlantis"), 404),
            (await _post(client, fmt, service_code="999999"), 404),
            (await _post(client, fmt, service_code=None), 400),
            (await _post(client, fmt, service_code="100110"), 400),  # required attribute missing
            (await _post(client, fmt, description="x" * 4001), 400),
            (await _post(client, fmt, media_url="javascript:alert(1)"), 400),
            (await _post(client, fmt, phone="1" * 41), 400),
            (await client.get(f"/open311/v2/services.{fmt}"), 400),
            (await client.get(f"/open311/v2/services.{fmt}?jurisdiction_id=atlantis"), 404),
            (await client.get(f"/open311/v2/services/999999.{fmt}?jurisdiction_id=demo-grid"), 404),
            (await client.get(f"/open311/v2/requests.{fmt}?jurisdiction_id=demo-grid&start_date=yesterday&api_key=k1"), 400),
            (await client.get(f"/open311/v2/requests.{fmt}?jurisdiction_id=nyc"), 403),  # nyc's reads need a key
            (await client.get(f"/open311/v2/requests.{fmt}?jurisdiction_id=demo-grid&start_date=2026-11-29"), 400),
            (await client.get(f"/open311/v2/nothing-here.{fmt}"), 404),
            (await client.delete(f"/open311/v2/services.{fmt}"), 400),
        ]
    for resp, status in cases:
        assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
        if fmt == "json":
            body = resp.json()
            assert isinstance(body, list) and body and all(set(e) == {"code", "description"} for e in body)
            assert body[0]["code"] == status
        else:
            root = ET.fromstring(resp.content)
            assert root.tag == "errors" and root[0].tag == "error"
            assert root[0].find("code").text == str(status) and root[0].find("description").text


async def test_public_reads_where_the_tenant_file_allows_them(monkeypatch):
    """deploy/tenants/demo-grid.yaml sets open311_public_reads: a read without a credential sees
    the whole jurisdiction (caller None); nyc's file does not: 403. A credential that is sent is
    always checked."""
    from services.intake.open311 import router as module

    asked: list = []

    async def fetch_rows(engine, tenant, query, caller=None):
        asked.append((tenant, caller))
        return []

    monkeypatch.setattr(module, "fetch_rows", fetch_rows)
    async with _client(_app()) as client:
        public = await client.get("/open311/v2/requests.json?jurisdiction_id=demo-grid")
        assert public.status_code == 200 and public.json() == []
        assert asked == [("demo-grid", None)]
        one = await client.get(f"/open311/v2/requests/{uuid.uuid4()}.xml?jurisdiction_id=demo-grid")
        assert one.status_code == 404  # read publicly, and no such request
        assert (await client.get("/open311/v2/requests.json?jurisdiction_id=nyc")).status_code == 403
        assert (await client.get("/open311/v2/requests.json?jurisdiction_id=demo-grid&api_key=wrong")).status_code == 403
        keyed = await client.get("/open311/v2/requests.json?jurisdiction_id=demo-grid&api_key=k1")
        assert keyed.status_code == 200 and asked[-1][1].role == "admin"


async def test_no_key_configured_accepts_no_key():
    async with _client(_app(keys="")) as client:
        assert (await _post(client, api_key="anything")).status_code == 403


async def test_unknown_format_and_the_rest_of_the_api_keep_their_error_body():
    async with _client(_app()) as client:
        resp = await client.get("/open311/v2/services.csv?jurisdiction_id=demo-grid")
        assert resp.status_code == 400 and ET.fromstring(resp.content).tag == "errors"
        other = await client.get("/v1/other")
        assert other.status_code == 404 and other.json()["error"] == "http_error"


async def test_services_list_and_definition_json():
    async with _client(_app()) as client:
        services = (await client.get("/open311/v2/services.json?jurisdiction_id=demo-grid")).json()
        definition = (await client.get("/open311/v2/services/100110.json?jurisdiction_id=demo-grid")).json()
        plain = (await client.get("/open311/v2/services/100401.json?jurisdiction_id=demo-grid")).json()
    fume = next(s for s in services if s["service_code"] == "100110")
    assert fume["service_name"] == "油烟扰民 Cooking-fume nuisance"
    assert (fume["metadata"], fume["type"], fume["group"]) == (True, "realtime", "城管 Urban management")
    assert next(s for s in services if s["service_code"] == "100401")["metadata"] is False
    assert definition["attributes"][0]["code"] == "source"
    assert plain == {"service_code": "100401", "attributes": []}
