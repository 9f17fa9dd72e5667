"""Open311 GeoReport v2 on a running intake (services/intake/open311/), driven by a third-party
client library and checked against the spec's JSON Schemas.

- The client is PyPI ``georeport`` (``GeoReport``: service list, service definition, request(s),
  JSON and XML). It has no POST method, so posting uses httpx with the spec's form encoding.
- JSON bodies are validated against open311/schema-validation's schemas, vendored in
  ``../shared/data/open311/georeport-v2/`` (schema checks are skipped when that folder is absent);
  XML bodies are parsed and their element names checked.
- Expected behaviour: the GeoReport v2 spec (open311.github.io ``GeoReport_v2/index.md``; digest
  in docs/architecture.md §8) and the module docstrings of services/intake/open311/.

The services run as subprocesses: the session ``stack`` provides dispatch (and reporting); this
module adds one more intake, on the same broker and database, and issues ``API_KEY`` (a city_ops
key of ``demo-grid`` in the credential store, shared/platform/authstore.py), which POSTs carry
(the spec requires it there). The georeport client reads without a key, as the spec has request
reads public: ``demo-grid``'s file sets ``open311_public_reads``. A third intake serves one tenant
only (a single-jurisdiction deployment, ``GRIDCASE_TENANTS_DIR`` with one file) and is read
without ``jurisdiction_id``. Reports go to tenant ``demo-grid``, which the end-to-end tests never
count.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import httpx
import pytest

from shared.platform.authstore import new_api_key
from tests import api
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration

API_KEY = new_api_key()[1]
TENANT = "demo-grid"
#: 和平社区第1网格: demo-grid routes 100110 油烟扰民 here to ecology_environment (deploy/tenants/demo-grid.yaml).
HEPING_GRID = "990102001002001"
SCHEMAS = SHARED_DATA / "open311" / "georeport-v2"
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def intake(stack, infra, tmp_path_factory) -> str:
    """Base URL of an intake that accepts ``API_KEY`` (dispatch comes from the session stack)."""
    import asyncio

    from gridcase.runtime import Stack
    from shared.platform.authstore import issue
    from shared.platform.db import make_engine

    async def install() -> None:
        engine = make_engine(infra.database_url)
        try:
            await issue(engine, kind="api_key", tenant=TENANT, role="city_ops", label="open311 tests", api_key=API_KEY)
        finally:
            await engine.dispose()

    asyncio.run(install())  # the session stack has migrated the auth schema
    own = Stack(tmp_path_factory.mktemp("open311"), fresh=False, infra=infra)
    own.start_service("intake")
    try:
        own.wait_healthy("intake")
        url = own.url("intake")
        probe = api.get(f"{url}/open311/v2/discovery.json", timeout=10)
        assert probe.status_code == 200, (
            "intake does not serve /open311/v2: services/intake/main.py create_app must call "
            "services.intake.open311.router.install(app)")
        yield url
    finally:
        own.stop()


@pytest.fixture(scope="module")
def client(intake):
    """The georeport client (JSON) on this intake's Open311 endpoint, jurisdiction demo-grid; no
    api_key (the client sends one on POST only, which it does not implement): public reads."""
    from georeport import GeoReport

    return GeoReport(f"{intake}/open311/v2", jurisdiction=TENANT, output_format="json")


@pytest.fixture(scope="module")
def xml_client(intake):
    """The georeport client asking for XML (parsed with xmltodict)."""
    from georeport import GeoReport

    return GeoReport(f"{intake}/open311/v2", jurisdiction=TENANT, output_format="xml")


@pytest.fixture(scope="module")
def schemas():
    """``{name: Draft4Validator}`` for the vendored GeoReport v2 schemas (relative ``$ref`` such as
    ``request.json`` resolved through a registry); ``None`` when the folder is absent."""
    if not SCHEMAS.is_dir():
        return None
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    names = ["request", "requests", "service", "services", "service-definition"]
    docs = {n: json.loads((SCHEMAS / f"{n}.json").read_text(encoding="utf-8")) for n in names}
    registry = Registry().with_resources(
        (f"{n}.json", Resource.from_contents(doc, default_specification=DRAFT4)) for n, doc in docs.items()
    )
    return {
        n: jsonschema.Draft4Validator(doc, registry=registry, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
        for n, doc in docs.items()
    }


def check_schema(schemas, name: str, body) -> None:
    """Validate ``body`` against schema ``name`` (skipped without the schema folder)."""
    if schemas is not None:
        schemas[name].validate(body)


def assert_w3c(value: str | None, *, required: bool = True) -> None:
    """A W3C ISO 8601 datetime with a timezone (spec: Date/time format)."""
    if value is None and not required:
        return
    assert isinstance(value, str) and "T" in value, value
    assert datetime.fromisoformat(value).tzinfo is not None, value


def xml_of(resp: httpx.Response, root: str, item: str | None = None) -> ET.Element:
    """Parse an XML answer; check the declaration, content type and the root (and item) names."""
    assert resp.headers["content-type"].startswith("text/xml"), resp.headers["content-type"]
    assert resp.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    element = ET.fromstring(resp.content)
    assert element.tag == root, element.tag
    if item is not None:
        assert all(child.tag == item for child in element), [c.tag for c in element]
    return element


def post(intake: str, fmt: str = "json", **form) -> httpx.Response:
    """POST Service Request, form-encoded as the spec requires; ``None`` values are left out."""
    body = {"api_key": API_KEY, "jurisdiction_id": TENANT, "service_code": "100401", "address_id": HEPING_GRID}
    body.update(form)
    return httpx.post(f"{intake}/open311/v2/requests.{fmt}", data={k: v for k, v in body.items() if v is not None},
                      timeout=15)


def as_list(value) -> list:
    """xmltodict gives a dict for one repeated element and a list for several."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def fume_request(intake) -> dict:
    """One 油烟扰民 request posted through Open311 with contact data, an attribute and media."""
    marker = api.marker()
    resp = post(
        intake,
        service_code="100110",
        **{"attribute[source]": "restaurant"},
        lat="26.08", long="119.30",
        description=f"open311 {marker}: 楼下饭店油烟很大，联系我13812345678",
        first_name="小明", last_name="王", phone="13812345678", email="xiaoming@example.org",
        address_string="幸福路8号3单元502室",
        media_url=f"https://img.example.org/{marker}.jpg",
        device_id="dev-1", account_id="acct-1",
    )
    assert resp.status_code == 200, resp.text
    return {"answer": resp.json(), "marker": marker}


