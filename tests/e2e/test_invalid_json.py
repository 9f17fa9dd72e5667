"""A body that is not JSON, sent to the running services: 400 ``invalid_json`` with where and why
(shared/platform/http.py, installed in every service by the service kit). intake is the service
that takes JSON bodies; dispatch's and reporting's routes take none."""

from __future__ import annotations

import uuid

import pytest

from tests import api

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path", ["/v1/reports", f"/v1/cases/{uuid.UUID(int=1)}/actions", "/v1/patrols"])
def test_intake_names_line_column_and_reason(stack, path):
    body = '{\n  "tenant": "demo-grid",\n  "category_code": "100401"\n  "place_code": "990102001002001"\n}'
    resp = api.post(stack.url("intake") + path, content=body.encode(), headers={"content-type": "application/json"},
                    timeout=10)
    assert resp.status_code == 400, resp.text
    answer = resp.json()
    # The missing comma: the parser stops at the quote that opens "place_code", line 4, column 3;
    # offset 2 + 25 + 28 + 2 = 57: '{\n', '  "tenant": "demo-grid",\n' (2 + 8 + 2 + 11 + 1 + 1),
    # '  "category_code": "100401"\n' (2 + 15 + 2 + 8 + 1), then the two spaces of line 4
    assert answer["error"] == "invalid_json"
    assert (answer["line"], answer["column"], answer["position"]) == (4, 3, 57)
    assert answer["reason"] == "Expecting ',' delimiter" and "field" not in answer
