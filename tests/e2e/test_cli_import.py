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
    assert run.returncode == 3, run.stdout + run.stderr  # rows were rejected (gridcase/importcmd.py)
    assert "rows read 270" in run.stdout and "accepted 150" in run.stdout and "rejected 120" in run.stdout
    assert "--allow-rejects" in run.stderr
    written = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    # lines 1-150 hold the good rows, so the bad ones are file lines 151-270
    assert sorted(r["line"] for r in written) == list(range(151, 271)) and all(r["errors"] for r in written)
    assert "uploading" in run.stderr and "rows/s" in run.stderr  # progress lines (stderr is not a terminal)
    again = subprocess.run(
        [sys.executable, "-m", "gridcase.cli", "import", str(path), "--format", "jsonl", "--tenant", "demo-grid",
         "--intake-url", stack.url("intake"), "--allow-rejects"],
        capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "accepted 150 (new 0)" in again.stdout  # the same source ids: nothing new


def test_cli_import_csv_rejects_name_file_lines(stack, tmp_path):
    """A CSV's rejects name the line of the file where the row starts (header = line 1), as an
    editor shows it. Every row is bad, so nothing reaches tenant nyc's figures."""
    header = ("Unique Key,Created Date,Closed Date,Agency,Complaint Type,Descriptor,Status,Due Date,"
              "Community Board,Borough,Open Data Channel Type")
    path = tmp_path / "nyc.csv"
    path.write_text("\n".join([
        header,                                                                      # line 1
        "cli-csv-1,yesterday,,HPD,HEATING,Heat,Open,,01 MANHATTAN,MANHATTAN,PHONE",  # line 2: bad date
        "",                                                                          # line 3: blank, skipped
        "cli-csv-2,10/21/18 03:00",                                                  # line 4: too few fields
        'cli-csv-3,tomorrow,,HPD,HEATING,"Heat',                                     # lines 5-6: one row,
        'and hot water",Open,,01 MANHATTAN,MANHATTAN,PHONE',                         # a quoted line break
        "cli-csv-4,10/21/18 04:00,,HPD",                                             # line 7: too few fields
    ]) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "gridcase.cli", "import", str(path), "--format", "nyc311", "--tenant", "nyc",
         "--intake-url", stack.url("intake"), "--rejects", str(rejects)],
        capture_output=True, text=True, timeout=120,
    )
    assert "accepted 0" in run.stdout, run.stdout + run.stderr
    written = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in written] == [2, 4, 5, 7], written
    assert run.returncode == 3
