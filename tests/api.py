"""HTTP calls of the tests, carrying the session's admin API key.

:data:`ADMIN_KEY` is generated here and installed by the ``stack`` fixture (gridcase/runtime.py
``Stack.install_admin_key``); the role × endpoint tests issue their own scoped credentials.
"""

from __future__ import annotations

import uuid

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
