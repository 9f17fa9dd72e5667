"""README.md's shell blocks, run as pasted against the running stack (issue 17).

Every fenced ``bash``/``sh`` block of README.md is run with ``bash -e -o pipefail`` from the
repository root, with the variables the ``export`` line of ``gridcase up`` sets (gridcase/cli.py:
``GRIDCASE_INTAKE_URL``, ``GRIDCASE_REPORTING_URL``, ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``,
``GRIDCASE_API_KEY``, ``GRIDCASE_JWT_SECRET``) pointing at the session's stack, and ``gridcase`` on
the PATH (``source .venv/bin/activate``). A block that cannot run inside a test says so in README
with an HTML comment on the line before it, ``<!-- readme-test: not run: <reason> -->`` (installing
the project, placeholder servers, replaying the whole event log); it is reported as skipped with
that reason. Blocks with answers described in README (``# → 200 {...}``) are checked against those
answers by the checks below; every other block must exit 0.

Writes: the first-report block reports one case at 和平社区第1网格 of demo-grid (no other test counts
that place over all time: they read cases by id or in places of their own); the credentials block
issues keys for demo-grid and revokes the one it names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import api

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!--\s*readme-test:\s*not run:\s*(?P<reason>.+?)\s*-->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z0-9_-]*)[ \t]*$")


@dataclass(frozen=True)
class Block:
    """A fenced shell block of README.md: the heading it is under, its first line number, its
    code and, when marked, why it is not run."""

    heading: str
    line: int
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"line{self.line}-{re.sub(r'[^A-Za-z0-9]+', '-', self.heading).strip('-').lower()[:40]}"


def readme_blocks(text: str) -> list[Block]:
    """Every ```bash / ```sh block of ``text``, with the not-run marker of the line before it
    (blank lines between marker and fence allowed)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            if fence["lang"] in ("bash", "sh", "shell", "console"):
                before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
                marker = MARKER.search(before)
                indent = len(fence["indent"])
                code = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1:end])
                blocks.append(Block(heading, i + 1, code + "\n", marker["reason"] if marker else None))
            i = end + 1
            continue
        i += 1
    return blocks


BLOCKS = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_blocks_are_found_and_each_not_run_says_why():
    assert len(BLOCKS) >= 5, [b.id for b in BLOCKS]
    assert any(b.not_run is None for b in BLOCKS)
    for block in BLOCKS:
        assert block.not_run is None or len(block.not_run) > 10, block.id


def test_the_marker_is_read_from_the_line_before_the_fence():
    text = ("# A\n<!-- readme-test: not run: installs the project -->\n```bash\npip install x\n```\n\n"
            "## B\n```sh\necho hi\n```\n```python\nprint()\n```\n")
    first, second = readme_blocks(text)
    assert (first.heading, first.not_run, first.code) == ("A", "installs the project", "pip install x\n")
    assert (second.heading, second.not_run, second.code, second.line) == ("B", None, "echo hi\n", 8)  # the fence of B is line 8


def shell_env(stack) -> dict[str, str]:
    """What the shell of README has after pasting ``gridcase up``'s export line and activating the venv."""
    jwt = stack.env.get("GRIDCASE_JWT_SECRET") or os.environ.get("GRIDCASE_JWT_SECRET", "")
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "GRIDCASE_INTAKE_URL": stack.url("intake"), "GRIDCASE_REPORTING_URL": stack.url("reporting"),
            "KAFKA_BOOTSTRAP_SERVERS": stack.infra.kafka_bootstrap, "DATABASE_URL": stack.infra.database_url,
            "GRIDCASE_API_KEY": stack.admin_key, "GRIDCASE_JWT_SECRET": jwt}


def run_block(stack, block: Block) -> subprocess.CompletedProcess:
    # -e and pipefail: a failing step (e.g. no case id to read) fails the run instead of going on
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=REPO, env=shell_env(stack),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (block.id, done.stdout, done.stderr)
    return done


def eventually(check, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def check_first_report(stack, done: subprocess.CompletedProcess) -> None:
    """README "A first report": one answer a line — the case id, the case view, the accept (200
    applied, accepted), the file (200 applied, dispatched: 垃圾扰民 100102 → 城管 urban_management),
    the refused verify_pass (409 action_refused, state dispatched) and the KPI table by department."""
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 6, done.stdout
    case_id = str(uuid.UUID(lines[0].strip()))
    case_view = json.loads(lines[1])
    assert case_view["case_id"] == case_id and case_view["tenant"] == "demo-grid"
    assert "13912345678" not in lines[1] and "张三" not in lines[1]  # the reporter's contact stays sealed
    accepted, filed, refused, table = (json.loads(line) for line in lines[2:])
    assert (accepted["status"], accepted["state"], accepted["action"]) == ("applied", "accepted", "accept")
    assert (filed["status"], filed["state"], filed["action"]) == ("applied", "dispatched", "file")
    assert (refused["error"], refused["status"], refused["state"]) == ("action_refused", "refused", "dispatched")
    assert refused["reason"] and "verify_pass" not in refused["allowed_actions"]
    assert table["tenant"] == "demo-grid" and table["group_by"] == "department" and "total" in table
    view = api.get(f"{stack.url('intake')}/v1/cases/{case_id}", timeout=10).json()
    assert view["department"] == "urban_management"

    # "a row with "key": "urban_management" (城管) once reporting has counted the dispatch"
    def counted():
        table = api.get(f"{stack.url('reporting')}/v1/kpis", params={"tenant": "demo-grid", "group_by": "department"},
                        timeout=60).json()
        rows = {r["key"]: r for r in table["rows"]}
        assert rows.get("urban_management", {}).get("dispatches", 0) >= 1, rows.keys()

    eventually(counted)


def check_credentials(stack, done: subprocess.CompletedProcess) -> None:
    """README "Who may see and do what": keys and a token issued (JSON description, then the secret),
    the list, and the revocation of the key it names."""
    lines = done.stdout.splitlines()
    described = [json.loads(line) for line in lines if line.startswith("{")]
    issued = [d for d in described if "kind" in d]
    assert [(d["kind"], d["role"]) for d in issued[:3]] == [
        ("api_key", "community_staff"), ("api_key", "department_staff"), ("jwt", "street_staff")]
    assert issued[0]["scope"] == "990102001002" and issued[1]["department"] == "urban_management"
    listed = {d["credential_id"] for d in described if "revoked_at" in d}  # gridcase auth list
    assert {d["credential_id"] for d in issued[:3]} <= listed
    revoked = described[-1]  # the fourth key, issued into KEY_ID, then revoked by its id
    assert revoked["revoked"] is True and revoked["credential_id"].startswith("k")
    assert revoked["credential_id"] not in {d["credential_id"] for d in issued[:3]}


#: (what the block runs, its check), the first that matches
CHECKS = [("/v1/reports", check_first_report), ("gridcase auth issue-key", check_credentials)]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs_as_pasted(stack, block):
    if block.not_run is not None:
        pytest.skip(f"README marks it not run: {block.not_run}")
    done = run_block(stack, block)
    check = next((c for needle, c in CHECKS if needle in block.code), None)
    if check is not None:
        check(stack, done)
