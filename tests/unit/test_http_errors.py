"""shared/platform/http.py: a body that is not JSON answers 400 ``invalid_json`` with where the
parser stopped (line, column, character position) and why, in every service (the service kit
installs these handlers for intake, dispatch and reporting)."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.platform.http import install_error_handlers, invalid_json


class Thing(BaseModel):
    name: str


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def post_thing(thing: Thing) -> dict:
        return {"name": thing.name}

    return TestClient(app)


def post(client: TestClient, body: bytes):
    return client.post("/things", content=body, headers={"content-type": "application/json"})


def test_a_missing_comma_names_line_column_and_reason(client):
    body = b'{\n  "name": "a"\n  "extra": 1\n}'
    resp = post(client, body)
    assert resp.status_code == 400
    answer = resp.json()
    # The parser stops at the quote opening "extra": line 3, after two spaces, so column 3;
    # its offset: 2 ("{\n") + 14 ('  "name": "a"\n') + 2 = 18.
    assert answer["error"] == "invalid_json"
    assert (answer["line"], answer["column"], answer["position"]) == (3, 3, 18)
    assert answer["reason"] == "Expecting ',' delimiter"
    assert "line 3, column 3" in answer["message"]
    assert "field" not in answer  # the offset is not a field


def test_a_truncated_body_points_at_its_end(client):
    resp = post(client, b'{"name": ')
    answer = resp.json()
    # 9 characters, nothing after the colon: the parser expects a value at offset 9, line 1 column 10
    assert resp.status_code == 400
    assert (answer["line"], answer["column"], answer["position"], answer["reason"]) == (1, 10, 9, "Expecting value")


def test_positions_agree_with_the_json_module():
    text = '[1,\n2,\n\n  x]'
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(text)
    answer = json.loads(invalid_json(text, info.value.pos, info.value.msg).body)
    assert (answer["line"], answer["column"], answer["position"]) == (info.value.lineno, info.value.colno, info.value.pos)


def test_valid_json_of_the_wrong_shape_is_still_a_validation_error(client):
    resp = post(client, b'{"name": 5}')
    assert resp.status_code == 422 and resp.json()["error"] == "validation_failed"
    assert post(client, b'{"name": "ok"}').json() == {"name": "ok"}
