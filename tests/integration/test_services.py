"""The three services as subprocesses (``stack``) on the real broker and database.

Expected behaviour comes from the docstrings: services/intake/main.py, api/ and schemas.py (202, personal
data never in events, masking, Idempotency-Key, 422 naming the field), shared/domain/pii.py (placeholders),
services/dispatch/domain/routing.py (disputes → mediation at the lowest level owning the place; unknown
categories → triage), shared/platform/consumer.py (a redelivered event changes nothing) and
services/reporting/api/stats.py (machine-readable 422 answers of ``/v1/stats``).

Every report goes to tenant ``demo-grid``, which the end-to-end tests never count.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.contract.events import derive_id
from shared.contract.topics import TOPIC_LIFECYCLE, TOPIC_REPORTED
from tests import api
from tests.integration.helpers import CST, DEMO_GRID_GRID, read_all, wait_for_records

pytestmark = pytest.mark.integration

TENANT = "demo-grid"
NAME = "王小明"
PHONE = "13812345678"
ID_NUMBER = "11010519491231002X"


def report_body(**overrides) -> dict:
    body = {
        "tenant": TENANT,
        "category_code": "100401",
        "category_name": "下水道堵塞",
        "place_code": DEMO_GRID_GRID,
        "description": f"integration {api.marker()}: 下水道堵塞",
        "channel": "grid_worker",
        "reported_at": datetime.now(CST).isoformat(),
    }
    body.update(overrides)
    return body


@pytest.fixture
async def http(stack):
    async with httpx.AsyncClient(timeout=15, headers=api.bearer()) as client:
        yield client


async def post_report(http: httpx.AsyncClient, stack, body: dict, **headers) -> httpx.Response:
    return await http.post(f"{stack.url('intake')}/v1/reports", json=body, headers=headers)


async def accepted_case(http, stack, body: dict) -> uuid.UUID:
    resp = await post_report(http, stack, body)
    assert resp.status_code == 202, resp.text
    return uuid.UUID(resp.json()["case_id"])


def with_key(case_id: uuid.UUID):
    key = str(case_id).encode()
    return lambda r: r.key == key


async def dispatched_event(infra, case_id: uuid.UUID) -> dict:
    key = str(case_id).encode()
    records = await wait_for_records(
        infra.kafka_bootstrap,
        TOPIC_LIFECYCLE,
        lambda r: r.key == key and json.loads(r.value).get("event_type") == "case.dispatched",
        timeout_s=30,
    )
    assert records, f"no CaseDispatched for case {case_id} on {TOPIC_LIFECYCLE} within 30 s"
    return json.loads(records[0].value)


def named_fields(body: dict) -> set[str]:
    """Field names a 422 answer names (shared/platform/http.py): ``field`` and ``errors[].field``."""
    names = {body["field"]} if isinstance(body.get("field"), str) else set()
    names.update(e["field"] for e in body.get("errors", []))
    return names


# --- intake -------------------------------------------------------------------------------------


async def test_reported_event_carries_no_personal_data(infra, stack, http):
    body = report_body(
        description=f"井盖下水道堵塞，污水外溢，请回电{PHONE}",
        reporter={"name": NAME, "phone": PHONE, "id_number": ID_NUMBER},
    )
    case_id = await accepted_case(http, stack, body)

    records = await wait_for_records(infra.kafka_bootstrap, TOPIC_REPORTED, with_key(case_id), timeout_s=30)
    assert len(records) == 1, f"expected one CaseReported for {case_id}, got {len(records)}"
    raw = records[0].value
    for secret in (PHONE, ID_NUMBER, ID_NUMBER.lower(), NAME):
        assert secret.encode("utf-8") not in raw, f"{secret!r} leaked into the event"
        assert json.dumps(secret).strip('"').encode() not in raw, f"{secret!r} leaked (JSON-escaped)"
    for _, value in records[0].headers:
        assert PHONE.encode() not in value and ID_NUMBER.encode() not in value

    event = json.loads(raw)
    assert event["event_type"] == "case.reported"
    assert event["case_id"] == str(case_id)
    assert "reporter" not in event
    assert isinstance(event["reporter_ref"], str) and event["reporter_ref"]
    # a pseudonym, not a plain digest anyone can recompute from the phone number
    assert event["reporter_ref"] != hashlib.sha256(PHONE.encode()).hexdigest()[: len(event["reporter_ref"])]
    assert "[电话]" in event["description"]
    assert event["description"] == "井盖下水道堵塞，污水外溢，请回电[电话]"

    # schemas.py ReporterContact: personal data never in events, logs or statistics
    await dispatched_event(infra, case_id)  # the report has passed through every service by now
    for name in ("intake", "dispatch", "reporting"):
        log = stack.services[name].log_path.read_text(encoding="utf-8", errors="replace")
        for secret in (PHONE, ID_NUMBER, NAME):
            assert secret not in log, f"{secret!r} appears in the {name} log"


async def test_same_idempotency_key_gives_the_same_case(infra, stack, http):
    key = f"it-{uuid.uuid4()}"
    body = report_body()
    first = await post_report(http, stack, body, **{"Idempotency-Key": key})
    second = await post_report(http, stack, body, **{"Idempotency-Key": key})
    assert first.status_code == 202 and second.status_code == 202, (first.text, second.text)
    assert first.json()["case_id"] == second.json()["case_id"]
    assert first.json()["duplicate"] is False
    assert second.json()["duplicate"] is True

    case_id = uuid.UUID(first.json()["case_id"])
    events = await wait_for_records(infra.kafka_bootstrap, TOPIC_REPORTED, with_key(case_id), count=2, timeout_s=4)
    assert len(events) == 1, "a duplicate POST must not publish a second CaseReported"


@pytest.mark.parametrize(
    ("field", "change"),
    [
        # a missing category_code is predicted since issue 15; a code not in the taxonomy is refused
        ("category_code", lambda b: b.update(category_code="999999")),
        ("reported_at", lambda b: b.update(reported_at="2024-03-01T09:00:00")),  # naive
        ("tenant", lambda b: b.update(tenant="no-such-tenant")),
        ("reported_at", lambda b: b.update(reported_at=(datetime.now(UTC) + timedelta(days=10)).isoformat())),
    ],
    ids=["unknown-category_code", "naive-reported_at", "unknown-tenant", "reported_at-10-days-ahead"],
)
async def test_invalid_report_is_refused_naming_the_field(stack, http, field, change):
    body = report_body()
    change(body)
    resp = await post_report(http, stack, body)
    assert resp.status_code == 422, resp.text
    assert field in named_fields(resp.json()), resp.text


# --- dispatch -----------------------------------------------------------------------------------


async def test_neighbour_dispute_goes_to_grid_level_mediation(infra, stack, http):
    case_id = await accepted_case(http, stack, report_body(category_code="300102", category_name="邻里纠纷"))
    event = await dispatched_event(infra, case_id)
    assert event["target_kind"] == "mediation"
    assert event["mediation_level"] == "grid"
    assert event["department"] == "mediation"
    assert event["tenant"] == TENANT and event["place_code"] == DEMO_GRID_GRID


async def test_unknown_category_of_a_live_report_is_refused(stack, http):
    resp = await http.post(f"{stack.url('intake')}/v1/reports", json=report_body(category_code="999999"))
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "unknown_category"


async def test_unknown_category_of_a_historical_record_goes_to_triage(infra, stack, http):
    """A record of another system keeps its own category (masked) and waits in the triage queue."""
    body = report_body(category_code="999999", category_name="未知类别", source="hist-test",
                       source_id=f"hist-{uuid.uuid4().hex}", history={"status": "open"})
    case_id = await accepted_case(http, stack, body)
    event = await dispatched_event(infra, case_id)
    assert event["target_kind"] == "triage"
    assert event["department"] == "triage"
    assert event["rule"] == "triage:unknown-category"
    assert event["mediation_level"] is None


async def dispatch_progress(http, stack) -> dict:
    resp = await http.get(f"{stack.url('dispatch')}/v1/progress", params={"tenant": TENANT})
    resp.raise_for_status()
    return resp.json()


async def dispatch_duplicates(http, stack) -> float:
    text = (await http.get(f"{stack.url('dispatch')}/metrics")).text
    match = re.search(r"^dispatch_events_duplicate_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def steady_progress(http, stack, timeout_s: float = 20.0) -> dict:
    """Dispatch's progress for the tenant once two readings 1 s apart agree (earlier reports done)."""
    deadline = time.monotonic() + timeout_s
    last = await dispatch_progress(http, stack)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = await dispatch_progress(http, stack)
        if now == last:
            return now
        last = now
    raise AssertionError(f"dispatch progress for {TENANT} kept moving: {last}")


