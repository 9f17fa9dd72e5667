"""The answers every operation of a service can give, written into its OpenAPI (issue 16).

A route documents its own answers (``responses=`` on the decorator: 202, 409, …). The answers that
come from the shared platform rather than from the route are added here to every operation they
apply to, so ``/openapi.json`` lists every status code a service answers (checked by
tests/integration/test_openapi_conformance.py with schemathesis' ``status_code_conformance``):

- every ``/v1`` and ``/open311`` operation: 401 (no or an unknown credential,
  shared/platform/authhttp.py), 403 (the role may not), 404 (outside the credential's scope, an
  unknown tenant or case: nothing tells that it exists), 422 (the request's shape), 429 (the rate
  limit, with ``Retry-After``), 503 (the database is away, with ``Retry-After``: shared/platform/http.py);
- an operation with a request body: 400 (a body that cannot be parsed at all);
- Open311's ``…{fmt}`` operations: 400 (an unknown format: ``.xml`` or ``.json`` only).

The error body is the one of shared/platform/http.py (schema ``ErrorBody``) on ``/v1``, the
GeoReport v2 error list under ``/open311``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable code, e.g. unknown_tenant"},
        "message": {"type": "string"},
        "field": {"type": "string", "description": "the dotted name of the field at fault"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}

#: status → description of the answers of the shared platform.
PLATFORM_ANSWERS = {
    401: "未认证 no credential, or an unknown, expired or revoked one",
    403: "无权限 the credential's role may not do this",
    404: "不存在 not found, or outside the credential's tenant and place scope (unknown tenant, case, action)",
    422: "请求无效 the request's parameters or body are invalid",
    429: "请求过多 the credential's rate limit is used up; retry after `Retry-After` seconds",
    503: "数据库暂时不可用 the database is unavailable; nothing was applied; retry after `Retry-After` seconds",
}
BAD_BODY = "请求体无法解析 the body cannot be parsed (not JSON, not a form)"
BAD_FORMAT = "格式未知 unknown format: `.xml` or `.json`"
METHODS = ("get", "put", "post", "delete", "patch")


def document_platform_answers(app: FastAPI) -> None:
    """Make ``app.openapi()`` add the platform's answers (module docstring) to each operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            add_platform_answers(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_platform_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the platform's answers to every operation of ``schema`` (in place; also returned)."""
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault("ErrorBody", ERROR_SCHEMA)
    for path, item in schema.get("paths", {}).items():
        open311 = path.startswith("/open311")
        if not (open311 or path.startswith("/v1")):
            continue
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            answers = dict(PLATFORM_ANSWERS)
            if "requestBody" in operation:
                answers[400] = BAD_BODY
            if open311 and "{fmt}" in path:
                answers[400] = BAD_FORMAT if 400 not in answers else f"{BAD_FORMAT}; {BAD_BODY}"
            for status, description in answers.items():
                if str(status) in responses:
                    continue
                answer: dict[str, Any] = {"description": description}
                if not open311:
                    answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                responses[str(status)] = answer
    return schema
