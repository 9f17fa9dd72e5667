"""shared/platform/http.py: a body that is not JSON answers 400 ``invalid_json`` with where the
parser stopped (line, column, character position) and why, in every service (the service kit
installs these handlers for intake, dispatch and reporting)."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from shared.platform.http import install_error_handlers, invalid_json


class Thing(BaseModel):
    name: str


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def post_thing(thing: Thing) -> dict:
        return {"name": thing.name}

    return app


async def post(body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://svc.test") as client:
        return await client.post("/things", content=body, headers={"content-type": "application/json"})


async def test_a_missing_comma_names_line_column_and_reason():
    body = b'{\n  "name": "a"\n  "extra": 1\n}'
    resp = await post(body)
    assert resp.status_code == 400
    answer = resp.json()
    # The parser stops at the quote opening "extra": line 3, after two spaces, so column 3;
    # its offset: 2 ("{\n") + 14 ('  "name": "a"\n') + 2 = 18.
    assert answer["error"] == "invalid_json"
    assert (answer["line"], answer["column"], answer["position"]) == (3, 3, 18)
    assert answer["reason"] == "Expecting ',' delimiter"
    assert "line 3, column 3" in answer["message"]
    assert "field" not in answer  # the offset is not a field


async def test_a_truncated_body_points_at_its_end():
    resp = await post(b'{"name": ')
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


async def test_valid_json_of_the_wrong_shape_is_still_a_validation_error():
    resp = await post(b'{"name": 5}')
    assert resp.status_code == 422 and resp.json()["error"] == "validation_failed"
    assert (await post(b'{"name": "ok"}')).json() == {"name": "ok"}
