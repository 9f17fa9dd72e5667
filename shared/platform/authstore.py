"""Credentials: API keys (stored hashed) and JWT bearer tokens (PyJWT), in PostgreSQL schema ``auth``.

- An API key reads ``gck_<key id>_<secret>``: the key id (``k`` + 16 hex) is public and names the
  key in audit records; the secret (32 random bytes, URL-safe base64) is shown once, when issued,
  and stored only as its SHA-256 (a random 256-bit secret needs no slow hash: there is nothing to
  guess from a dictionary). Comparison is constant-time.
- A JWT is HS256-signed with ``GRIDCASE_JWT_SECRET`` (RFC 7519; claims ``sub``, ``jti``, ``iat``,
  ``exp``, ``tenant``, ``role``, ``scope``, ``dept``, issuer ``gridcase``). Its ``jti`` is recorded
  when issued, so revoking it works like revoking a key and only tokens this deployment issued are
  accepted.
- Both are issued and revoked with ``gridcase auth …`` (gridcase/cli.py).

Services resolve a presented credential with :class:`CredentialResolver`, which caches answers for a
few seconds (``cache_seconds``): a revocation takes effect within that time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.platform.auth import Principal, check_grant
from shared.platform.db import NAMING_CONVENTION

SCHEMA = "auth"
MIGRATIONS = Path(__file__).resolve().parent / "auth_migrations"
KEY_PREFIX = "gck_"
JWT_ISSUER = "gridcase"
JWT_ALGORITHM = "HS256"
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_JWT_SECRET = 32
metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("credential_id", sa.String(40), primary_key=True, comment="API key id (k…) or JWT jti (t…)"),
    sa.Column("kind", sa.String(8), nullable=False, comment="api_key | jwt"),
    sa.Column("secret_sha256", sa.String(64), comment="hex SHA-256 of an API key's secret; NULL for JWTs"),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(24), nullable=False, server_default=""),
    sa.Column("department", sa.String(100)),
    sa.Column("label", sa.String(200), nullable=False, server_default="", comment="what the credential is for"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)


class CredentialError(ValueError):
    """A presented credential is malformed, unknown, expired or revoked (HTTP 401)."""


@dataclass(frozen=True)
class Issued:
    """A newly issued credential: ``credential_id`` (public) and ``secret`` (the API key or the
    JWT itself; shown once, never stored)."""

    credential_id: str
    secret: str
    principal: Principal
    expires_at: datetime | None


def new_api_key() -> tuple[str, str]:
    """A fresh ``(key_id, api_key)``; the key is ``gck_<key_id>_<secret>``."""
    key_id = "k" + secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}"


def split_api_key(api_key: str) -> tuple[str, str]:
    """``(key_id, secret)`` of an API key.

    Raises:
        CredentialError: not of the form ``gck_k<16 hex>_<secret>``.
    """
    if not api_key.startswith(KEY_PREFIX):
        raise CredentialError("not a gridcase API key")
    key_id, sep, secret = api_key[len(KEY_PREFIX):].partition("_")
    if not sep or len(key_id) != 17 or not key_id.startswith("k") or len(secret) < 20:
        raise CredentialError("malformed API key")
    return key_id, secret


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_jwt(principal: Principal, jwt_secret: str, issued_at: datetime, expires_at: datetime) -> str:
    """The signed JWT of ``principal`` (HS256, RFC 7519 registered claims plus ours)."""
    claims = {
        "iss": JWT_ISSUER, "sub": principal.subject, "jti": principal.subject,
        "iat": int(issued_at.timestamp()), "exp": int(expires_at.timestamp()),
        "tenant": principal.tenant, "role": principal.role, "scope": principal.scope, "dept": principal.department,
    }
    return jwt.encode(claims, jwt_secret, algorithm=JWT_ALGORITHM)


def decode_jwt(token: str, jwt_secret: str) -> Principal:
    """Verify a JWT's signature, issuer and expiry and read its principal.

    Raises:
        CredentialError: bad signature, expired, wrong issuer, missing claims, no secret set.
    """
    if not jwt_secret:
        raise CredentialError("bearer tokens are not enabled (GRIDCASE_JWT_SECRET is not set)")
    if len(jwt_secret) < MIN_JWT_SECRET:
        raise CredentialError(f"bearer tokens are disabled: GRIDCASE_JWT_SECRET is shorter than {MIN_JWT_SECRET} characters")
    try:
        claims = jwt.decode(token, jwt_secret, algorithms=[JWT_ALGORITHM], issuer=JWT_ISSUER,
                            options={"require": ["exp", "iat", "jti", "sub", "iss"]})
        return Principal(subject=str(claims["jti"]), tenant=str(claims["tenant"]), role=str(claims["role"]),
                         scope=str(claims.get("scope") or ""), department=claims.get("dept") or None,
                         credential="jwt")
    except jwt.ExpiredSignatureError:
        raise CredentialError("token expired") from None
    except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
        raise CredentialError(f"invalid token ({type(exc).__name__})") from None


async def issue(engine: AsyncEngine, *, kind: str, tenant: str, role: str, scope: str = "",
                department: str | None = None, label: str = "", ttl: timedelta | None = None,
                jwt_secret: str = "", api_key: str | None = None, now: datetime | None = None) -> Issued:
    """Issue an API key (``kind="api_key"``) or a JWT (``kind="jwt"``, needs ``jwt_secret`` and
    ``ttl``) and record it. ``api_key`` installs a key generated elsewhere (:func:`new_api_key`),
    e.g. the one the local stack hands to its own CLI.

    Raises:
        shared.platform.auth.AccessError: inconsistent grant (see :func:`shared.platform.auth.check_grant`).
        ValueError: unknown kind, a JWT without secret or lifetime.
    """
    check_grant(tenant, role, scope, department)
    now = now or datetime.now(UTC)
    expires = now + ttl if ttl else None
    if kind == "api_key":
        key_id, key = (split_api_key(api_key)[0], api_key) if api_key else new_api_key()
        credential_id, secret_hash, secret = key_id, _sha256(split_api_key(key)[1]), key
    elif kind == "jwt":
        if not jwt_secret:
            raise ValueError("set GRIDCASE_JWT_SECRET (gridcase up prints it) to issue tokens")
        if not ttl:
            raise ValueError("a JWT needs a lifetime")
        if len(jwt_secret) < MIN_JWT_SECRET:
            raise ValueError(f"GRIDCASE_JWT_SECRET must be at least {MIN_JWT_SECRET} characters (RFC 7518 §3.2)")
        credential_id, secret_hash = "t" + secrets.token_hex(8), None
        principal = Principal(credential_id, tenant, role, scope, department, "jwt")
        secret = encode_jwt(principal, jwt_secret, now, expires)
    else:
        raise ValueError(f"unknown credential kind {kind!r}")
    async with engine.begin() as conn:
        await conn.execute(credentials.insert().values(
            credential_id=credential_id, kind=kind, secret_sha256=secret_hash, tenant=tenant, role=role, scope=scope,
            department=department, label=label, created_at=now, expires_at=expires))
    return Issued(credential_id, secret, Principal(credential_id, tenant, role, scope, department, kind), expires)


async def revoke(engine: AsyncEngine, credential_id: str, now: datetime | None = None) -> bool:
    """Revoke a key or token by id; ``False`` when there is no such unrevoked credential."""
    async with engine.begin() as conn:
        result = await conn.execute(
            credentials.update()
            .where(credentials.c.credential_id == credential_id, credentials.c.revoked_at.is_(None))
            .values(revoked_at=now or datetime.now(UTC)))
    return result.rowcount == 1


async def list_credentials(engine: AsyncEngine) -> list[dict]:
    """Every credential (without secrets), newest first."""
    c = credentials
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(c.c.credential_id, c.c.kind, c.c.tenant, c.c.role, c.c.scope,
                                            c.c.department, c.c.label, c.c.created_at, c.c.expires_at, c.c.revoked_at)
                                  .order_by(c.c.created_at.desc()))
        return [dict(r._mapping) for r in rows]


class CredentialResolver:
    """Turns a presented credential into a :class:`Principal`, checking the store.

    ``cache_seconds`` bounds how long a answer (good or bad) is reused; revocation and expiry
    take effect within it.
    """

    def __init__(self, engine: AsyncEngine, jwt_secret: str = "", cache_seconds: float = 5.0,
                 max_entries: int = 10_000) -> None:
        self.engine = engine
        self.jwt_secret = jwt_secret
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Principal | str]] = {}

    async def resolve(self, credential: str) -> Principal:
        """The principal of an API key or a JWT.

        Raises:
            CredentialError: malformed, unknown, wrong secret, expired or revoked.
        """
        digest = _sha256(credential)
        hit = self._cache.get(digest)
        if hit and hit[0] > time.monotonic():
            if isinstance(hit[1], str):
                raise CredentialError(hit[1])
            return hit[1]
        try:
            principal = await self._lookup(credential)
        except CredentialError as exc:
            self._remember(digest, str(exc))
            raise
        self._remember(digest, principal)
        return principal

    def _remember(self, digest: str, value: Principal | str) -> None:
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self.cache_seconds, value)

    async def _lookup(self, credential: str) -> Principal:
        if credential.startswith(KEY_PREFIX):
            key_id, secret = split_api_key(credential)
            claimed = None
        else:
            claimed = decode_jwt(credential, self.jwt_secret)
            key_id, secret = claimed.subject, None
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(credentials).where(credentials.c.credential_id == key_id))).one_or_none()
        if row is None or row.kind != ("jwt" if claimed else "api_key"):
            raise CredentialError("unknown credential")
        if secret is not None and not (row.secret_sha256 and hmac.compare_digest(row.secret_sha256, _sha256(secret))):
            raise CredentialError("unknown credential")
        if row.revoked_at is not None:
            raise CredentialError("credential revoked")
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            raise CredentialError("credential expired")
        stored = Principal(row.credential_id, row.tenant, row.role, row.scope, row.department,
                           "jwt" if claimed else "api_key")
        if claimed is not None and claimed != stored:
            raise CredentialError("token claims do not match the issued token")
        return stored
