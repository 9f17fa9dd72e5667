"""The ``gridcase`` command line (typer).

- ``gridcase up``: start broker, database (embedded unless env vars name them) and the three
  services; print their URLs; Ctrl-C stops everything cleanly.
- ``gridcase demo``: the same, plus import of the repository's real data and seed scenario A,
  wait until reporting has counted every case, print one KPI table per dataset, exit 0.
- ``gridcase import FILE --format F --tenant T --intake-url URL``: send a file to a running intake.
- ``gridcase seed-a [--out PATH]``: write seed scenario A as JSONL.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help="gridcase: 网格化服务管理 event pipeline (intake → dispatch → reporting).")


def _echo(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


@app.command()
def up(state_dir: Path = typer.Option(None, help="logs and embedded PostgreSQL data (default: a temp dir)"),
       keep_data: bool = typer.Option(True, help="keep existing gridcase tables (False: start empty)")) -> None:
    """Start the whole stack and keep it running until Ctrl-C."""
    from gridcase.runtime import Stack  # noqa: PLC0415

    stack = Stack(state_dir or Path(tempfile.mkdtemp(prefix="gridcase-")), fresh=not keep_data)
    stopping = False

    def _stop(signum, frame):  # noqa: ANN001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        stack.start(progress=_echo)
        _echo("")
        _echo(f"intake     {stack.url('intake')}    POST /v1/reports, POST /v1/imports, /docs")
        _echo(f"dispatch   {stack.url('dispatch')}    /health, /metrics")
        _echo(f"reporting  {stack.url('reporting')}    GET /v1/stats, /metrics")
        _echo(f"logs       {stack.state_dir}")
        _echo("Ctrl-C 停止 stops everything.")
        while not stopping:
            for name, svc in stack.services.items():
                if svc.proc and svc.proc.poll() is not None:
                    _echo(f"{name} exited with {svc.proc.returncode}; restarting")
                    stack.start_service(name)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        _echo("停止 stopping …")
        stack.stop()
        _echo("stopped.")


@app.command()
def demo(state_dir: Path = typer.Option(None, help="logs and embedded PostgreSQL data (default: a temp dir)")) -> None:
    """Run the pipeline on the repository's real data and print the KPI tables."""
    from gridcase.demo import run_demo  # noqa: PLC0415

    started = time.monotonic()
    tables = run_demo(state_dir, progress=_echo)
    for table in tables:
        _echo(table)
    _echo(f"\n完成 done in {time.monotonic() - started:.0f} s.")


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="file to import"),
    format: str = typer.Option(..., "--format", "-f", help="nyc311, fuzhou12345 or jsonl"),
    tenant: str = typer.Option(..., "--tenant", "-t"),
    intake_url: str = typer.Option("http://127.0.0.1:8001", envvar="GRIDCASE_INTAKE_URL"),
) -> None:
    """Import a file of historical records through a running intake; print the counts."""
    from gridcase.client import import_file  # noqa: PLC0415

    result = import_file(intake_url, file, format, tenant)
    _echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command("seed-a")
def seed_a(out: Path = typer.Option(None, help="output JSONL file (default: stdout)")) -> None:
    """Write seed scenario A (seed-figures.md block A) as JSONL in the project's import format."""
    from gridcase.seeds import generate_seed_a, write_seed_a  # noqa: PLC0415

    if out:
        write_seed_a(out)
    else:
        for record in generate_seed_a():
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    app()
