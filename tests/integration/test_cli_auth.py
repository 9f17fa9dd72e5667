"""``gridcase auth …`` and ``gridcase pii new-key`` against the session's real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from typer.testing import CliRunner

from gridcase.cli import app
from shared.platform.authstore import CredentialError, CredentialResolver
from shared.platform.db import make_engine

pytestmark = pytest.mark.integration
JWT_SECRET = "cli-test-secret-long-enough-for-hs256-keys"


@pytest.fixture
def run(infra, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", infra.database_url)
    monkeypatch.setenv("GRIDCASE_JWT_SECRET", JWT_SECRET)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def resolve(url: str, credential: str):
    async def main():
        engine = make_engine(url)
        try:
            return await CredentialResolver(engine, JWT_SECRET, cache_seconds=0).resolve(credential)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_issue_list_and_revoke_a_key(run, infra):
    result = run("auth", "issue-key", "--tenant", "demo-grid", "--role", "community_staff", "--scope", "990102001002",
                 "--label", "和平社区 值班")
    assert result.exit_code == 0, result.output
    described, key = result.output.strip().splitlines()
    info = json.loads(described)
    assert info["role"] == "community_staff" and info["scope"] == "990102001002" and key.startswith("gck_")
    who = resolve(infra.database_url, key)
    assert (who.tenant, who.role, who.scope, who.subject) == ("demo-grid", "community_staff", "990102001002",
                                                            info["credential_id"])
    listed = [json.loads(line) for line in run("auth", "list").output.splitlines()]
    mine = [row for row in listed if row["credential_id"] == info["credential_id"]]
    assert mine and mine[0]["label"] == "和平社区 值班" and key not in run("auth", "list").output  # never the secret
    assert json.loads(run("auth", "revoke", info["credential_id"]).output)["revoked"] is True
    with pytest.raises(CredentialError, match="revoked"):
        resolve(infra.database_url, key)
    again = run("auth", "revoke", info["credential_id"])
    assert again.exit_code == 1


def test_issue_a_token(run, infra):
    result = run("auth", "issue-token", "--tenant", "demo-grid", "--role", "department_staff",
                 "--department", "urban_management", "--ttl-hours", "1")
    assert result.exit_code == 0, result.output
    described, token = result.output.strip().splitlines()
    assert token.count(".") == 2  # a JWS compact serialisation
    who = resolve(infra.database_url, token)
    assert who.role == "department_staff" and who.department == "urban_management" and who.credential == "jwt"


@pytest.mark.parametrize("args, problem", [
    (["--tenant", "demo-grid", "--role", "grid_worker"], "needs a place scope"),
    (["--tenant", "demo-grid", "--role", "boss"], "unknown role"),
    (["--tenant", "atlantis", "--role", "city_ops"], "not configured"),
    (["--tenant", "demo-grid", "--role", "community_staff", "--scope", "990199"], "not a place"),
    (["--tenant", "*", "--role", "city_ops"], "only admin"),
    (["--tenant", "demo-grid", "--role", "department_staff", "--department", "no_such_dept"], "not a department"),
])
def test_bad_grants_are_refused(run, args, problem):
    result = run("auth", "issue-key", *args)
    assert result.exit_code != 0 and problem in result.output


def test_pii_new_key(run):
    result = run("pii", "new-key", "2026q4")
    key_id, _, b64 = result.output.strip().partition(":")
    assert key_id == "2026q4" and len(base64.urlsafe_b64decode(b64)) == 32
