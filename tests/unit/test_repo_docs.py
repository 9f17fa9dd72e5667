"""The repository's own promises: README's commands, CI running README's test command."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.startswith("python3 -m venv .venv")]


def test_readme_has_demo_and_test_commands():
    commands = _readme_commands()
    assert any(c.endswith("gridcase demo") for c in commands)
    assert any("pytest" in c for c in commands)


def test_ci_runs_readme_test_command():
    test_command = next(c for c in _readme_commands() if "pytest" in c)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci


def test_demo_data_is_in_the_repository():
    # The demo must work from files inside the repo (NYC Open Data may be carried; the Chinese
    # samples may not).
    assert (REPO / "data" / "nyc311_2018-10-21_sample.csv").stat().st_size > 1_000_000
    # Both Chinese sources (Teddy Cup 2020 C, Fuzhou 12345), in any file format, anywhere under data/.
    chinese = [p for p in (REPO / "data").rglob("*") if "teddy" in p.name.lower() or "fuzhou" in p.name.lower()]
    assert not chinese, chinese