# --------------------------------------------------------------------------- discovery and services


def test_discovery_in_both_formats(intake):
    body = api.get(f"{intake}/open311/v2/discovery.json", timeout=10).json()
    assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
    [endpoint] = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == f"{intake}/open311/v2" and endpoint["type"] == "production"
    assert set(endpoint["formats"]) == {"text/xml", "application/json"}
    root = xml_of(api.get(f"{intake}/open311/v2/discovery.xml", timeout=10), "discovery")
    assert [c.tag for c in root] == ["changeset", "contact", "key_service", "endpoints"]
    assert [c.tag for c in root.find("endpoints/endpoint")] == ["specification", "url", "changeset", "type", "formats"]
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == endpoint["formats"]


def test_client_lists_services(client, xml_client, schemas, intake):
    services = client.get_service_list()
    check_schema(schemas, "services", services)
    by_code = {s["service_code"]: s for s in services}
    fume = by_code["100110"]
    assert fume["service_name"] == "油烟扰民 Cooking-fume nuisance"
    assert (fume["metadata"], fume["type"], fume["group"]) == (True, "realtime", "城管 Urban management")
    assert by_code["100401"]["metadata"] is False and by_code["100401"]["group"] == "住建 Housing and urban-rural development"
    # XML: the same services, element names per the spec
    xml_services = xml_client.get_service_list()
    assert [s["service_code"] for s in xml_services] == [s["service_code"] for s in services]
    assert xml_services[0].keys() == services[0].keys()
    assert next(s for s in xml_services if s["service_code"] == "100110")["metadata"] == "true"
    xml_of(api.get(f"{intake}/open311/v2/services.xml", params={"jurisdiction_id": TENANT}, timeout=10),
           "services", "service")


def test_client_reads_service_definitions(client, xml_client, schemas):
    definition = client.get_service_definition("100110")
    check_schema(schemas, "service-definition", definition)
    [source] = definition["attributes"]
    assert (source["code"], source["datatype"], source["required"]) == ("source", "singlevaluelist", True)
    assert [v["key"] for v in source["values"]] == ["restaurant", "residence", "other"]
    plain = client.get_service_definition("100401")
    check_schema(schemas, "service-definition", plain)
    assert plain == {"service_code": "100401", "attributes": []}
    xml_definition = xml_client.get_service_definition("100110")
    attribute = xml_definition["attributes"]["attribute"]
    assert attribute["code"] == "source" and attribute["required"] == "true"
    assert [v["key"] for v in attribute["values"]["value"]] == ["restaurant", "residence", "other"]


# --------------------------------------------------------------------------- post and read back


