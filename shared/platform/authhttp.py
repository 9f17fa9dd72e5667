"""The HTTP side of identity: who is calling (FastAPI dependency), rate limits, 401/403/404/429.

A request names its credential as ``Authorization: Bearer <API key or JWT>`` or
``X-API-Key: <API key>`` (Open311 also takes the spec's ``api_key`` parameter, see
services/intake/open311/). Without one, or with a bad one, the answer is 401
``{"error": "unauthenticated", "message": …}`` with ``WWW-Authenticate: Bearer`` (RFC 6750 §3).

Rate limits (intake, issue 6 item 6) count requests per credential with the ``limits`` library's
moving window; over the limit the answer is 429 ``{"error": "rate_limited", "retry_after_seconds"}``
with ``Retry-After`` in seconds (RFC 9110 §10.2.3). Counts are kept per process: N intake instances
allow up to N times the limit (a shared storage, e.g. Redis through ``limits``, would make it global).
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.platform.auth import Principal
from shared.platform.authstore import CredentialError, CredentialResolver
from shared.platform.settings import ServiceSettings


def unauthenticated(message: str) -> HTTPException:
    """401 with the uniform error body and ``WWW-Authenticate: Bearer``."""
    return HTTPException(401, detail={"error": "unauthenticated", "message": message},
                         headers={"WWW-Authenticate": 'Bearer realm="gridcase"'})


def forbidden(message: str, **extra) -> HTTPException:
    """403 ``forbidden``: the caller is known but may not do this (a write outside their scope
    or role)."""
    return HTTPException(403, detail={"error": "forbidden", "message": message, **extra})


def not_found(message: str, field: str | None = None) -> HTTPException:
    """404 ``not_found``: also the answer for reads outside the caller's scope, so nothing tells
    that the thing exists."""
    detail = {"error": "not_found", "message": message}
    if field:
        detail["field"] = field
    return HTTPException(404, detail=detail)


def presented_credential(request: Request, extra: str | None = None) -> str | None:
    """The credential a request carries: ``Authorization: Bearer …``, else ``X-API-Key``, else
    ``extra`` (e.g. Open311's ``api_key``)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or extra or None


class RateLimiter:
    """Per-credential request limits, e.g. ``"50/second;2000/minute"`` (``limits`` notation;
    empty: no limit)."""

    def __init__(self, spec: str) -> None:
        self.items: list[RateLimitItem] = parse_many(spec) if spec.strip() else []
        self.strategy = MovingWindowRateLimiter(MemoryStorage())

    def check(self, key: str) -> None:
        """Count one request of ``key``.

        Raises:
            HTTPException: 429 with ``Retry-After`` when a window is full (the request is not
                counted against the other windows).
        """
        for item in self.items:
            if not self.strategy.hit(item, "gridcase", key):
                reset, _ = self.strategy.get_window_stats(item, "gridcase", key)
                wait = max(1, math.ceil(reset - time.time()))
                raise HTTPException(
                    429,
                    detail={"error": "rate_limited", "retry_after_seconds": wait,
                            "message": f"more than {item} for this credential; retry in {wait} s"},
                    headers={"Retry-After": str(wait)},
                )


class Authenticator:
    """Resolves the caller of a request; a FastAPI dependency through :meth:`__call__`."""

    def __init__(self, resolver: CredentialResolver, limiter: RateLimiter | None = None) -> None:
        self.resolver = resolver
        self.limiter = limiter

    @classmethod
    def for_service(cls, engine: AsyncEngine, settings: ServiceSettings) -> Authenticator:
        """The authenticator of a service: credentials from ``engine``'s ``auth`` schema with the
        settings' JWT secret and cache time, requests limited by ``settings.rate_limit``."""
        return cls(CredentialResolver(engine, settings.jwt_secret, settings.auth_cache_seconds),
                   RateLimiter(settings.rate_limit))

    async def principal(self, request: Request, extra: str | None = None) -> Principal:
        """The authenticated caller (and one request counted against their rate limit).

        Raises:
            HTTPException: 401 without a valid credential, 429 over the rate limit.
        """
        credential = presented_credential(request, extra)
        if not credential:
            raise unauthenticated("send an API key or token: Authorization: Bearer <credential>")
        if len(credential) > 4096:
            raise unauthenticated("credential too long")
        try:
            principal = await self.resolver.resolve(credential)
        except CredentialError as exc:
            if self.limiter is not None:  # guessing is limited per client address like use per key
                self.limiter.check(f"unauthenticated:{request.client.host if request.client else '?'}")
            raise unauthenticated(str(exc)) from None
        if self.limiter is not None:
            self.limiter.check(principal.subject)
        request.state.principal = principal
        return principal

    async def __call__(self, request: Request) -> Principal:
        return await self.principal(request)


async def caller(request: Request) -> Principal:
    """FastAPI dependency: the caller of ``request``, through the app's ``state.auth``
    (:class:`Authenticator`, set up in the service's lifespan)."""
    return await request.app.state.auth.principal(request)
