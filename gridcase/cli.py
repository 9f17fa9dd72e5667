"""The ``gridcase`` command line (typer).

- ``gridcase up``: start broker, database (embedded unless env vars name them) and the three
  services; print their URLs; Ctrl-C stops everything cleanly.
- ``gridcase demo``: the same, plus import of the repository's real data and seed scenario A,
  wait until reporting has counted every case, print one KPI table per dataset, exit 0.
- ``gridcase import FILE --format F --tenant T --intake-url URL``: send a file to a running intake
  (formats: services/intake/importers.py FORMATS); ``--route`` evaluates routing locally instead.
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
def up(state_dir: Path = typer.Option(None, help="logs and embedded PostgreSQL data (default: a temp dir, removed at exit)"),
       keep_data: bool = typer.Option(True, help="keep existing gridcase tables (False: start empty)")) -> None:
    """Start the whole stack and keep it running until Ctrl-C (or SIGTERM)."""
    import shutil  # noqa: PLC0415

    from gridcase.runtime import Stack  # noqa: PLC0415

    temporary = state_dir is None
    stack = Stack(state_dir or Path(tempfile.mkdtemp(prefix="gridcase-")), fresh=not keep_data)
    stopping = False

    def _stop(signum, frame):  # noqa: ANN001
        nonlocal stopping
        stopping = True

    # Both signals stop the stack, also when the shell started us with SIGINT ignored (`cmd &`).
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        stack.start(progress=_echo)
        _echo("")
        _echo(f"intake     {stack.url('intake')}    POST /v1/reports, POST /v1/imports, /docs")
        _echo(f"dispatch   {stack.url('dispatch')}    /health, /metrics")
        _echo(f"reporting  {stack.url('reporting')}    /dashboard/, GET /v1/stats, /v1/kpis, /metrics")
        _echo(f"logs       {stack.state_dir}")
        _echo("for gridcase import / replay-events / dlq in another shell:")
        _echo(f"  export GRIDCASE_INTAKE_URL='{stack.url('intake')}' KAFKA_BOOTSTRAP_SERVERS='{stack.infra.kafka_bootstrap}' "
              f"DATABASE_URL='{stack.infra.database_url}'")
        _echo("Ctrl-C 停止 stops everything.")
        while not stopping:
            for name, svc in stack.services.items():
                if svc.proc and svc.proc.poll() is not None:
                    _echo(f"{name} exited with {svc.proc.returncode}; restarting")
                    stack.start_service(name)
            time.sleep(1)
    finally:
        # A second Ctrl-C must not interrupt the shutdown and leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _echo("停止 stopping …")
        stack.stop()
        if temporary:
            shutil.rmtree(stack.state_dir, ignore_errors=True)
        _echo("stopped.")


@app.command()
def demo(state_dir: Path = typer.Option(None, help="logs and embedded PostgreSQL data (default: a temp dir)")) -> None:
    """Run the pipeline on the repository's real data and print the KPI tables."""
    from gridcase.demo import run_demo  # noqa: PLC0415

    import shutil  # noqa: PLC0415

    started = time.monotonic()
    state = state_dir or Path(tempfile.mkdtemp(prefix="gridcase-demo-"))
    try:
        tables = run_demo(state, progress=_echo)
    finally:
        if state_dir is None:
            shutil.rmtree(state, ignore_errors=True)
    for table in tables:
        _echo(table)
    _echo(f"\n完成 done in {time.monotonic() - started:.0f} s.")


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="file to import"),
    format: str = typer.Option(..., "--format", "-f",
                               help="nyc311, fuzhou12345, jsonl, sf311, baltimore311, boston311, teddycup_messages, "
                                    "teddycup_labelled, teddycup_replies or csv (csv needs --mapping)"),
    tenant: str = typer.Option(..., "--tenant", "-t"),
    intake_url: str = typer.Option("http://127.0.0.1:8001", envvar="GRIDCASE_INTAKE_URL"),
    route: bool = typer.Option(False, "--route", help="do not import: read the file locally, route every record with "
                               "the tenant's rules and print the accuracy against the recorded departments and the top 10 confusions"),
    rejects: Path = typer.Option(None, "--rejects", dir_okay=False,
                                 help="write the rejected rows (line and reasons) as JSONL; intake's answer carries "
                                      "the first 100 rejected rows only"),
    mapping: Path = typer.Option(None, "--mapping", exists=True, dir_okay=False,
                                 help="column mapping (YAML) for --format csv (services/intake/importers.py load_mapping)"),
    tz: str = typer.Option(None, "--tz", help="IANA zone of naive source times (default: the tenant's)"),
) -> None:
    """Import a file of historical records through a running intake and print the counts; or, with
    ``--route``, measure the tenant's routing rules against the file's recorded departments.

    ``--rejects FILE`` writes one JSON object per rejected row, ``{"line": n, "errors": [...]}``.
    With ``--rejects`` intake lists up to 100,000 rejected rows (``max_rejects``); beyond that the
    command says how many are missing. A progress bar shows the upload on stderr; the final counts
    (rows read / accepted / rejected) follow.
    """
    if mapping is not None and format != "csv":
        raise typer.BadParameter("--mapping is only for --format csv", param_hint="--mapping")
    if route:
        from gridcase.routing_eval import evaluate_file, format_evaluation  # noqa: PLC0415
        from services.intake.importers import load_mapping  # noqa: PLC0415
        from shared.tenants import TenantConfigError, load_tenant  # noqa: PLC0415

        try:
            config = load_tenant(tenant)
            columns = load_mapping(mapping) if mapping is not None else None
            evaluation = evaluate_file(file, format, config, tz=tz, mapping=columns)
        except (TenantConfigError, ValueError, OSError) as exc:
            _echo(f"cannot evaluate routing: {exc}")
            raise typer.Exit(1) from None
        _echo(format_evaluation(evaluation, config))
        return
    if format == "csv" and mapping is None:
        raise typer.BadParameter("--format csv needs --mapping (a YAML column mapping)", param_hint="--mapping")

    import httpx  # noqa: PLC0415

    from gridcase.client import import_file  # noqa: PLC0415

    try:
        total = file.stat().st_size
        with typer.progressbar(length=total, label="上传 uploading", file=sys.stderr) as bar:
            last = 0

            def advance(sent: int, _total: int) -> None:
                nonlocal last
                bar.update(sent - last)
                last = sent

            result = import_file(intake_url, file, format, tenant, mapping=mapping, tz=tz, progress=advance,
                                 max_rejects=100_000 if rejects is not None else 100)
    except httpx.HTTPStatusError as exc:
        _echo(f"intake refused the file (HTTP {exc.response.status_code}): {exc.response.text}")
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        _echo(f"cannot reach intake at {intake_url} ({exc}); start it with `gridcase up` and set --intake-url")
        raise typer.Exit(1) from None
    if rejects is not None:
        listed = result.get("rejects", [])
        with rejects.open("w", encoding="utf-8") as out:
            for row in listed:
                out.write(json.dumps({"line": row["line"], "errors": row["errors"]}, ensure_ascii=False) + "\n")
        missing = result.get("rejected", 0) - len(listed)
        note = f" ({missing} more rejected rows are not listed: intake lists at most 100,000)" if missing > 0 else ""
        _echo(f"wrote {len(listed)} rejected rows to {rejects}{note}")
    summary = {k: v for k, v in result.items() if k != "rejects"}
    _echo(f"读取 rows read {summary['rows_read']} · 接收 accepted {summary['accepted']} "
          f"(new {summary['accepted'] - summary['duplicates']}) · 拒收 rejected {summary['rejected']}")
    _echo(json.dumps(summary, ensure_ascii=False, indent=2))