def test_post_answers_the_request_id(fume_request, intake):
    [answer] = fume_request["answer"]
    assert list(answer) == ["service_request_id", "service_notice", "account_id"]
    uuid.UUID(answer["service_request_id"])
    assert answer["service_notice"] and answer["account_id"] is None
    # the same in XML
    resp = post(intake, "xml", description="xml post")
    assert resp.status_code == 200, resp.text
    root = xml_of(resp, "service_requests", "request")
    assert [c.tag for c in root[0]] == ["service_request_id", "service_notice", "account_id"]
    uuid.UUID(root[0].find("service_request_id").text)


def wait_until_dispatched(client, intake: str, request_id: str, timeout_s: float = 90) -> dict:
    """Poll the request (georeport client) until it names the agency responsible.

    Reports from channels other than ``grid_worker`` wait in ``reported`` for the intake clerk
    (services/dispatch/store.py): the test plays the clerk (``accept``) and the shift lead
    (``file``, which dispatches by the routing table) through ``POST /v1/cases/{id}/actions``
    when the case view shows it waiting. Returns the last record read.
    """
    steps = {"reported": ("accept", "intake_clerk"), "accepted": ("file", "shift_lead")}
    done: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        record = client.get_service_request(request_id)
        if record["agency_responsible"] or time.monotonic() > deadline:
            return record
        state = api.get(f"{intake}/v1/cases/{request_id}", timeout=10).json()["state"]
        if state in steps and steps[state][0] not in done:
            action, role = steps[state]
            if state == "reported":
                assert (record["status"], record["status_notes"]) == ("open", "已上报 reported")
            resp = api.post(f"{intake}/v1/cases/{request_id}/actions", json={"action": action, "actor_role": role},
                              headers={"Idempotency-Key": f"open311-test-{action}"}, timeout=10)
            if resp.status_code == 202:
                done.add(action)
        time.sleep(0.5)


def test_client_reads_the_request_back_after_dispatch(fume_request, client, xml_client, schemas, intake):
    request_id = fume_request["answer"][0]["service_request_id"]
    record = wait_until_dispatched(client, intake, request_id)
    check_schema(schemas, "request", record)
    check_schema(schemas, "requests", [record])
    assert list(record) == REQUEST_FIELDS
    assert record["service_request_id"] == request_id and record["service_code"] == "100110"
    assert record["service_name"] == "油烟扰民 Cooking-fume nuisance"
    # demo-grid routes fumes in Heping community to 生态环境, not the category's default 城管
    assert record["agency_responsible"] == "生态环境 Ecology and environment"
    assert (record["status"], record["status_notes"]) == ("open", "已派遣 dispatched")
    assert "生态环境" in record["service_notice"]
    # description masked, without the trailer; the evidence reference comes back as media_url
    assert record["description"] == f"open311 {fume_request['marker']}: 楼下饭店油烟很大，联系我[电话]"
    assert record["media_url"] == f"https://img.example.org/{fume_request['marker']}.jpg"
    # location: the place (names, code), never the reporter's address; no coordinates, no zipcode
    assert record["address"] == "和平社区第1网格 Heping Community Grid 1, 和平社区 Heping Community, 示范街道 Demo Street"
    assert record["address_id"] == HEPING_GRID
    assert (record["zipcode"], record["lat"], record["long"]) == ("", None, None)
    text = json.dumps(record, ensure_ascii=False)
    for personal in ("幸福路8号", "王小明", "13812345678", "xiaoming@example.org"):
        assert personal not in text
    assert_w3c(record["requested_datetime"])
    assert record["requested_datetime"].endswith("+08:00")  # the tenant's zone (Asia/Shanghai)
    assert_w3c(record["updated_datetime"])
    # expected_datetime is the case deadline: empty until dispatch sets one
    case = api.get(f"{intake}/v1/cases/{request_id}", timeout=10).json()
    assert case["department"] == "ecology_environment"
    if case["deadline"] is None:
        assert record["expected_datetime"] is None
    else:
        assert_w3c(record["expected_datetime"])
        # W3C datetimes in answers carry whole seconds
        assert datetime.fromisoformat(record["expected_datetime"]) == datetime.fromisoformat(case["deadline"]).replace(microsecond=0)
    # the reporter's address is not in the case either (it stays in intake.reports.reporter)
    assert "幸福路8号" not in json.dumps(case, ensure_ascii=False)
    assert "[open311:attribute source=restaurant]" in case["report"]["description"]
    # the same record in XML, element names and order per the spec
    xml_record = xml_client.get_service_request(request_id)
    assert list(xml_record) == REQUEST_FIELDS
    assert xml_record["agency_responsible"] == record["agency_responsible"]
    assert xml_record["lat"] is None and xml_record["zipcode"] is None  # empty elements
    xml_of(api.get(f"{intake}/open311/v2/requests/{request_id}.xml", params={"jurisdiction_id": TENANT},
                     timeout=10), "service_requests", "request")


