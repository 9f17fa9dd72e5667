"""gridcase/progress.py: the upload progress of ``gridcase import`` (rows, rows/s, time left)."""

from __future__ import annotations

import io

from gridcase.progress import UploadProgress, count_lines, eta_text, rate_text


def test_count_lines_counts_a_last_line_without_break(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"h\n1\n2\n")
    assert count_lines(path) == 3
    path.write_bytes(b"h\n1\n2")  # no final line break: still 3 lines
    assert count_lines(path) == 3
    path.write_bytes(b"")
    assert count_lines(path) == 0
    path.write_bytes(b"x\n" * 5000)
    assert count_lines(path, chunk=7) == 5000  # chunk boundaries do not matter


def test_rate_and_time_left():
    assert rate_text(1500, 2.0) == "750 rows/s"
    assert rate_text(10, 0) == "– rows/s"
    # a quarter sent in 10 s: three quarters left at the same pace = 30 s
    assert eta_text(250, 1000, 10.0) == "0:30"
    assert eta_text(1, 100, 2.0) == "3:18"  # 99 × 2 s = 198 s
    assert eta_text(0, 100, 5.0) == "–"


def test_plain_lines_when_not_a_terminal(tmp_path, monkeypatch):
    path = tmp_path / "in.csv"
    path.write_bytes(b"header\n" + b"row\n" * 10)  # 11 lines, 10 rows, 7 + 40 = 47 bytes
    out = io.StringIO()  # not a TTY
    clock = iter([0.0, 0.0, 6.0, 8.0])  # made, entered, update, exit
    monkeypatch.setattr("gridcase.progress.time.monotonic", lambda: next(clock))
    with UploadProgress(path, header_lines=1, stream=out, label="up") as progress:
        assert progress.total_rows == 10
        progress.update(27, 47, 6)  # header + 5 rows (7 + 20 bytes) sent at t = 6 s
    lines = out.getvalue().splitlines()
    assert lines[0] == "up: 10 rows ≈, 47 bytes"
    # 5 rows in 6 s = 0.83 rows/s, shown rounded: "1 rows/s"; 27 of 47 bytes = 57 %;
    # 20 bytes left at 27 bytes per 6 s = 4.4 s
    assert lines[1] == "up: 5/10 rows ≈ (57 %), 1 rows/s, ETA 0:04"
    assert lines[2].startswith("up: sent 5 rows ≈ in 8.0 s")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"{}\n" * 4)
    out = _Terminal()
    with UploadProgress(path, header_lines=0, stream=out, label="up") as progress:
        progress.update(12, 12, 4)
    text = out.getvalue()
    assert "4/4" in text and "rows ≈" in text and "rows/s" in text and "ETA" in text
