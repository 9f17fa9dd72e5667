"""Identity policy, credentials and encryption at rest (issue 6), without I/O.

Expected values come from the rules in shared/platform/auth.py's docstring (issue 6 item 2), RFC 7519 for
JWT claims, RFC 9110 §10.2.3 for Retry-After and NIST SP 800-38D (AES-GCM authenticates the
ciphertext and the associated data).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from shared.contract.actions import REQUESTABLE_ACTIONS
from shared.platform.auth import (
    ADMIN,
    CITY_OPS,
    COMMUNITY_STAFF,
    DEPARTMENT_STAFF,
    GRID_WORKER,
    IMPORT,
    MEDIATOR,
    PATROL,
    REPORT,
    ROLE_ACTIONS,
    ROLES,
    STREET_STAFF,
    AccessError,
    Principal,
    check_grant,
)
from shared.platform.authhttp import RateLimiter
from shared.platform.authstore import (
    CredentialError,
    decode_jwt,
    encode_jwt,
    new_api_key,
    split_api_key,
)
from shared.platform.crypto import Keyring, KeyringError, new_key

SECRET = "unit-test-secret-of-32-characters-or-more"
STREET, COMMUNITY, GRID = "990102001", "990102001001", "990102001001002"
OTHER_COMMUNITY_GRID = "990102001002001"


def test_a_community_sees_its_own_places_only():
    staff = Principal("k1", "demo-grid", COMMUNITY_STAFF, COMMUNITY)
    assert staff.sees_place("demo-grid", GRID)
    assert staff.sees_place("demo-grid", COMMUNITY)
    assert not staff.sees_place("demo-grid", OTHER_COMMUNITY_GRID)
    assert not staff.sees_place("demo-grid", STREET)  # the street is above the community
    assert not staff.sees_place("other-tenant", GRID)
    assert not staff.sees_place("demo-grid", None)


def test_street_staff_see_all_their_communities():
    staff = Principal("k1", "demo-grid", STREET_STAFF, STREET)
    assert staff.sees_place("demo-grid", GRID) and staff.sees_place("demo-grid", OTHER_COMMUNITY_GRID)
    assert not staff.sees_place("demo-grid", "990102002001")


def test_department_staff_see_their_department_only():
    staff = Principal("k1", "demo-grid", DEPARTMENT_STAFF, "", "urban_management")
    assert staff.sees_case("demo-grid", GRID, "urban_management")
    assert not staff.sees_case("demo-grid", GRID, "ecology_environment")
    assert not staff.sees_case("demo-grid", GRID, None)  # not dispatched yet
    assert staff.department_filter(None) == (True, "urban_management")
    assert staff.department_filter("urban_management") == (True, "urban_management")
    assert staff.department_filter("ecology_environment") == (False, None)
    assert Principal("k2", "demo-grid", CITY_OPS).department_filter("x") == (True, "x")


def test_city_ops_and_admin():
    ops = Principal("k1", "demo-grid", CITY_OPS)
    assert ops.sees_case("demo-grid", OTHER_COMMUNITY_GRID, None) and not ops.sees_tenant("nyc")
    admin = Principal("k2", "*", ADMIN)
    assert admin.sees_tenant("nyc") and admin.sees_tenant("demo-grid")


@pytest.mark.parametrize("scope, asked, expected", [
    (COMMUNITY, None, COMMUNITY),            # no filter asked: the scope
    (COMMUNITY, STREET, COMMUNITY),          # asked wider: narrowed to the scope
    (COMMUNITY, GRID, GRID),                 # asked narrower: kept
    (COMMUNITY, OTHER_COMMUNITY_GRID, None),  # disjoint: nothing (404)
    ("", STREET, STREET),
    ("", None, ""),
])
def test_narrow(scope, asked, expected):
    role = COMMUNITY_STAFF if scope else CITY_OPS
    assert Principal("k", "demo-grid", role, scope).narrow(asked) == expected


place_prefixes = st.from_regex(r"[0-9]{0,15}", fullmatch=True)


@st.composite
def prefixes_and_code(draw):
    """A scope, an asked prefix and a place code that, more often than chance would, extends one of
    them (or the one the caller's query is narrowed to), so both sides of each check are reached."""
    scope, asked = draw(place_prefixes), draw(place_prefixes)
    if draw(st.booleans()):  # related prefixes: one extends the other
        longer = draw(place_prefixes)
        scope, asked = draw(st.sampled_from([(scope, scope + longer), (asked + longer, asked)]))
    base = draw(st.sampled_from(["", scope, asked, scope + asked, asked + scope]))
    code = base + draw(st.from_regex(r"[0-9]{0,18}", fullmatch=True))
    return scope, asked, code or "0"


@given(prefixes_and_code())
def test_narrowed_prefix_never_reaches_outside_the_scope(drawn):
    """The narrowed prefix selects exactly the places inside both the scope and the asked prefix
    (shared/platform/auth.py ``Principal.narrow``): the longer of the two when one contains the
    other, else ``None`` and no place."""
    scope, asked, code = drawn
    who = Principal("k", "t", COMMUNITY_STAFF if scope else CITY_OPS, scope)
    narrowed = who.narrow(asked)
    inside_both = who.sees_place("t", code) and code.startswith(asked)
    if narrowed is None:
        assert not scope.startswith(asked) and not asked.startswith(scope)  # disjoint prefixes
        assert not inside_both
    else:
        assert narrowed == max(scope, asked, key=len) and narrowed.startswith(scope) and narrowed.startswith(asked)
        assert code.startswith(narrowed) == inside_both


def test_capabilities_by_role():
    assert [r for r in ROLES if Principal("k", "t", r, "1", "d" if r == DEPARTMENT_STAFF else None).may(REPORT)] == [
        GRID_WORKER, COMMUNITY_STAFF, STREET_STAFF, MEDIATOR, CITY_OPS, ADMIN]
    assert not Principal("k", "t", DEPARTMENT_STAFF, "", "d").may(PATROL)
    assert Principal("k", "t", CITY_OPS).may_import("t")
    assert not Principal("k", "t", CITY_OPS).may_import("other")
    assert not Principal("k", "t", STREET_STAFF, STREET).may_import("t")
    assert Principal("k", "t", DEPARTMENT_STAFF, "", "d").may(IMPORT) is False


def test_actions_follow_the_division_of_work():
    # departments sign, dispose and ask for extensions; they do not verify their own work
    assert {"acknowledge", "resolve", "request_extension"} <= ROLE_ACTIONS[DEPARTMENT_STAFF]
    assert "verify_pass" not in ROLE_ACTIONS[DEPARTMENT_STAFF] and "approve_extension" not in ROLE_ACTIONS[DEPARTMENT_STAFF]
    # grid workers handle small matters themselves and report up level by level
    assert {"self_handle", "escalate"} <= ROLE_ACTIONS[GRID_WORKER] and "accept" not in ROLE_ACTIONS[GRID_WORKER]
    assert ROLE_ACTIONS[MEDIATOR] == {"mediation_agreement", "mediation_failed", "escalate"}
    assert ROLE_ACTIONS[ADMIN] == set(REQUESTABLE_ACTIONS)  # every action an actor can ask for


@pytest.mark.parametrize("tenant, role, scope, department, problem", [
    ("t", "superuser", "", None, "unknown role"),
    ("*", CITY_OPS, "", None, "only admin"),
    ("t", GRID_WORKER, "", None, "needs a place scope"),
    ("t", DEPARTMENT_STAFF, "", None, "needs a department"),
    ("t", CITY_OPS, "", "urban_management", "only department_staff"),
    ("t", COMMUNITY_STAFF, "99' OR 1=1", None, "not a place-code prefix"),
    ("", CITY_OPS, "", None, "bound to a tenant"),
])
def test_inconsistent_grants_are_refused(tenant, role, scope, department, problem):
    with pytest.raises(AccessError, match=problem):
        check_grant(tenant, role, scope, department)


def test_api_key_format():
    key_id, key = new_api_key()
    assert key.startswith(f"gck_{key_id}_") and split_api_key(key) == (key_id, key.split("_", 2)[2])
    assert key_id != new_api_key()[0]
    for bad in ("", "gck_", "gck_k123_secret", "Bearer x", f"gck_{key_id}"):
        with pytest.raises(CredentialError):
            split_api_key(bad)


def test_jwt_round_trip_and_refusals():
    who = Principal("t0123456789abcdef", "demo-grid", COMMUNITY_STAFF, COMMUNITY, credential="jwt")
    now = datetime.now(UTC)
    token = encode_jwt(who, SECRET, now, now + timedelta(hours=1))
    assert decode_jwt(token, SECRET) == who
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="gridcase")
    assert {"iss", "sub", "jti", "iat", "exp"} <= set(claims)  # RFC 7519 §4.1 registered claims
    with pytest.raises(CredentialError, match="invalid"):
        decode_jwt(token, "another secret of at least thirty-two characters")
    with pytest.raises(CredentialError, match="expired"):
        decode_jwt(encode_jwt(who, SECRET, now - timedelta(hours=2), now - timedelta(hours=1)), SECRET)
    with pytest.raises(CredentialError, match="not enabled"):
        decode_jwt(token, "")
    with pytest.raises(CredentialError, match="shorter than 32"):
        decode_jwt(token, "short")
    unsigned = jwt.encode({"iss": "gridcase", "sub": "x", "jti": "x", "iat": 1, "exp": 2**31, "tenant": "*",
                           "role": "admin"}, key=None, algorithm="none")
    with pytest.raises(CredentialError):
        decode_jwt(unsigned, SECRET)  # alg=none is never accepted
    forged_role = encode_jwt(Principal("t1", "demo-grid", "admin"), SECRET, now, now + timedelta(hours=1))
    assert decode_jwt(forged_role, SECRET).role == "admin"  # signature valid: the store check refuses it (integration)


