"""Open311 GeoReport v2 on intake, under ``/open311/v2/`` (issue 7 items 1-2): the routes.

Spec: open311.github.io ``GeoReport_v2/index.md`` ("the spec" below; digest in
``docs/architecture.md`` §8) and ``Service_Discovery.md``. Every resource exists in both
formats, chosen by the URL suffix: ``.xml`` and ``.json`` (wire.py).

| method | path | spec section |
|---|---|---|
| GET | ``discovery.{fmt}`` | Service Discovery |
| GET | ``services.{fmt}`` | GET Service List |
| GET | ``services/{service_code}.{fmt}`` | GET Service Definition |
| POST | ``requests.{fmt}`` (form-encoded, ``api_key``) | POST Service Request |
| GET | ``tokens/{token}.{fmt}`` (``api_key`` †) | GET service_request_id from a token |
| GET | ``requests.{fmt}`` (``api_key`` †; + extension ``page``/``page_size``) | GET Service Requests |
| GET | ``requests/{service_request_id}.{fmt}`` (``api_key`` †) | GET Service Request |

Access (issue 6, issue 17): POST needs an ``api_key`` (or the API's ``Authorization: Bearer``),
resolved by the credential store; a POST outside the key's area or by a role that does not report
is 403 (shared/platform/auth.py). † The request and token reads are public, as in the spec, for a
tenant whose file sets ``open311_public_reads: true`` (the demo tenants): a read without any
credential sees the whole jurisdiction, in the spec's fields only, masked, limited per client
address. Otherwise, and whenever a credential is sent, they need a valid one and show only the
cases inside its place scope (and department); anything else is 404.

``jurisdiction_id`` may be left out when intake serves one tenant (a single-jurisdiction
deployment, ``GRIDCASE_TENANTS_DIR`` with one file); dates in queries are the spec's W3C datetimes
with a timezone (a bare date is refused with 400, wire.py ``parse_w3c``).

Errors use the spec's body (``errors``/``error``/``code``/``description``; in JSON an array of
``{code, description}``) with HTTP 400 (bad or missing parameter), 403 (missing or invalid
``api_key``), 404 (unknown jurisdiction, service, request, token or resource). ``code`` is the
HTTP status. An unexpected failure answers 500 with the same body (see :class:`Open311Route`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.intake.dependencies import intake_of
from services.intake.domain.reports import case_id_for
from services.intake.domain.taxonomy import taxonomy
from services.intake.open311.catalogue import (
    check_attributes,
    known_category,
    service_definition,
    service_entry,
)
from services.intake.open311.queries import (
    RequestQuery,
    fetch_rows,
    parse_request_query,
)
from services.intake.open311.translate import (
    SOURCE,
    posted_attributes,
    request_record,
    resolve_place,
    resolve_tenant,
    service_notice,
    to_report,
)
from services.intake.open311.wire import (
    Open311Error,
    bad_request,
    check_format,
    error_answer,
    format_of,
    not_found,
    param,
    render,
    w3c,
)
from shared.platform.auth import REPORT, Principal

log = logging.getLogger("gridcase.intake.open311")

PREFIX = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MAX_BODY_BYTES = 64 * 1024


async def open311_caller(request: Request, api_key: str | None) -> Principal:
    """The caller of an Open311 request: the spec's ``api_key`` argument, or the same credentials
    as the rest of the API (``Authorization: Bearer``, ``X-API-Key``), resolved through the
    credential store (shared/platform/authstore.py; keys are issued with ``gridcase auth issue-key``).

    Raises:
        Open311Error: 403 when missing or not valid (spec: Errors, "403 - Missing or Invalid API
            Key"); 429 over the key's rate limit (``Retry-After`` set).
    """
    try:
        return await request.app.state.auth.principal(request, api_key)
    except StarletteHTTPException as exc:
        if exc.status_code == 401:
            missing = not (api_key or request.headers.get("authorization") or request.headers.get("x-api-key"))
            raise Open311Error(403, "api_key was not provided -- can't proceed" if missing
                               else "invalid api_key received -- can't proceed") from None
        raise


class Open311Route(APIRoute):
    """Route class of :data:`router`: any exception of an Open311 handler (including FastAPI's
    request validation and HTTP errors) is answered in the spec's error format, in the format of
    the URL, so the rest of the API keeps shared/platform/http.py's body."""

    def get_route_handler(self) -> Callable:
        """Wrap FastAPI's handler: :class:`Open311Error` → its answer; validation → 400; HTTP
        errors → their status (4xx other than 403/404 → 400); anything else → logged, 500."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            """Run the route; answer any failure in the spec's error format."""
            try:
                return await handler(request)
            except Open311Error as exc:
                return error_answer(format_of(request), exc)
            except RequestValidationError as exc:
                fields = [".".join(str(p) for p in e.get("loc", ()) if p not in ("path", "query", "body"))
                          for e in exc.errors()[:10]]
                return error_answer(format_of(request), bad_request(f"invalid parameter: {', '.join(fields) or 'request'}"))
            except StarletteHTTPException as exc:
                status = exc.status_code if exc.status_code in (403, 404, 429) else 400
                detail = exc.detail if isinstance(exc.detail, str) else (
                    exc.detail.get("message") if isinstance(exc.detail, dict) and exc.detail.get("message")
                    else "the request could not be fulfilled")
                answer = error_answer(format_of(request), Open311Error(status, detail))
                if exc.status_code == 429 and exc.headers:
                    answer.headers.update(exc.headers)
                return answer
            except Exception as exc:  # noqa: BLE001 - answered in the spec's format, logged without request data
                log.error("open311: unhandled %s on %s %s", type(exc).__name__, request.method,
                          request.scope.get("route").path if request.scope.get("route") else "?", exc_info=exc)
                return error_answer(format_of(request), Open311Error(
                    500, "general service error: the request could not be completed; it was not accepted"))

        return handle


router = APIRouter(prefix=PREFIX, route_class=Open311Route, tags=["open311"])


@router.get("/discovery.{fmt}")
async def discovery(request: Request, fmt: str) -> Response:
    """Service Discovery (``Service_Discovery.md``): ``changeset`` (taxonomy file time),
    ``contact``, ``key_service``, ``endpoints[endpoint{specification, url, changeset, type,
    formats[format]}]``. One production endpoint, formats ``text/xml`` and ``application/json``.
    No ``jurisdiction_id`` needed; ``contact`` lists the jurisdiction ids."""
    check_format(fmt)
    svc = intake_of(request)
    changeset = w3c(datetime.fromtimestamp(Path(taxonomy().path).stat().st_mtime, UTC), UTC)
    url = str(request.base_url).rstrip("/") + PREFIX
    body = {
        "changeset": changeset,
        "contact": "网格化服务管理指挥中心 Grid-management operations centre. jurisdiction_id: "
                   + ", ".join(sorted(svc.tenants)),
        "key_service": "api_key 由指挥中心分配 API keys are issued by the operations centre "
                       "(gridcase auth issue-key); request reads are public where the jurisdiction allows it ("
                       + (", ".join(sorted(t for t, c in svc.tenants.items() if c.open311_public_reads)) or "none")
                       + "), else they need one too (place-scoped access)",
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": url,
            "changeset": changeset,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    }
    return render(fmt, "discovery", body)


@router.get("/services.{fmt}")
async def services_list(request: Request, fmt: str) -> Response:
    """GET Service List: every taxonomy category as a ``service`` (:func:`service_entry`).

    Errors: 400 without ``jurisdiction_id`` (several tenants), 404 unknown jurisdiction."""
    check_format(fmt)
    resolve_tenant(intake_of(request).tenants, param(request.query_params, "jurisdiction_id"))
    return render(fmt, "services", [service_entry(c) for c in taxonomy().categories])


@router.get("/services/{service_code}.{fmt}")
async def services_definition(request: Request, service_code: str, fmt: str) -> Response:
    """GET Service Definition of ``service_code`` (:func:`service_definition`).

    Errors: 404 unknown service or jurisdiction, 400 without ``jurisdiction_id``."""
    check_format(fmt)
    resolve_tenant(intake_of(request).tenants, param(request.query_params, "jurisdiction_id"))
    category = known_category(service_code)
    return render(fmt, "service_definition", service_definition(category.code))


async def _form(request: Request):
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise bad_request(f"the request body may be at most {MAX_BODY_BYTES} bytes")
    ctype = request.headers.get("content-type", "")
    if ctype and not ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        raise bad_request("send the request as application/x-www-form-urlencoded")
    try:
        return await request.form(max_files=0, max_fields=200)
    except Exception:  # noqa: BLE001 - malformed body
        raise bad_request("the request body is not a valid form") from None


@router.post("/requests.{fmt}")
async def post_request(request: Request, fmt: str) -> Response:
    """POST Service Request (form-encoded; ``api_key`` and ``jurisdiction_id`` may also come in
    the query string). Creates a case (channel and source ``open311``) through
    ``Intake.store`` and answers ``[{service_request_id, service_notice, account_id}]``.

    Order of checks: format, ``api_key`` (403), jurisdiction (400/404), ``service_code``
    (400 missing, 404 unknown), attributes (400, :func:`check_attributes`), location (400,
    :func:`resolve_place`), ``description`` ≤ 4000 characters and ``media_url`` (400), then the
    report itself (400 naming the fields ReportIn refuses, without echoing values).
    """
    check_format(fmt)
    form = await _form(request)
    query = request.query_params

    def arg(name: str) -> str | None:
        """A form argument, else the same query argument (empty counts as absent)."""
        return param(form, name) or param(query, name)

    svc = intake_of(request)
    caller = await open311_caller(request, arg("api_key"))
    if not caller.may(REPORT):
        raise Open311Error(403, f"role {caller.role} may not create requests")
    tenant = resolve_tenant(svc.tenants, arg("jurisdiction_id"))
    if not caller.sees_tenant(tenant.tenant):
        raise Open311Error(403, "this api_key is not valid for the jurisdiction")
    category = known_category(param(form, "service_code"))
    attributes = check_attributes(category.code, posted_attributes(form))
    place_code, address = resolve_place(tenant, form)
    if not caller.sees_place(tenant.tenant, place_code):
        raise Open311Error(403, "the location is outside this api_key's area")
    report = to_report(tenant, category, form, attributes, place_code, address)
    case_id = case_id_for(report, None)
    await svc.store([(report, case_id, None)], caller)
    answer = [{"service_request_id": str(case_id), "service_notice": service_notice(category, None), "account_id": None}]
    return render(fmt, "service_requests", answer)


def _presents_credential(request: Request) -> bool:
    """Whether the request carries a credential (``api_key``, ``Authorization`` or ``X-API-Key``)."""
    return bool(param(request.query_params, "api_key") or request.headers.get("authorization")
                or request.headers.get("x-api-key"))


async def _reader(request: Request, missing: Callable[[str], str]):
    """``(service, caller, tenant)`` of a request read: the jurisdiction (:func:`resolve_tenant`)
    and the credential (:func:`open311_caller`). A read without any credential of a tenant whose
    file sets ``open311_public_reads`` is public, as the spec has it: ``caller`` is ``None`` (the
    whole jurisdiction; only the spec's fields, masked, :func:`request_record`), limited per client
    address like any caller. With a credential the read keeps to its scope.

    Raises:
        Open311Error: 403 without a valid api_key (unless public), 404 with the message
            ``missing(tenant name)`` when the jurisdiction is not the credential's (as for one
            that does not exist), 400/404 of resolve_tenant.
    """
    svc = intake_of(request)
    tenant = resolve_tenant(svc.tenants, param(request.query_params, "jurisdiction_id"))
    if tenant.open311_public_reads and not _presents_credential(request):
        limiter = getattr(request.app.state.auth, "limiter", None)
        if limiter is not None:  # 429 with Retry-After over the limit (Open311Route answers it)
            limiter.check(f"open311-public:{request.client.host if request.client else '?'}")
        return svc, None, tenant
    caller = await open311_caller(request, param(request.query_params, "api_key"))
    if not caller.sees_tenant(tenant.tenant):
        raise not_found(missing(tenant.tenant))
    return svc, caller, tenant


async def _one_request(request: Request, given_id: str, missing: str):
    """``(tenant, row)`` of the one request ``given_id`` names (:func:`_reader`, then
    :func:`fetch_rows` restricted to the caller's scope).

    Raises:
        Open311Error: 404 with the message ``missing`` when ``given_id`` is not a case id, or no
            such case is in the jurisdiction and the caller's scope; 403/400/404 of :func:`_reader`.
    """
    svc, caller, tenant = await _reader(request, lambda _: missing)
    try:
        case_id = uuid.UUID(given_id)
    except ValueError:
        raise not_found(missing) from None
    rows = await fetch_rows(svc.engine, tenant.tenant, RequestQuery(ids=[case_id], page_size=1), caller)
    if not rows:
        raise not_found(missing)
    return tenant, rows[0]


@router.get("/tokens/{token}.{fmt}")
async def get_token(request: Request, token: str, fmt: str) -> Response:
    """GET service_request_id from a token. POST answers with the request id at once (type
    ``realtime``), so a token is that id: ``[{service_request_id, token}]`` for a request posted
    through Open311 in this jurisdiction.

    Errors: 404 unknown token or jurisdiction, 400 without ``jurisdiction_id``."""
    check_format(fmt)
    missing = f"token {token[:60]!r} was not found"
    _, row = await _one_request(request, token, missing)
    if row["source"] != SOURCE:
        raise not_found(missing)
    return render(fmt, "service_requests", [{"service_request_id": str(row["case_id"]), "token": token}])


@router.get("/requests.{fmt}")
async def get_requests(request: Request, fmt: str) -> Response:
    """GET Service Requests of the jurisdiction, any channel (:func:`parse_request_query` for the
    filters, :func:`request_record` for the fields), newest first.

    Errors: 400 for a bad argument (date, status, span, page) or missing ``jurisdiction_id``,
    404 unknown jurisdiction."""
    check_format(fmt)
    params = request.query_params
    svc, caller, tenant = await _reader(request, lambda name: f"jurisdiction_id {name!r} was not found")
    query = parse_request_query(params, tenant.tzinfo, datetime.now(UTC))
    rows = await fetch_rows(svc.engine, tenant.tenant, query, caller)
    return render(fmt, "service_requests", [request_record(tenant, row) for row in rows])


@router.get("/requests/{service_request_id}.{fmt}")
async def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    """GET Service Request: ``[request]`` (a one-element list, as the spec's examples).

    Errors: 404 unknown request or jurisdiction, 400 without ``jurisdiction_id``."""
    check_format(fmt)
    tenant, row = await _one_request(request, service_request_id, f"service_request_id {service_request_id[:60]!r} "
                                     "was not found")
    return render(fmt, "service_requests", [request_record(tenant, row)])


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@router.api_route("/{rest:path}", methods=_ALL_METHODS, include_in_schema=False)
async def fallback(request: Request, rest: str) -> Response:
    """Anything else under ``/open311/v2/``: 404 in the spec's format (400 for a known resource
    asked with a method it does not take)."""
    path = request.url.path
    for route in router.routes:
        if route is not request.scope.get("route") and isinstance(route, APIRoute) and route.path_regex.match(path):
            raise bad_request(f"{request.method} is not supported on this resource")
    raise not_found("no such Open311 resource (see discovery.xml)")


def install(app: FastAPI) -> None:
    """Mount :data:`router` on ``app`` (once; a second call does nothing).

    Error handling needs no app-level handler: :class:`Open311Route` answers every failure of
    an Open311 route in the spec's format, so handlers registered by shared/platform/http.py keep serving
    the rest of the API unchanged, whatever the order of installation.
    """
    if any(getattr(r, "path", "").startswith(PREFIX) for r in app.routes):
        return
    app.include_router(router)
