"""HTTP calls of the tests, carrying the session's admin API key.

:data:`ADMIN_KEY` is generated here and installed by the ``stack`` fixture (gridcase/runtime.py
``Stack.install_admin_key``); the role × endpoint tests issue their own scoped credentials.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from shared.platform.authstore import new_api_key

ADMIN_KEY = new_api_key()[1]


def bearer(credential: str = ADMIN_KEY) -> dict[str, str]:
    """``{"Authorization": "Bearer <credential>"}``."""
    return {"Authorization": f"Bearer {credential}"}


def _with_auth(kwargs: dict) -> dict:
    kwargs["headers"] = {**bearer(), **dict(kwargs.get("headers") or {})}
    return kwargs


def get(url: str, **kwargs) -> httpx.Response:
    """``httpx.get`` with the admin key (a ``headers`` argument adds to or overrides it)."""
    return httpx.get(url, **_with_auth(kwargs))


def post(url: str, **kwargs) -> httpx.Response:
    """``httpx.post`` with the admin key (a ``headers`` argument adds to or overrides it)."""
    return httpx.post(url, **_with_auth(kwargs))


def marker() -> str:
    """A random tag of 32 letters: the personal-data patterns mask runs of digits (phone, ID and card
    numbers), so a tag with digits (a uuid's hex) would now and then come back masked."""
    return uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


def advance_clock(stack, hours: float) -> datetime:
    """Move dispatch's test clock (``DISPATCH_TEST_CLOCK``) forward; its new ``now``."""
    resp = post(f"{stack.url('dispatch')}/v1/test/clock/advance", params={"seconds": hours * 3600}, timeout=10)
    resp.raise_for_status()
    return datetime.fromisoformat(resp.json()["now"])


def dispatch_offset_h(stack) -> float:
    """How far dispatch's clock is ahead of real time, in hours (0 unless a test moved it: the
    clock is the whole session's and only moves forward)."""
    before = datetime.now(UTC)
    clock = advance_clock(stack, 0)
    after = datetime.now(UTC)
    return (clock - (before + (after - before) / 2)).total_seconds() / 3600
