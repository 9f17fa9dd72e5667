"""``gridcase import`` against the running stack: progress, final counts, rejects file (issue 7 item 3)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_cli_import_prints_counts_and_writes_every_reject(stack, tmp_path):
    good = {"category_code": "100401", "place_code": "990102001001001", "reported_at": "2026-11-02T08:00:00+08:00",
            "source": "cli-test"}
    lines = [json.dumps(good | {"source_id": f"cli-{i}"}) for i in range(150)]
    lines += ['{"not json'] * 120  # 120 bad rows: more than the answer's default list of 100
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "gridcase.cli", "import", str(path), "--format", "jsonl", "--tenant", "demo-grid",
         "--intake-url", stack.url("intake"), "--rejects", str(rejects)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rows read 270" in run.stdout and "accepted 150" in run.stdout and "rejected 120" in run.stdout
    written = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert len(written) == 120 and all(r["errors"] for r in written)
    assert "uploading" in run.stderr  # the progress bar
