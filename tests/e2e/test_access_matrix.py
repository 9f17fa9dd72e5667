"""Every role against every endpoint (issue 6 item 2), on the running stack.

Tenant ``demo-grid`` (deploy/tenants/demo-grid.yaml): street 990102001 with communities 幸福
990102001001 and 和平 990102001002. Credentials are issued in the credential store as
``gridcase auth issue-key`` does; three cases are reported, accepted and filed by the tenant's admin:

- A: 垃圾扰民 100102 in 和平 grid 1 → urban_management (taxonomy default);
- B: 垃圾扰民 100102 in 幸福 grid 2 → urban_management;
- C: 油烟扰民 100110 in 和平 grid 1 → ecology_environment (demo-grid's routing rule for 和平).

Expected answers come from issue 6: a read outside one's scope is 404 (as for a case that does not
exist), a write 403; community staff see their community, street staff their street, department
staff what was dispatched to their department, city ops everything of their tenant; and from the
role rules of shared/platform/auth.py (who may report, patrol, import and take which case action).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests import api

pytestmark = pytest.mark.e2e

TENANT = "demo-grid"
STREET = "990102001"
HEPING, XINGFU = "990102001002", "990102001001"
HEPING_GRID_1, XINGFU_GRID_2 = "990102001002001", "990102001001002"

#: role name in this test → (tenant, role, scope, department)
GRANTS = {
    "grid_worker": (TENANT, "grid_worker", HEPING_GRID_1, None),
    "community_staff": (TENANT, "community_staff", HEPING, None),
    "street_staff": (TENANT, "street_staff", STREET, None),
    "department_staff": (TENANT, "department_staff", "", "urban_management"),
    "mediator": (TENANT, "mediator", HEPING, None),
    "city_ops": (TENANT, "city_ops", "", None),
    "admin": (TENANT, "admin", "", None),
    "other_tenant_ops": ("nyc", "city_ops", "", None),  # another city on the same deployment
}
ROLES = list(GRANTS)
#: which of the cases A, B, C each role sees
SEES = {
    "grid_worker": {"A", "C"}, "community_staff": {"A", "C"}, "street_staff": {"A", "B", "C"},
    "department_staff": {"A", "B"}, "mediator": {"A", "C"}, "city_ops": {"A", "B", "C"}, "admin": {"A", "B", "C"},
    "other_tenant_ops": set(),
}
REPORTERS = {"grid_worker", "community_staff", "street_staff", "mediator", "city_ops", "admin"}
PATROLLERS = {"grid_worker", "community_staff", "street_staff", "city_ops", "admin"}
IMPORTERS = {"city_ops", "admin"}
VERIFIERS = {"grid_worker", "community_staff", "street_staff", "city_ops", "admin"}  # verify_pass/verify_fail


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture(scope="module")
def keys(stack, infra) -> dict[str, str]:
    """An API key per role of :data:`GRANTS`, issued in the stack's credential store."""
    from shared.platform.authstore import issue
    from shared.platform.db import make_engine

    async def main() -> dict[str, str]:
        engine = make_engine(infra.database_url)
        try:
            out = {}
            for name, (tenant, role, scope, dept) in GRANTS.items():
                issued = await issue(engine, kind="api_key", tenant=tenant, role=role, scope=scope, department=dept,
                                     label=f"access matrix {name}")
                out[name] = issued.secret
            return out
        finally:
            await engine.dispose()

    return asyncio.run(main())


