"""Every status code a service answers is documented in its OpenAPI (issue 16).

schemathesis 4 generates requests for every operation of intake's, dispatch's and reporting's
``/openapi.json`` (the session ``stack``), positive and negative, sends them with the admin key and
checks ``status_code_conformance`` (the answer's status is among the operation's documented
responses) and ``not_a_server_error``. Failures are collected per operation and printed
(``pytest -s``), then the test fails if there is any.

Each operation is fuzzed three times: positive, negative, and positive with tenant ``demo-grid``
in the query and an existing case and action in the path (deeper answers than 404).
Writes go to tenant ``demo-grid`` only (tests/integration/test_fuzz_intake.py ``redirect_tenant``);
dispatch's test clock (``POST /v1/test/clock/advance``, on in the test stack) is left out: moving
it would change the deadlines other tests read.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests import api
from tests.integration.test_fuzz_intake import (
    AUTH,
    PLACES,
    TENANT,
    redirect_tenant,
    send,
)

pytestmark = pytest.mark.integration

#: examples per operation and generation mode
EXAMPLES = 25
SKIPPED = {"POST /v1/test/clock/advance"}


@dataclass
class Tally:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def fuzz(operation, base: str, tally: Tally, mode, *, known: dict | None = None) -> None:
    """Send ``EXAMPLES`` generated cases of ``operation``; ``known``: path parameters to use and a
    tenant (``demo-grid``) to put in the query, so the cases get past 404 to the deeper answers."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error, status_code_conformance

    path_parameters = {k: v for k, v in (known or {}).items() if "{" + k + "}" in operation.path} or None
    strategy = st.tuples(operation.as_strategy(generation_mode=mode, path_parameters=path_parameters),
                         st.sampled_from(PLACES))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(drawn=strategy)
    def run(drawn) -> None:
        case, place = drawn
        if isinstance(case.body, dict) and "place_code" in case.body and mode.value == "positive":
            case.body["tenant"], case.body["place_code"] = TENANT, place
        if known and isinstance(case.query, dict) and "tenant" in case.query:
            case.query["tenant"] = TENANT
        redirect_tenant(case)
        tally.cases += 1
        response = send(case, base)
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        except BaseExceptionGroup:  # schemathesis FailureGroup (a BaseExceptionGroup)
            body = response.text[:160].replace("\n", " ")
            tally.failures.append(f"{response.status_code} {body} ({case.as_curl_command()[:400]})")

    with contextlib.suppress(Unsatisfiable):  # e.g. no negative value exists for a free string path parameter
        run()


@pytest.fixture(scope="module")
def known_case(stack) -> dict:
    """A case of demo-grid and an action on it, for the operations with path parameters."""
    intake = stack.url("intake")
    resp = api.post(f"{intake}/v1/reports", timeout=30, json={
        "tenant": TENANT, "category_code": "100102", "place_code": PLACES[-1], "channel": "phone",
        "reported_at": "2026-11-02T09:00:00+08:00", "description": "OpenAPI 一致性测试 conformance target"})
    assert resp.status_code == 202, resp.text
    case_id = resp.json()["case_id"]
    action = api.post(f"{intake}/v1/cases/{case_id}/actions", json={"action": "accept", "note": "受理"}, timeout=30)
    assert action.status_code == 202, action.text
    return {"case_id": case_id, "action_id": action.json()["action_id"]}


@pytest.mark.parametrize("service", ["intake", "dispatch", "reporting"])
def test_every_answered_status_is_documented(stack, service, known_case):
    import schemathesis
    from schemathesis import GenerationMode

    base = stack.url(service)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", headers=dict(AUTH), timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    tallies: dict[str, Tally] = {}
    for op in operations:
        if op.label in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(op, base, tallies.setdefault(f"{op.label} [{mode.value}]", Tally()), mode)
        fuzz(op, base, tallies.setdefault(f"{op.label} [positive, demo-grid]", Tally()), GenerationMode.POSITIVE,
             known=known_case)
    total = sum(t.cases for t in tallies.values())
    failures = [f"{name}: {f}" for name, t in tallies.items() for f in t.failures]
    print(f"\n{service}: schemathesis {schemathesis.SCHEMATHESIS_VERSION}, {total} cases, {len(failures)} failures")
    for name, t in tallies.items():
        print(f"  {name:<60} {t.cases:>4} cases {len(t.failures):>3} failures  {dict(sorted(t.statuses.items()))}")
    distinct = sorted({f[:600] for f in failures})
    for f in distinct[:60]:
        print("  FAIL", f)
    assert total >= 10 * len(tallies) // 2
    assert not failures, f"{len(failures)} of {total} cases answered undocumented statuses:\n" + "\n".join(distinct[:20])