def _connections() -> tuple[str, str]:
    import os  # noqa: PLC0415

    kafka, db = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if not kafka or not db:
        raise typer.BadParameter("set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (gridcase up prints them)")
    return kafka, db


@app.command("replay-events")
def replay_events_cmd(
    since: str = typer.Option(..., help="ISO 8601 time with zone; events created at or after it are published again"),
) -> None:
    """Publish the event log again (e.g. after a memory broker lost its log); consumers deduplicate."""
    import asyncio  # noqa: PLC0415
    from datetime import datetime  # noqa: PLC0415

    from gridcase.ops import replay_events  # noqa: PLC0415

    kafka, db = _connections()
    try:
        moment = datetime.fromisoformat(since)
        counts = asyncio.run(replay_events(db, moment, kafka))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc
    _echo(json.dumps({"queued_again": counts}, ensure_ascii=False))


dlq_app = typer.Typer(help="Dead letters: list and re-drive records consumers could not process.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(topic: str = typer.Option("gridcase.case.reported", help="source topic of the dead letters")) -> None:
    """Print one JSON line per dead letter: position, key, error headers, value size."""
    import asyncio  # noqa: PLC0415

    from gridcase.ops import list_dead_letters  # noqa: PLC0415

    kafka, _ = _connections()
    for r in asyncio.run(list_dead_letters(kafka, topic)):
        _echo(json.dumps({"topic": r.topic, "partition": r.partition, "offset": r.offset, "key": r.key,
                          "headers": r.headers, "value_bytes": len(r.value)}, ensure_ascii=False))


@dlq_app.command("redrive")
def dlq_redrive(topic: str = typer.Option("gridcase.case.reported", help="source topic of the dead letters")) -> None:
    """Publish dead letters not yet re-driven back to their source topic (e.g. after a fix)."""
    import asyncio  # noqa: PLC0415

    from gridcase.ops import redrive_dead_letters  # noqa: PLC0415

    kafka, _ = _connections()
    _echo(json.dumps({"redriven": asyncio.run(redrive_dead_letters(kafka, topic))}))


reporting_app = typer.Typer(help="Reporting maintenance.")
app.add_typer(reporting_app, name="reporting")


@reporting_app.command("rebuild")
def reporting_rebuild() -> None:
    """Recompute reporting's statistics from the event log (intake's and dispatch's outboxes)."""
    import asyncio  # noqa: PLC0415
    import os  # noqa: PLC0415

    from gridcase.ops import rebuild_reporting  # noqa: PLC0415

    db = os.environ.get("DATABASE_URL")
    if not db:
        raise typer.BadParameter("set DATABASE_URL (gridcase up prints it)")
    _echo(json.dumps({"rebuilt": asyncio.run(rebuild_reporting(db))}))


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