def call(method: str, url: str, key: str | None, **kwargs) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}) or {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.request(method, url, headers=headers, timeout=30, **kwargs)


def view(stack, case_id: str) -> dict:
    resp = api.get(f"{stack.url('intake')}/v1/cases/{case_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_state(stack, case_id: str, state: str, timeout_s: float = 40) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        v = view(stack, case_id)
        if v["state"] == state:
            return v
        assert time.monotonic() < deadline, f"{case_id} stuck in {v['state']}"
        time.sleep(0.3)


def dispatched_cases(stack, keys, wanted: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Cases ``{name: (category, place)}`` reported, accepted and filed (dispatched) by the
    tenant's admin; their ids by name."""
    intake = stack.url("intake")
    out = {}
    for name, (category, place) in wanted.items():
        resp = call("POST", f"{intake}/v1/reports", keys["admin"], json={
            "tenant": TENANT, "category_code": category, "place_code": place, "channel": "phone",
            "description": f"access matrix case {name}", "reported_at": now_iso()})
        assert resp.status_code == 202, resp.text
        out[name] = resp.json()["case_id"]
    for case_id in out.values():
        wait_state(stack, case_id, "reported")
        resp = call("POST", f"{intake}/v1/cases/{case_id}/actions", keys["admin"], json={"action": "accept"})
        assert resp.status_code == 202, resp.text
        wait_state(stack, case_id, "accepted")
        resp = call("POST", f"{intake}/v1/cases/{case_id}/actions", keys["admin"], json={"action": "file"})
        assert resp.status_code == 202, resp.text
        wait_state(stack, case_id, "dispatched")
    return out


@pytest.fixture(scope="module")
def cases(stack, keys) -> dict[str, str]:
    """Cases A, B, C reported, accepted and filed (dispatched) by the tenant's admin. Tests only
    read them or take actions that are refused, so every test finds them dispatched."""
    out = dispatched_cases(stack, keys, {"A": ("100102", HEPING_GRID_1), "B": ("100102", XINGFU_GRID_2),
                                         "C": ("100110", HEPING_GRID_1)})
    assert view(stack, out["A"])["department"] == "urban_management"
    assert view(stack, out["C"])["department"] == "ecology_environment"
    # reporting has counted them (the figures below are compared within scopes)
    deadline = time.monotonic() + 60
    while True:
        listed = call("GET", f"{stack.url('reporting')}/v1/stats", keys["admin"],
                      params={"tenant": TENANT, "group_by": "status"}).json()
        if listed.get("total", {}).get("reported", 0) >= 3:
            facts = call("GET", f"{stack.url('reporting')}/v1/kpis", keys["admin"],
                         params={"tenant": TENANT, "department": "ecology_environment"}).json()
            if facts["total"]["accepted"] >= 1:
                break
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)
    return out


# --------------------------------------------------------------------------- intake writes


def report_body(place: str) -> dict:
    return {"tenant": TENANT, "category_code": "100102", "place_code": place, "description": "matrix write",
            "reported_at": now_iso()}


@pytest.mark.parametrize("role", ROLES)
def test_post_report(stack, keys, role):
    url = f"{stack.url('intake')}/v1/reports"
    inside = call("POST", url, keys[role], json=report_body(HEPING_GRID_1))
    assert inside.status_code == (202 if role in REPORTERS and role != "other_tenant_ops" else 403), inside.text
    elsewhere = call("POST", url, keys[role], json=report_body(XINGFU_GRID_2))
    may_xingfu = role in {"street_staff", "city_ops", "admin"}
    assert elsewhere.status_code == (202 if may_xingfu else 403), elsewhere.text
    if elsewhere.status_code == 403:
        assert elsewhere.json()["error"] == "forbidden"


@pytest.mark.parametrize("role", ROLES)
def test_post_patrol(stack, keys, role):
    body = {"tenant": TENANT, "place_code": HEPING_GRID_1, "kind": "routine", "points": 0, "started_at": now_iso()}
    resp = call("POST", f"{stack.url('intake')}/v1/patrols", keys[role], json=body)
    assert resp.status_code == (202 if role in PATROLLERS else 403), resp.text


@pytest.mark.parametrize("role", ROLES)
def test_post_import(stack, keys, role):
    line = json.dumps(report_body(HEPING_GRID_1) | {"source": "matrix", "source_id": f"m-{role}-{uuid.uuid4()}"},
                      ensure_ascii=False)
    resp = call("POST", f"{stack.url('intake')}/v1/imports", keys[role], params={"format": "jsonl", "tenant": TENANT},
                content=line.encode(), headers={"content-type": "application/octet-stream"})
    assert resp.status_code == (200 if role in IMPORTERS else 403), resp.text
    if resp.status_code == 200:
        assert resp.json()["accepted"] == 1


# --------------------------------------------------------------------------- intake reads and actions


@pytest.mark.parametrize("role", ROLES)
def test_get_case_and_audit(stack, keys, cases, role):
    for name, case_id in cases.items():
        for path in (f"/v1/cases/{case_id}", f"/v1/cases/{case_id}/audit"):
            resp = call("GET", stack.url("intake") + path, keys[role])
            expected = 200 if name in SEES[role] else 404
            assert resp.status_code == expected, (name, path, resp.text)
            if expected == 404:  # the same answer as for a case that does not exist
                missing = call("GET", stack.url("intake") + path.replace(case_id, str(uuid.uuid4())), keys[role])
                assert resp.json()["error"] == missing.json()["error"] == "not_found"


@pytest.mark.parametrize("role", ROLES)
def test_case_action_gates(stack, keys, cases, role):
    """verify_pass is illegal in state dispatched: a role allowed to verify gets 409 (dispatch's
    state check, waited for with Prefer: wait), one that is not gets 403, a case outside the
    scope 404; nothing changes."""
    for name, case_id in cases.items():
        resp = call("POST", f"{stack.url('intake')}/v1/cases/{case_id}/actions", keys[role],
                    json={"action": "verify_pass"}, headers={"Prefer": "wait=30"})
        if name not in SEES[role]:
            assert resp.status_code == 404, (name, resp.text)
        elif role in VERIFIERS:
            assert resp.status_code == 409 and resp.json()["state"] == "dispatched", (name, resp.text)
        else:
            assert resp.status_code == 403 and resp.json()["error"] == "forbidden", (name, resp.text)
        assert view(stack, case_id)["state"] == "dispatched"


@pytest.fixture(scope="module")
def action_ids(stack, keys, cases) -> dict[str, str]:
    """One action asked for on each case by the tenant's admin (a verify_pass, which dispatch
    refuses in state dispatched: nothing changes)."""
    out = {}
    for name, case_id in cases.items():
        resp = call("POST", f"{stack.url('intake')}/v1/cases/{case_id}/actions", keys["admin"],
                    json={"action": "verify_pass"})
        assert resp.status_code == 202, resp.text
        out[name] = resp.json()["action_id"]
    return out


@pytest.mark.parametrize("role", ROLES)
def test_get_action_status(stack, keys, cases, action_ids, role):
    """An action's status is seen by whoever sees its case (404 otherwise, as for the case)."""
    for name, case_id in cases.items():
        resp = call("GET", f"{stack.url('intake')}/v1/cases/{case_id}/actions/{action_ids[name]}", keys[role])
        expected = 200 if name in SEES[role] else 404
        assert resp.status_code == expected, (name, resp.text)
        if expected == 404:
            assert resp.json()["error"] == "not_found"
        else:
            assert resp.json()["action_id"] == action_ids[name] and resp.json()["action"] == "verify_pass"


def test_department_staff_sign_for_their_case_and_the_audit_names_them(stack, keys):
    """On a case of its own like A (urban_management, 和平 grid 1): A stays dispatched for the
    other tests."""
    intake = stack.url("intake")
    case_id = dispatched_cases(stack, keys, {"D": ("100102", HEPING_GRID_1)})["D"]
    assert view(stack, case_id)["department"] == "urban_management"
    wrong = call("POST", f"{intake}/v1/cases/{case_id}/actions", keys["grid_worker"], json={"action": "acknowledge"})
    assert wrong.status_code == 403
    not_theirs = call("POST", f"{intake}/v1/cases/{case_id}/actions", keys["department_staff"],
                      json={"action": "verify_pass"})
    assert not_theirs.status_code == 403 and not_theirs.json()["error"] == "forbidden", not_theirs.text
    ok = call("POST", f"{intake}/v1/cases/{case_id}/actions", keys["department_staff"],
              json={"action": "acknowledge", "actor_role": "someone_else"})
    assert ok.status_code == 202, ok.text
    wait_state(stack, case_id, "acknowledged")
    key_id = keys["department_staff"].split("_")[1]
    deadline = time.monotonic() + 30
    while True:
        entries = call("GET", f"{intake}/v1/cases/{case_id}/audit", keys["community_staff"]).json()["entries"]
        applied = [e for e in entries if e["action"] == "acknowledge" and e["outcome"] == "applied"]
        if applied:
            break
        assert time.monotonic() < deadline, entries
        time.sleep(0.3)
    # who (credential id, role, not the body's actor_role), what, from which state to which
    assert applied[0]["actor_ref"] == key_id and applied[0]["actor_role"] == "department_staff"
    assert (applied[0]["from_state"], applied[0]["to_state"]) == ("dispatched", "acknowledged")
    requested = [e for e in entries if e["action"] == "acknowledge" and e["outcome"] == "requested"]
    assert requested and requested[0]["actor_ref"] == key_id
    refused = [e for e in entries if e["outcome"] == "refused"]
    assert {(e["action"], e["actor_role"]) for e in refused} >= {("acknowledge", "grid_worker"),
                                                               ("verify_pass", "department_staff")}
    assert entries[0]["action"] == "report" and entries[0]["actor_role"] == "admin"
    assert [e["recorded_at"] for e in entries] == sorted(e["recorded_at"] for e in entries)


def test_probes_from_outside_the_scope_are_kept_in_the_audit(stack, keys, cases):
    """A grid worker of 和平 asks for an action on B (幸福): answered 404 like a case that does not
    exist, and kept in B's audit as refused."""
    intake = stack.url("intake")
    probe = call("POST", f"{intake}/v1/cases/{cases['B']}/actions", keys["grid_worker"], json={"action": "verify_pass"})
    assert probe.status_code == 404 and probe.json()["error"] == "not_found", probe.text
    entries = call("GET", f"{intake}/v1/cases/{cases['B']}/audit", keys["admin"]).json()["entries"]
    key_id = keys["grid_worker"].split("_")[1]
    probes = [e for e in entries if e["actor_ref"] == key_id]
    assert any(e["action"] == "verify_pass" for e in probes), entries
    assert all(e["outcome"] == "refused" and e["detail"].startswith("404") and e["actor_role"] == "grid_worker"
               for e in probes), probes


def test_idempotency_keys_and_source_ids_do_not_cross_scopes(stack, keys):
    """Two callers' equal Idempotency-Keys make two cases; a source id already used outside the
    caller's scope is refused without naming the case (found by a red-team run)."""
    url = f"{stack.url('intake')}/v1/reports"
    key = f"shared-key-{uuid.uuid4()}"
    body = report_body(HEPING_GRID_1)  # a retry sends the same body (same reported_at)
    heping = call("POST", url, keys["community_staff"], json=body, headers={"Idempotency-Key": key})
    street = call("POST", url, keys["street_staff"], json=report_body(XINGFU_GRID_2), headers={"Idempotency-Key": key})
    retried = call("POST", url, keys["community_staff"], json=body, headers={"Idempotency-Key": key})
    assert heping.status_code == street.status_code == retried.status_code == 202
    assert heping.json()["case_id"] != street.json()["case_id"]
    assert retried.json() == {**heping.json(), "duplicate": True}
    # a source id in 和平: the street (which sees 和平) gets the same case back as a duplicate
    heping_source = {"source": "12345", "source_id": f"HP-{uuid.uuid4()}"}
    first = call("POST", url, keys["community_staff"], json=report_body(HEPING_GRID_1) | heping_source)
    again = call("POST", url, keys["street_staff"], json=report_body(HEPING_GRID_1) | heping_source)
    assert first.status_code == again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}
    # a source id in 幸福, reused by 和平's staff: refused, and the case id is not disclosed
    xingfu_source = {"source": "12345", "source_id": f"XF-{uuid.uuid4()}"}
    xingfu = call("POST", url, keys["admin"], json=report_body(XINGFU_GRID_2) | xingfu_source)
    probe = call("POST", url, keys["community_staff"], json=report_body(HEPING_GRID_1) | xingfu_source)
    assert xingfu.status_code == 202
    assert probe.status_code == 409 and probe.json()["error"] == "duplicate_source"
    assert xingfu.json()["case_id"] not in probe.text


def test_probes_from_another_tenant_go_to_the_security_log(stack, keys, cases):
    """A refused action from another tenant's credential is kept in the security log that the
    admin reads (who, what, when), not in the audit trail of the case's tenant (issue 16)."""
    intake = stack.url("intake")
    before = datetime.now(UTC) - timedelta(seconds=5)
    probe = call("POST", f"{intake}/v1/cases/{cases['B']}/actions", keys["other_tenant_ops"],
                 json={"action": "cancel", "note": "probe"})
    assert probe.status_code == 404 and probe.json()["error"] == "not_found", probe.text
    key_id = keys["other_tenant_ops"].split("_")[1]
    entries = call("GET", f"{intake}/v1/cases/{cases['B']}/audit", keys["admin"]).json()["entries"]
    assert not [e for e in entries if e["actor_ref"] == key_id], entries
    log = call("GET", f"{intake}/v1/security-log", api.ADMIN_KEY, params={"limit": 1000})
    assert log.status_code == 200, log.text
    mine = [e for e in log.json()["entries"] if e["actor_ref"] == key_id and e["case_id"] == cases["B"]
            and e["method"] == "POST" and e["action"] == "cancel"]  # the gates test probes with verify_pass
    assert len(mine) == 1, log.json()
    entry = mine[0]
    assert (entry["actor_role"], entry["actor_tenant"], entry["target_tenant"], entry["action"], entry["answer"],
            entry["method"], entry["path"]) == ("city_ops", "nyc", TENANT, "cancel", 404, "POST",
                                                f"/v1/cases/{cases['B']}/actions")
    assert before <= datetime.fromisoformat(entry["recorded_at"]) <= datetime.now(UTC) + timedelta(seconds=5)
    # a read of the case from the other tenant is kept there too
    assert call("GET", f"{intake}/v1/cases/{cases['B']}", keys["other_tenant_ops"]).status_code == 404
    log = call("GET", f"{intake}/v1/security-log", api.ADMIN_KEY, params={"limit": 1000}).json()["entries"]
    assert any(e["actor_ref"] == key_id and e["method"] == "GET" and e["path"] == f"/v1/cases/{cases['B']}"
               and e["action"] is None for e in log), log[:5]
    # the victim tenant's admin reads it too; the prober's tenant's other roles do not
    own = call("GET", f"{intake}/v1/security-log", keys["admin"], params={"limit": 1000}).json()["entries"]
    assert any(e["entry_id"] == entry["entry_id"] for e in own)
    for role in ("city_ops", "other_tenant_ops", "street_staff"):
        assert call("GET", f"{intake}/v1/security-log", keys[role]).status_code == 403, role


def test_an_idempotency_key_reused_with_another_body_is_refused(stack, keys, cases):
    """The same Idempotency-Key with a different body: 422 ``idempotency_key_reused``, nothing
    applied; with the same body again: the first action (issue 16). verify_pass on the dispatched
    case B is refused by dispatch, so B's state stays as the other tests expect it."""
    url = f"{stack.url('intake')}/v1/cases/{cases['B']}/actions"
    key = f"reuse-{uuid.uuid4()}"
    first = call("POST", url, keys["city_ops"], json={"action": "verify_pass", "note": "first"},
                 headers={"Idempotency-Key": key})
    assert first.status_code in (202, 409), first.text
    other = call("POST", url, keys["city_ops"], json={"action": "verify_pass", "note": "second"},
                 headers={"Idempotency-Key": key})
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused", other.text
    again = call("POST", url, keys["city_ops"], json={"action": "verify_pass", "note": "first"},
                 headers={"Idempotency-Key": key})
    assert again.status_code in (202, 409) and again.json()["action_id"] == first.json()["action_id"], again.text
    entries = call("GET", f"{stack.url('intake')}/v1/cases/{cases['B']}/audit", keys["admin"]).json()["entries"]
    assert not [e for e in entries if e["detail"] == "second"], "the refused body was not applied or recorded"
    # the same for a report
    reports = f"{stack.url('intake')}/v1/reports"
    body = report_body(HEPING_GRID_1)
    made = call("POST", reports, keys["city_ops"], json=body, headers={"Idempotency-Key": key})
    changed = call("POST", reports, keys["city_ops"], json=body | {"description": "另一件事"},
                   headers={"Idempotency-Key": key})
    assert made.status_code == 202 and changed.status_code == 422, changed.text
    assert changed.json()["error"] == "idempotency_key_reused"
    assert view(stack, made.json()["case_id"])["report"]["description"] == body["description"]


def test_unknown_target_department_is_refused(stack, keys, cases):
    resp = call("POST", f"{stack.url('intake')}/v1/cases/{cases['B']}/actions", keys["city_ops"],
                json={"action": "transfer", "target_department": "no_such_department"})
    assert resp.status_code == 422 and resp.json()["error"] == "unknown_department"


def test_free_text_labels_stay_out_of_metrics(stack, keys):
    body = report_body(HEPING_GRID_1) | {"source": "张三 110101199003071234", "request_type": "13912345678"}
    resp = call("POST", f"{stack.url('intake')}/v1/reports", keys["admin"], json=body)
    assert resp.status_code == 202
    metrics = httpx.get(f"{stack.url('intake')}/metrics", timeout=10).text
    assert "110101199003071234" not in metrics and "张三" not in metrics
    assert 'source="other"' in metrics
    shown = view(stack, resp.json()["case_id"])["report"]
    assert "110101199003071234" not in json.dumps(shown, ensure_ascii=False)
    assert shown["request_type"] == "[电话]"


def test_audit_log_is_append_only(infra, cases):
    import asyncpg

    from shared.platform.db import libpq_url

    async def main() -> None:
        conn = await asyncpg.connect(libpq_url(infra.database_url))
        try:
            for statement in ("UPDATE intake.audit_log SET detail = 'x'", "DELETE FROM intake.audit_log",
                              "TRUNCATE intake.audit_log"):
                with pytest.raises(asyncpg.RaiseError, match="append-only"):
                    await conn.execute(statement)
            assert await conn.fetchval("SELECT count(*) FROM intake.audit_log WHERE case_id = $1",
                                       uuid.UUID(cases["B"])) >= 3
        finally:
            await conn.close()

    asyncio.run(main())


# --------------------------------------------------------------------------- Open311


@pytest.mark.parametrize("role", ROLES)
def test_open311_reads_and_posts(stack, keys, cases, role):
    base = f"{stack.url('intake')}/open311/v2"
    listed = call("GET", f"{base}/requests.json", None,
                  params={"jurisdiction_id": TENANT, "api_key": keys[role], "service_request_id": ",".join(cases.values())})
    if role == "other_tenant_ops":
        assert listed.status_code == 404
    else:
        assert listed.status_code == 200, listed.text
        ids = {r["service_request_id"] for r in listed.json()}
        assert ids == {cases[n] for n in SEES[role]}
    for name, case_id in cases.items():
        one = call("GET", f"{base}/requests/{case_id}.json", None, params={"jurisdiction_id": TENANT, "api_key": keys[role]})
        assert one.status_code == (200 if name in SEES[role] else 404), (name, one.text)
    posted = call("POST", f"{base}/requests.json", None, data={
        "api_key": keys[role], "jurisdiction_id": TENANT, "service_code": "100102", "address_id": HEPING_GRID_1,
        "description": "open311 matrix"})
    assert posted.status_code == (200 if role in REPORTERS and role != "other_tenant_ops" else 403), posted.text
    # demo-grid's request reads are public (deploy/tenants/demo-grid.yaml open311_public_reads); nyc's are not
    assert call("GET", f"{base}/requests.json", None, params={"jurisdiction_id": TENANT}).status_code == 200
    assert call("GET", f"{base}/requests.json", None, params={"jurisdiction_id": "nyc"}).status_code == 403


# --------------------------------------------------------------------------- reporting


REPORTING_PATHS = [
        ("/v1/stats", {"group_by": "status"}),
        ("/v1/kpis", {}),
        ("/v1/kpis.csv", {}),
        ("/v1/kpis.xlsx", {}),
        ("/v1/cases/overdue", {}),
        ("/v1/cases/supervised", {"include_closed": "true"}),
        ("/v1/summary", {}),
        ("/v1/patrols", {}),
        ("/v1/progress", {}),
]


@pytest.mark.parametrize("role", ROLES)
def test_reporting_endpoints(stack, keys, cases, role):
    reporting = stack.url("reporting")
    for path, params in REPORTING_PATHS:
        resp = call("GET", reporting + path, keys[role], params={"tenant": TENANT, **params})
        assert resp.status_code == (404 if role == "other_tenant_ops" else 200), (path, resp.text)
    doc = call("GET", f"{reporting}/dashboard/tenants.json", keys[role]).json()
    assert [t["tenant"] for t in doc["tenants"]] == [GRANTS[role][0]]
    assert doc["opening"] == GRANTS[role][0]  # the page opens on the caller's own tenant
    assert doc["caller"]["role"] == GRANTS[role][1] and doc["caller"]["scope"] == GRANTS[role][2]


#: the admin query each role's unfiltered query must equal (its scope made explicit)
SCOPE_AS_FILTER = {
    "grid_worker": {"place_prefix": HEPING_GRID_1}, "community_staff": {"place_prefix": HEPING},
    "street_staff": {"place_prefix": STREET}, "department_staff": {"department": "urban_management"},
    "mediator": {"place_prefix": HEPING}, "city_ops": {}, "admin": {},
}


def scope_figures(reporting: str, key: str, scope_filter: dict) -> dict:
    """The figures of the role-scope comparison, as ``key`` sees them with ``scope_filter``
    added: the KPI total and rows by category, the statistics total by place, the work summary's
    figures and the KPI CSV export."""
    q = {"tenant": TENANT} | scope_filter

    def get(path: str, **params) -> httpx.Response:
        resp = call("GET", reporting + path, key, params=q | params)
        assert resp.status_code == 200, (path, resp.text)
        return resp

    kpis = get("/v1/kpis", group_by="category").json()
    return {"accepted": kpis["total"]["accepted"], "kpi_rows": [r["key"] for r in kpis["rows"]],
            "stats_total": get("/v1/stats", group_by="place").json()["total"],
            "summary": get("/v1/summary").json()["figures"], "csv": get("/v1/kpis.csv").text}


@pytest.mark.parametrize("role", list(SCOPE_AS_FILTER))
def test_reporting_figures_are_those_of_the_scope(stack, keys, cases, role):
    """A role's unfiltered figures equal the admin's with the role's scope as a filter. Other tests
    keep reporting cases while this one runs, so the role's figures are compared with the admin's
    only when the admin's are the same just before and just after them (counting had settled)."""
    reporting = stack.url("reporting")
    q = {"tenant": TENANT}
    deadline = time.monotonic() + 60
    while True:
        before = scope_figures(reporting, keys["admin"], SCOPE_AS_FILTER[role])
        mine = scope_figures(reporting, keys[role], {})
        theirs = scope_figures(reporting, keys["admin"], SCOPE_AS_FILTER[role])
        if before == theirs:
            break
        assert time.monotonic() < deadline, "reporting's figures kept changing for 60 s"
        time.sleep(0.5)
    assert mine["accepted"] == theirs["accepted"] > 0
    assert mine["kpi_rows"] == theirs["kpi_rows"]
    assert mine["stats_total"] == theirs["stats_total"]
    assert mine["summary"] == theirs["summary"]
    assert mine["csv"] == theirs["csv"]
    xlsx = call("GET", f"{reporting}/v1/kpis.xlsx", keys[role], params=q).content
    assert zipfile.ZipFile(io.BytesIO(xlsx)).testzip() is None
    for kind in ("overdue", "supervised"):
        listed = call("GET", f"{reporting}/v1/cases/{kind}", keys[role], params=q | {"include_closed": "true"}).json()
        prefix = SCOPE_AS_FILTER[role].get("place_prefix", "")
        assert all(c["place"].startswith(prefix) for c in listed["cases"])
        if role == "department_staff":
            assert all(c["department"] == "urban_management" for c in listed["cases"])


def test_asking_outside_the_scope_is_404(stack, keys, cases):
    reporting = stack.url("reporting")
    for path in ("/v1/kpis", "/v1/stats", "/v1/summary", "/v1/cases/overdue", "/v1/patrols"):
        resp = call("GET", reporting + path, keys["community_staff"], params={"tenant": TENANT, "place_prefix": XINGFU})
        assert resp.status_code == 404, (path, resp.text)
        assert call("GET", reporting + path, keys["community_staff"],
                    params={"tenant": TENANT, "place_prefix": HEPING_GRID_1}).status_code == 200
    for path in ("/v1/kpis", "/v1/stats"):
        resp = call("GET", reporting + path, keys["department_staff"],
                    params={"tenant": TENANT, "department": "ecology_environment"})
        assert resp.status_code == 404
    for path in ("/v1/kpis", "/v1/stats", "/v1/summary", "/v1/cases/overdue", "/v1/cases/supervised", "/v1/patrols"):
        # another city's tenant answers exactly like one that does not exist
        theirs = call("GET", reporting + path, keys["other_tenant_ops"], params={"tenant": TENANT})
        absent = call("GET", reporting + path, keys["other_tenant_ops"], params={"tenant": "no-such-tenant"})
        assert theirs.status_code == absent.status_code == 404, path
        assert theirs.json()["error"] == absent.json()["error"] and set(theirs.json()) == set(absent.json()), path


# --------------------------------------------------------------------------- credentials


ENDPOINTS = [
    ("intake", "POST", "/v1/reports"), ("intake", "POST", "/v1/patrols"), ("intake", "POST", "/v1/imports"),
    ("intake", "GET", "/v1/cases/{id}"), ("intake", "GET", "/v1/cases/{id}/audit"),
    ("intake", "POST", "/v1/cases/{id}/actions"), ("intake", "GET", "/v1/cases/{id}/actions/{id}"),
    ("reporting", "GET", "/v1/stats"), ("reporting", "GET", "/v1/kpis"), ("reporting", "GET", "/v1/kpis.csv"),
    ("reporting", "GET", "/v1/kpis.xlsx"), ("reporting", "GET", "/v1/cases/overdue"),
    ("reporting", "GET", "/v1/cases/supervised"), ("reporting", "GET", "/v1/summary"),
    ("reporting", "GET", "/v1/patrols"), ("reporting", "GET", "/v1/progress"),
    ("reporting", "GET", "/dashboard/tenants.json"),
]


@pytest.mark.parametrize("service, method, path", ENDPOINTS)
@pytest.mark.parametrize("credential", [None, "gck_k0000000000000000_not-a-real-secret-at-all", "garbage"])
def test_no_valid_credential_is_401(stack, cases, service, method, path, credential):
    url = stack.url(service) + path.replace("{id}", cases["A"])
    resp = call(method, url, credential, params={"tenant": TENANT})
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "unauthenticated" and resp.headers["www-authenticate"].startswith("Bearer")


def test_revoked_and_expired_credentials_stop_working(stack, infra, keys):
    from shared.platform.authstore import issue, revoke
    from shared.platform.db import make_engine

    async def issue_two():
        engine = make_engine(infra.database_url)
        try:
            live = await issue(engine, kind="api_key", tenant=TENANT, role="city_ops", label="revoke me")
            short = await issue(engine, kind="api_key", tenant=TENANT, role="city_ops", label="expires",
                                ttl=timedelta(seconds=2))
            return live, short
        finally:
            await engine.dispose()

    live, short = asyncio.run(issue_two())
    url = f"{stack.url('reporting')}/v1/progress"
    assert call("GET", url, live.secret).status_code == 200
    assert call("GET", url, short.secret).status_code == 200

    async def revoke_it():
        engine = make_engine(infra.database_url)
        try:
            assert await revoke(engine, live.credential_id)
        finally:
            await engine.dispose()

    asyncio.run(revoke_it())
    deadline = time.monotonic() + 15  # GRIDCASE_AUTH_CACHE_SECONDS (5 s) plus slack
    while call("GET", url, live.secret).status_code != 401 or call("GET", url, short.secret).status_code != 401:
        assert time.monotonic() < deadline, "a revoked or expired key still works"
        time.sleep(0.5)
    body = call("GET", url, live.secret).json()
    assert body["error"] == "unauthenticated"


def test_jwt_bearer_tokens(stack, infra, keys):
    """A token issued like `gridcase auth issue-token` works with the stack's GRIDCASE_JWT_SECRET;
    one signed with another secret, or with claims the store did not issue, does not."""
    import os

    from shared.platform.auth import Principal
    from shared.platform.authstore import encode_jwt, issue
    from shared.platform.db import make_engine

    secret = stack.env.get("GRIDCASE_JWT_SECRET") or os.environ["GRIDCASE_JWT_SECRET"]

    async def main():
        engine = make_engine(infra.database_url)
        try:
            return await issue(engine, kind="jwt", tenant=TENANT, role="community_staff", scope=HEPING,
                               ttl=timedelta(hours=1), jwt_secret=secret, label="jwt matrix")
        finally:
            await engine.dispose()

    token = asyncio.run(main())
    url = f"{stack.url('reporting')}/v1/kpis"
    assert call("GET", url, token.secret, params={"tenant": TENANT}).status_code == 200
    assert call("GET", url, token.secret, params={"tenant": TENANT, "place_prefix": XINGFU}).status_code == 404
    now = datetime.now(UTC)
    # the same jti with the role raised: the signature is valid, the store refuses the claims
    raised = encode_jwt(Principal(token.credential_id, TENANT, "city_ops", credential="jwt"), secret, now,
                        now + timedelta(hours=1))
    assert call("GET", url, raised, params={"tenant": TENANT}).status_code == 401
    forged = encode_jwt(token.principal, "another-secret-that-is-long-enough-to-sign", now, now + timedelta(hours=1))
    assert call("GET", url, forged, params={"tenant": TENANT}).status_code == 401
    # a token naming an API key's id (even signed with the real secret) is not that key
    as_key = encode_jwt(Principal(keys["city_ops"].split("_")[1], TENANT, "city_ops", credential="jwt"), secret, now,
                        now + timedelta(hours=1))
    assert call("GET", url, as_key, params={"tenant": TENANT}).status_code == 401


def test_health_and_metrics_need_no_credential(stack):
    for service in ("intake", "dispatch", "reporting"):
        assert httpx.get(stack.url(service) + "/health", timeout=10).status_code == 200
        assert httpx.get(stack.url(service) + "/metrics", timeout=10).status_code == 200


#: ``(service, path, answer to a key within its limit, second key)`` of the rate-limit test: a
#: read each service answers (intake: a case that does not exist, 404).
RATE_LIMITED = [
    ("intake", f"/v1/cases/{uuid.uuid4()}", 404, "street_staff"),
    ("reporting", f"/v1/kpis?tenant={TENANT}", 200, "street_staff"),
    ("dispatch", f"/v1/progress?tenant={TENANT}", 200, "admin"),  # progress: city ops and admin only
]


@pytest.mark.parametrize(("service", "path", "answer", "other"), RATE_LIMITED, ids=[r[0] for r in RATE_LIMITED])
def test_rate_limit_per_key(stack, infra, keys, tmp_path_factory, service, path, answer, other):
    """A service limited to 5 requests a minute per key (``<SERVICE>_RATE_LIMIT``) answers the 6th
    with 429 and Retry-After; wrong credentials are limited per client address; another key is not
    affected (issue 6 item 6)."""
    from gridcase.runtime import Stack

    own = Stack(tmp_path_factory.mktemp(f"ratelimit-{service}"), fresh=False, infra=infra,
                env={f"{service.upper()}_RATE_LIMIT": "5/minute"})
    own.start_service(service)
    try:
        own.wait_healthy(service)
        url = own.url(service) + path
        answers = [call("GET", url, keys["city_ops"]).status_code for _ in range(6)]
        assert answers == [answer] * 5 + [429]
        guesses = [call("GET", url, f"gck_k{i:016x}_guessed-secret-guessed-secret").status_code for i in range(6)]
        assert guesses == [401] * 5 + [429]  # wrong credentials are limited per client address
        limited = call("GET", url, keys["city_ops"])
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert call("GET", url, keys[other]).status_code == answer  # per key
    finally:
        own.stop()
