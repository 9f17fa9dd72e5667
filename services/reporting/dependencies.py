"""What reporting's routers share: the query parameter types, the app's engine, tenants and
taxonomy (:class:`Context`), and the caller's scope.

Every ``/v1`` endpoint needs a credential (shared/platform/authhttp.py ``caller``) and answers
within the caller's scope (shared/platform/auth.py): the tenant must be the credential's,
``place_prefix`` is narrowed to the caller's place scope and department staff see their
department only. A tenant, place or department outside the scope answers 404, as an unknown one
does (:func:`scoped`, :func:`scope_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.filters import CaseFilter
from services.reporting.kpis.case_lists import MAX_PAGE
from services.reporting.kpis.catalogue import GROUP_BYS
from shared.contract.events import TENANT_PATTERN
from shared.domain.taxonomy import Taxonomy
from shared.domain.tenants import TenantConfig
from shared.platform.auth import Principal
from shared.platform.authhttp import not_found
from shared.platform.http import error_response
from shared.platform.kit import engine_of

# Query parameters (module level: FastAPI resolves the annotations by name).
Tenant = Annotated[str, Query(pattern=TENANT_PATTERN)]
PlacePrefix = Annotated[str | None, Query(max_length=24, pattern=r"^[0-9A-Za-z]+$")]
#: A category code or a department name as a filter: text without NUL, which PostgreSQL cannot store
#: or compare (a NUL in ``category`` answered 500).
FilterText = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")]


def iso_8601_only(value: object) -> object:
    """Refuse a bare number as a time (pydantic would read ``end=0.0`` as a Unix timestamp):
    ``start`` and ``end`` are ISO 8601 dates or date-times (issue 16)."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("an ISO 8601 date or date-time with zone, e.g. 2026-11-01T00:00:00+08:00, not a number")
    return value


Start = Annotated[datetime | None, BeforeValidator(iso_8601_only),
                  Query(description="period start (inclusive), ISO 8601 with zone")]
End = Annotated[datetime | None, BeforeValidator(iso_8601_only),
                Query(description="period end (exclusive), ISO 8601 with zone")]
GroupBy = Annotated[str | None, Query(description=f"one of {', '.join(GROUP_BYS)}")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@dataclass(frozen=True)
class Context:
    """What the routes read from the app: the engine (the service kit's), the configured tenants
    (``{name: TenantConfig}``) and the taxonomy, both loaded once by services/reporting/main.py."""

    engine: AsyncEngine
    tenants: Mapping[str, TenantConfig]
    taxonomy: Taxonomy


def context_of(request: Request, engine: Annotated[AsyncEngine, Depends(engine_of)]) -> Context:
    """FastAPI dependency: the app's :class:`Context`."""
    return Context(engine, request.app.state.tenants, request.app.state.taxonomy)


Ctx = Annotated[Context, Depends(context_of)]


def unknown_tenant(tenant: str) -> HTTPException:
    """404 ``unknown_tenant``: the answer for a tenant that is not configured and, alike, for one
    outside the caller's credential (nothing tells that it exists)."""
    return HTTPException(404, detail={"error": "unknown_tenant", "message": f"tenant {tenant!r} is not configured",
                                      "field": "tenant"})


def scoped(who: Principal, tenant: str, place_prefix: str | None,
           department: str | None = None) -> tuple[str | None, str | None]:
    """The ``(place_prefix, department)`` a query of ``who`` runs with: the asked prefix narrowed
    to the caller's place scope (:meth:`shared.platform.auth.Principal.narrow`), the department forced to
    a department staff member's own.

    Raises:
        HTTPException: 404 when the tenant, the asked places or the asked department are outside
            the caller's scope (issue 6 item 2: reads outside one's scope answer 404).
    """
    if not who.sees_tenant(tenant):
        raise unknown_tenant(tenant)
    prefix = who.narrow(place_prefix)
    if prefix is None:
        raise not_found("no such places in your scope", field="place_prefix")
    allowed, dept = who.department_filter(department)
    if not allowed:
        raise not_found("no such department in your scope", field="department")
    return prefix or None, dept


def scope_of(tenants: Mapping[str, TenantConfig], who: Principal, tenant: str, place_prefix: str | None,
             department: str | None = None) -> tuple[str | None, str | None]:
    """:func:`scoped` for a configured tenant.

    Raises:
        HTTPException: 404 ``unknown_tenant`` for a tenant not configured; :func:`scoped`'s."""
    if tenant not in tenants:
        raise unknown_tenant(tenant)
    return scoped(who, tenant, place_prefix, department)


#: The times a period may start or end at: a KPI period is local days, weeks and months, which near
#: year 1 or 9999 would step outside what a date can hold (found by the OpenAPI conformance run:
#: ``start=0001-01-01T00:00:01Z`` answered 500).
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def time_refusal(start: datetime | None, end: datetime | None) -> Response | None:
    """The 422 answer for the first of ``start`` / ``end`` without a timezone (``naive_datetime``)
    or outside [:data:`EARLIEST`, :data:`LATEST`] (``out_of_range``), else ``None``."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            return error_response(422, "naive_datetime", f"{name} needs a timezone, e.g. +08:00", field=name)
        if value is not None and not EARLIEST <= value <= LATEST:
            return error_response(422, "out_of_range", f"{name} must lie between {EARLIEST:%Y-%m-%d} and "
                                  f"{LATEST:%Y-%m-%d}", field=name)
    return None


def empty_period(start: datetime | None, end: datetime | None) -> bool:
    """Whether ``[start, end)`` holds no time (both ends given, ``end <= start``)."""
    return start is not None and end is not None and end <= start


def case_filter(tenant: TenantConfig, name: str, start: datetime | None, end: datetime | None,
                place_prefix: str | None = None, category: str | None = None,
                department: str | None = None) -> CaseFilter | Response:
    """A :class:`~services.reporting.filters.CaseFilter` of tenant ``name`` (configured as
    ``tenant``, :func:`scope_of` checked it) in its timezone, or the error answer (naive or out-of-range times,
    :func:`time_refusal`; 422 ``empty_period`` for an empty period)."""
    error = time_refusal(start, end)
    if error is not None:
        return error
    if empty_period(start, end):
        return error_response(422, "empty_period", "end must be after start", field="end")
    return CaseFilter(name, start, end, place_prefix, category, department, tz=tenant.tzinfo)