def test_rate_limit_answers_429_with_retry_after():
    limiter = RateLimiter("3/minute")
    for _ in range(3):
        limiter.check("k1")
    with pytest.raises(HTTPException) as caught:
        limiter.check("k1")
    assert caught.value.status_code == 429
    wait = int(caught.value.headers["Retry-After"])
    assert 1 <= wait <= 60 and caught.value.detail["retry_after_seconds"] == wait
    limiter.check("k2")  # per credential
    RateLimiter("").check("k1")  # empty: unlimited


def test_rate_limit_window_moves(monkeypatch):
    """A moving window: two requests a second, counted from each request's own time. A clock the
    test moves (``time.time``, which the limiter's storage and Retry-After read) instead of sleeping."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    limiter = RateLimiter("2/second")
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(HTTPException):
        limiter.check("k")
    now[0] += 0.5  # still within the second of the first two
    with pytest.raises(HTTPException) as caught:
        limiter.check("k")
    assert caught.value.headers["Retry-After"] == "1"
    now[0] += 0.6  # 1.1 s after the first two: they have left the window
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(HTTPException):
        limiter.check("k")  # and the window is full again


def test_sealed_values_open_only_with_their_key_and_row():
    ring = Keyring.parse(f"a:{new_key()}")
    value = {"reporter": {"name": "张三", "phone": "13912345678"}}
    sealed = ring.seal(value, b"case-1")
    assert "张三".encode() not in sealed and b"13912345678" not in sealed
    assert ring.open(sealed, b"case-1") == value
    with pytest.raises(KeyringError, match="authentication"):
        ring.open(sealed, b"case-2")  # bound to its row
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(KeyringError, match="authentication"):
        ring.open(tampered, b"case-1")
    assert ring.seal(value, b"case-1") != sealed  # a fresh nonce every time


def test_key_rotation():
    old_entry = f"old:{new_key()}"
    old = Keyring.parse(old_entry)
    sealed = old.seal({"x": 1}, b"r")
    rotated = Keyring.parse(f"new:{new_key()},{old_entry}")  # the new key first, the old one kept
    assert rotated.current == "new" and rotated.open(sealed, b"r") == {"x": 1}
    resealed = rotated.reseal(sealed, b"r")
    assert Keyring.key_id_of(resealed) == "new" and rotated.reseal(resealed, b"r") is None
    assert Keyring(rotated.keys[:1]).open(resealed, b"r") == {"x": 1}  # the old key can go now
    with pytest.raises(KeyringError, match="not configured"):
        old.open(resealed, b"r")


@pytest.mark.parametrize("setting, problem", [
    ("", "no key"), ("nokey", "expected"), ("a:" + "A" * 10, "bytes"), ("a:!!!", "base64|bytes"),
    (f"a:{'A' * 43}=,a:{'A' * 43}=", "twice"), (f"bad id:{'A' * 43}=", "expected"),
])
def test_bad_key_settings_are_refused(setting, problem):
    with pytest.raises(KeyringError, match=problem):
        Keyring.parse(setting)


def test_access_log_lines_lose_their_credentials():
    import logging

    from shared.platform.telemetry import RedactAccessLog, redact_query

    assert redact_query("/x?jurisdiction_id=a&api_key=gck_k1_s3cret&page=2") == "/x?jurisdiction_id=a&api_key=[redacted]&page=2"
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:1", "GET", "/open311/v2/requests.json?api_key=gck_k1_s3cret", "1.1", 200), None)
    assert RedactAccessLog().filter(record) and "s3cret" not in record.getMessage()