def test_client_queries_requests(fume_request, client, xml_client, schemas, intake):
    request_id = fume_request["answer"][0]["service_request_id"]
    recent = client.get_service_requests()  # default: the last 90 days, at most 1000
    check_schema(schemas, "requests", recent)
    assert request_id in {r["service_request_id"] for r in recent}
    assert len(recent) <= 1000
    times = [datetime.fromisoformat(r["requested_datetime"]) for r in recent]
    assert times == sorted(times, reverse=True)
    for r in recent:
        assert_w3c(r["requested_datetime"])
    by_code = client.get_service_requests(service_code="100110,100102", status="open")
    check_schema(schemas, "requests", by_code)
    assert request_id in {r["service_request_id"] for r in by_code}
    assert {r["service_code"] for r in by_code} <= {"100110", "100102"} and {r["status"] for r in by_code} == {"open"}
    assert request_id not in {r["service_request_id"] for r in client.get_service_requests(status="closed")}
    assert request_id not in {r["service_request_id"] for r in client.get_service_requests(service_code="100401")}
    now = datetime.now(UTC)
    window = client.get_service_requests(start_date=(now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                         end_date=(now + timedelta(minutes=5)).isoformat())
    assert request_id in {r["service_request_id"] for r in window}
    past = client.get_service_requests(start_date="2020-01-01T00:00:00+08:00", end_date="2020-02-01T00:00:00+08:00")
    assert request_id not in {r["service_request_id"] for r in past}
    # service_request_id overrides the other filters
    unknown = str(uuid.uuid4())
    chosen = client.get_service_requests(service_request_id=f"{request_id},{unknown}", status="closed",
                                         start_date="2020-01-01T00:00:00Z", end_date="2020-02-01T00:00:00Z")
    assert [r["service_request_id"] for r in chosen] == [request_id]
    # paging extension
    page = api.get(f"{intake}/open311/v2/requests.json",
                     params={"jurisdiction_id": TENANT, "page_size": 1, "page": 1}, timeout=10).json()
    check_schema(schemas, "requests", page)
    assert len(page) == 1
    # XML
    xml_requests = as_list(xml_client.get_service_requests(service_request_id=request_id))
    assert [r["service_request_id"] for r in xml_requests] == [request_id]
    xml_of(api.get(f"{intake}/open311/v2/requests.xml", params={"jurisdiction_id": TENANT}, timeout=10),
           "service_requests", "request")


def test_tokens_map_to_request_ids(fume_request, intake):
    request_id = fume_request["answer"][0]["service_request_id"]
    body = api.get(f"{intake}/open311/v2/tokens/{request_id}.json", params={"jurisdiction_id": TENANT},
                     timeout=10).json()
    assert body == [{"service_request_id": request_id, "token": request_id}]
    root = xml_of(api.get(f"{intake}/open311/v2/tokens/{request_id}.xml", params={"jurisdiction_id": TENANT},
                            timeout=10), "service_requests", "request")
    assert [c.tag for c in root[0]] == ["service_request_id", "token"]


# --------------------------------------------------------------------------- errors


def _error_cases(intake: str, fmt: str) -> list[tuple[str, httpx.Response, int]]:
    base = f"{intake}/open311/v2"
    j = {"jurisdiction_id": TENANT}
    return [
        ("missing api_key", post(intake, fmt, api_key=None), 403),
        ("invalid api_key", post(intake, fmt, api_key="not-a-key"), 403),
        ("unknown service_code", post(intake, fmt, service_code="999999"), 404),
        ("missing service_code", post(intake, fmt, service_code=None), 400),
        ("missing location", post(intake, fmt, address_id=None), 400),
        ("address_id not a place", post(intake, fmt, address_id="110105001"), 400),
        ("bad attribute value", post(intake, fmt, service_code="100110", **{"attribute[source]": "factory"}), 400),
        ("description too long", post(intake, fmt, description="长" * 4001), 400),
        ("unknown jurisdiction", post(intake, fmt, jurisdiction_id="atlantis"), 404),
        ("missing jurisdiction", api.get(f"{base}/services.{fmt}", timeout=10), 400),
        ("unknown jurisdiction (GET)", api.get(f"{base}/requests.{fmt}", params={"jurisdiction_id": "atlantis"},
                                                 timeout=10), 404),
        ("bad start_date", api.get(f"{base}/requests.{fmt}", params={**j, "start_date": "29/11/2026"},
                                     timeout=10), 400),
        ("date alone (spec: w3 format)", api.get(f"{base}/requests.{fmt}", params={**j, "start_date": "2026-11-29"},
                                                 timeout=10), 400),
        ("keyless read where reads are not public", httpx.get(f"{base}/requests.{fmt}", params={"jurisdiction_id": "nyc"},
                                                              timeout=10), 403),
        ("date without timezone", api.get(f"{base}/requests.{fmt}", params={**j, "end_date": "2026-11-29T08:00:00"},
                                            timeout=10), 400),
        ("span over 90 days", api.get(f"{base}/requests.{fmt}", params={
            **j, "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, timeout=10), 400),
        ("bad status", api.get(f"{base}/requests.{fmt}", params={**j, "status": "pending"}, timeout=10), 400),
        ("unknown request", api.get(f"{base}/requests/{uuid.uuid4()}.{fmt}", params=j, timeout=10), 404),
        ("unknown token", api.get(f"{base}/tokens/{uuid.uuid4()}.{fmt}", params=j, timeout=10), 404),
        ("unknown service", api.get(f"{base}/services/999999.{fmt}", params=j, timeout=10), 404),
    ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_errors_use_the_spec_body(intake, fmt):
    for name, resp, status in _error_cases(intake, fmt):
        assert resp.status_code == status, (name, resp.status_code, resp.text)
        if fmt == "json":
            assert resp.headers["content-type"].startswith("application/json"), name
            body = resp.json()
            assert isinstance(body, list) and body, name
            for error in body:
                assert set(error) == {"code", "description"} and error["code"] == status and error["description"], name
        else:
            root = xml_of(resp, "errors", "error")
            assert len(root) >= 1, name
            for error in root:
                assert [c.tag for c in error] == ["code", "description"], name
                assert error.find("code").text == str(status) and error.find("description").text, name


def test_a_date_alone_is_refused_with_the_w3c_form(intake):
    resp = httpx.get(f"{intake}/open311/v2/requests.json", params={"jurisdiction_id": TENANT, "start_date": "2026-11-29"},
                     timeout=10)
    [error] = resp.json()
    assert resp.status_code == 400 and error["code"] == 400
    assert "start_date" in error["description"] and "2010-01-01T00:00:00Z" in error["description"]


# --------------------------------------------------------------------------- one jurisdiction


@pytest.fixture(scope="module")
def single_intake(stack, infra, tmp_path_factory) -> str:
    """An intake serving one tenant (demo-grid alone in its GRIDCASE_TENANTS_DIR)."""
    import shutil

    from gridcase.runtime import Stack
    from tests.conftest import REPO

    tenants = tmp_path_factory.mktemp("one-tenant")
    shutil.copy(REPO / "deploy" / "tenants" / f"{TENANT}.yaml", tenants / f"{TENANT}.yaml")
    own = Stack(tmp_path_factory.mktemp("open311-single"), fresh=False, infra=infra,
                env={"GRIDCASE_TENANTS_DIR": str(tenants)})
    own.start_service("intake")
    try:
        own.wait_healthy("intake")
        yield own.url("intake")
    finally:
        own.stop()


def test_one_jurisdiction_answers_without_jurisdiction_id(single_intake, fume_request, schemas):
    """Spec, jurisdiction_id: "only required if the endpoint serves multiple jurisdictions"."""
    from georeport import GeoReport

    request_id = fume_request["answer"][0]["service_request_id"]
    for fmt in ("json", "xml"):
        client = GeoReport(f"{single_intake}/open311/v2", output_format=fmt)  # no jurisdiction, no key
        codes = {s["service_code"] for s in as_list(client.get_service_list())}
        assert {"100110", "100401"} <= codes
        definition = client.get_service_definition("100110")
        assert definition["service_code"] == "100110"
        listed = as_list(client.get_service_requests(service_request_id=request_id))
        assert [r["service_request_id"] for r in listed] == [request_id]
        record = client.get_service_request(request_id)
        assert record["service_request_id"] == request_id and record["service_code"] == "100110"
        if fmt == "json":
            check_schema(schemas, "request", record)
    discovery = httpx.get(f"{single_intake}/open311/v2/discovery.json", timeout=10).json()
    assert discovery["contact"].endswith(f"jurisdiction_id: {TENANT}")


def test_rest_of_the_api_keeps_its_error_body(intake):
    missing = api.get(f"{intake}/v1/cases/{uuid.uuid4()}", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
