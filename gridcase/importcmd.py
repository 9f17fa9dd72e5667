"""``gridcase import``: send a file of historical records to a running intake, or (``--route``)
measure the tenant's routing rules against the file's recorded departments.

Exit codes: 0 every row accepted (or ``--allow-rejects``); 1 intake refused the file or cannot be
reached, or routing cannot be evaluated; 2 bad options; 3 some rows were rejected
(:data:`EXIT_REJECTS`). The rejects file lists each rejected row by the line of the file where it
starts (a CSV header is line 1), as an editor shows it. Progress: gridcase/progress.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

#: Exit code when rows were rejected and ``--allow-rejects`` was not given.
EXIT_REJECTS = 3
#: Rejected rows intake lists in its answer when a rejects file is asked for.
MAX_LISTED = 100_000


def _echo(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


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
                                 help="write the rejected rows as JSON lines: the file line where each starts "
                                      "(a CSV header is line 1) and the reasons"),
    allow_rejects: bool = typer.Option(False, "--allow-rejects",
                                       help=f"exit 0 even when rows were rejected (default: exit {EXIT_REJECTS})"),
    mapping: Path = typer.Option(None, "--mapping", exists=True, dir_okay=False,
                                 help="column mapping (YAML) for --format csv (services/intake/importers/mapping.py load_mapping)"),
    tz: str = typer.Option(None, "--tz", help="IANA zone of naive source times (default: the tenant's)"),
) -> None:
    """Import a file of historical records through a running intake and print the counts; or, with --route, measure the tenant's routing rules against the file's recorded departments.

    With --rejects FILE every rejected row is written as one JSON line, {"line": n, "errors": [...]}, where n is the line of the file on which the row starts (a CSV header is line 1).

    Exit code 3 when any row was rejected, unless --allow-rejects; 1 when intake refused the file or cannot be reached.

    Progress (rows, rows/s, time left) goes to stderr: a bar on a terminal, a line every few seconds otherwise.
    """
    if mapping is not None and format != "csv":
        raise typer.BadParameter("--mapping is only for --format csv", param_hint="--mapping")
    if route:
        _route(file, format, tenant, mapping, tz)
        return
    if format == "csv" and mapping is None:
        raise typer.BadParameter("--format csv needs --mapping (a YAML column mapping)", param_hint="--mapping")
    result = _send(file, format, tenant, intake_url, mapping, tz, rejects is not None)
    if rejects is not None:
        _write_rejects(rejects, result)
    summary = {k: v for k, v in result.items() if k != "rejects"}
    _echo(f"读取 rows read {summary['rows_read']} · 接收 accepted {summary['accepted']} "
          f"(new {summary['accepted'] - summary['duplicates']}) · 拒收 rejected {summary['rejected']}")
    _echo(json.dumps(summary, ensure_ascii=False, indent=2))
    if summary["rejected"] and not allow_rejects:
        hint = f"see {rejects}" if rejects is not None else "--rejects FILE lists them"
        typer.echo(f"拒收 {summary['rejected']} rows rejected ({hint}); exit {EXIT_REJECTS} "
                   "(--allow-rejects accepts a partial import)", err=True)
        raise typer.Exit(EXIT_REJECTS)


def _route(file: Path, format: str, tenant: str, mapping: Path | None, tz: str | None) -> None:
    from gridcase.routing_eval import evaluate_file, format_evaluation  # noqa: PLC0415
    from services.intake.importers.mapping import load_mapping  # noqa: PLC0415
    from shared.domain.tenants import TenantConfigError, load_tenant  # noqa: PLC0415

    try:
        config = load_tenant(tenant)
        columns = load_mapping(mapping) if mapping is not None else None
        evaluation = evaluate_file(file, format, config, tz=tz, mapping=columns)
    except (TenantConfigError, ValueError, OSError) as exc:
        _echo(f"cannot evaluate routing: {exc}")
        raise typer.Exit(1) from None
    _echo(format_evaluation(evaluation, config))


def _send(file: Path, format: str, tenant: str, intake_url: str, mapping: Path | None, tz: str | None,
          list_all: bool) -> dict:
    """POST the file (gridcase/client.py ``import_file``) with a progress display; intake's answer."""
    import httpx  # noqa: PLC0415

    from gridcase import client  # noqa: PLC0415
    from gridcase.progress import UploadProgress  # noqa: PLC0415

    try:
        with UploadProgress(file, header_lines=0 if format == "jsonl" else 1) as progress:
            return client.import_file(intake_url, file, format, tenant, mapping=mapping, tz=tz,
                                      progress=progress.update, max_rejects=MAX_LISTED if list_all else 100)
    except httpx.HTTPStatusError as exc:
        _echo(f"intake refused the file (HTTP {exc.response.status_code}): {exc.response.text}")
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        _echo(f"cannot reach intake at {intake_url} ({exc}); start it with `gridcase up` and set --intake-url")
        raise typer.Exit(1) from None


def _write_rejects(path: Path, result: dict) -> None:
    listed = result.get("rejects", [])
    with path.open("w", encoding="utf-8") as out:
        for row in listed:
            out.write(json.dumps({"line": row["line"], "errors": row["errors"]}, ensure_ascii=False) + "\n")
    missing = result.get("rejected", 0) - len(listed)
    note = f" ({missing} more rejected rows are not listed: intake lists at most {MAX_LISTED:,})" if missing > 0 else ""
    _echo(f"wrote {len(listed)} rejected rows to {path}{note}")