async def test_redelivered_report_is_dispatched_once(infra, stack, http):
    case_id = await accepted_case(http, stack, report_body(category_code="300102", category_name="邻里纠纷"))
    dispatched = await dispatched_event(infra, case_id)
    dispatched_id = dispatched["event_id"]
    # services/dispatch/domain/reports.py: a grid worker's report is accepted (1), filed (2) and dispatched (3) by the
    # system; derived ids are uuid5(case_id, kind, sequence)
    assert dispatched["sequence"] == 3
    assert dispatched_id == str(derive_id(case_id, "case.dispatched", 3))

    reported = await wait_for_records(infra.kafka_bootstrap, TOPIC_REPORTED, with_key(case_id), timeout_s=30)
    assert len(reported) == 1
    original = reported[0]

    before = await steady_progress(http, stack)
    duplicates_before = await dispatch_duplicates(http, stack)

    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC_REPORTED, value=original.value, key=original.key, headers=list(original.headers))
    finally:
        await producer.stop()

    # dispatch has consumed the redelivery once its duplicate counter moved
    deadline = time.monotonic() + 30
    while await dispatch_duplicates(http, stack) <= duplicates_before:
        assert time.monotonic() < deadline, "dispatch did not consume the redelivered report within 30 s"
        await asyncio.sleep(0.3)
    await asyncio.sleep(2.0)  # give a (wrong) second dispatch time to reach the outbox and the topic

    after = await dispatch_progress(http, stack)
    assert after["events_emitted"] == before["events_emitted"], (before, after)
    assert after["cases"] == before["cases"], (before, after)

    copies = await read_all(
        infra.kafka_bootstrap,
        TOPIC_LIFECYCLE,
        lambda r: r.key == original.key and json.loads(r.value).get("event_id") == dispatched_id,
    )
    assert len(copies) == 1, f"{len(copies)} CaseDispatched records with event_id {dispatched_id}"


# --- reporting ----------------------------------------------------------------------------------


async def test_stats_refuses_unknown_group_by_with_a_machine_readable_answer(stack, http):
    resp = await http.get(f"{stack.url('reporting')}/v1/stats", params={"tenant": TENANT, "group_by": "bogus"})
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "invalid_group_by"
    assert body["field"] == "group_by"
    assert "category" in body["message"]


async def test_stats_refuses_a_naive_period_start(stack, http):
    url = f"{stack.url('reporting')}/v1/stats"
    resp = await http.get(url, params={"tenant": TENANT, "start": "2024-03-01T00:00:00"})
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "naive_datetime"
    assert body["field"] == "start"

    aware = await http.get(url, params={"tenant": TENANT, "start": "2024-03-01T00:00:00+08:00"})
    assert aware.status_code == 200, aware.text


# Hostile input (found by a new user's trial): each gets a clear 4xx with the machine-readable
# body of shared/platform/http.py, never a 500, and nothing is stored.


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("description", {"description": "a\u0000b"}),  # PostgreSQL text cannot hold NUL
        ("reported_at", {"reported_at": "0001-01-01T00:00:00+14:00"}),  # before 1990
        ("place_code", {"place_code": "123"}),  # not in demo-grid's places
        ("category_name", {"category_name": "x\u0007y"}),  # control character
    ],
)
async def test_hostile_report_gets_a_4xx_naming_the_field(stack, http, field, change):
    resp = await post_report(http, stack, report_body(**change))
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] in {"validation_failed", "unknown_place"}
    assert body["field"] == field


async def test_validation_errors_do_not_echo_the_input(stack, http):
    huge = "网" * 700_000  # ~2 MB of UTF-8: over the body limit
    resp = await post_report(http, stack, report_body(description=huge))
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"
    long = "网" * 5000  # small enough to be read, too long for the field
    resp = await post_report(http, stack, report_body(description=long))
    assert resp.status_code == 422 and len(resp.content) < 2000
    resp = await http.post(
        f"{stack.url('intake')}/v1/reports",
        content=b'{"tenant": "demo-grid", "description": "\\ud800", "history": {"closed": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422 and resp.json()["error"] == "validation_failed"


async def test_import_that_is_not_utf8_is_refused_whole(stack, http):
    marker = api.marker()
    lines = [json.dumps(report_body(source="it-utf8", source_id=f"{marker}-{i}"), ensure_ascii=False) for i in range(100)]
    data = "\n".join(lines[:49]).encode() + b"\n\xff\n" + "\n".join(lines[50:]).encode()
    resp = await http.post(
        f"{stack.url('intake')}/v1/imports", params={"format": "jsonl", "tenant": TENANT}, content=data
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "invalid_utf8" and body["line"] == 50
    # nothing of the file was stored: importing the good lines now accepts all 99 as new
    good = "\n".join(lines[:49] + lines[50:]).encode()
    resp = await http.post(f"{stack.url('intake')}/v1/imports", params={"format": "jsonl", "tenant": TENANT}, content=good)
    assert resp.status_code == 200 and resp.json()["accepted"] == 99 and resp.json()["duplicates"] == 0


async def test_stats_for_an_unknown_tenant_is_404(stack, http):
    resp = await http.get(f"{stack.url('reporting')}/v1/stats", params={"tenant": "nope"})
    assert resp.status_code == 404 and resp.json()["error"] == "unknown_tenant"
    resp = await http.get(f"{stack.url('reporting')}/v1/stats", params={"tenant": "a\u0000b"})
    assert resp.status_code == 422 and resp.json()["field"] == "tenant"


async def test_services_export_lag_backlog_and_case_gauges(stack, http):
    """Issue 4 item 5 names: lag per group and topic, outbox backlog, open/overdue cases per tenant."""
    want = {
        "dispatch": ["dispatch_consumer_lag_messages{", "dispatch_outbox_pending_messages "],
        "reporting": ["reporting_consumer_lag_messages{", "reporting_cases_open{", "reporting_cases_overdue{"],
        "intake": ["intake_outbox_pending_messages ", "intake_http_requests_total{"],
    }
    deadline = time.monotonic() + 40  # samplers run every 10–15 s
    missing: list[str] = []
    while time.monotonic() < deadline:
        missing = []
        for service, names in want.items():
            text = (await http.get(f"{stack.url(service)}/metrics")).text
            missing += [n for n in names if n not in text]
        if not missing:
            break
        await asyncio.sleep(2)
    assert not missing
