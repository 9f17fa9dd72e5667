"""The ``gridcase`` command line (typer).

- ``gridcase up``: start broker, database (embedded unless env vars name them) and the three
  services; print their URLs; Ctrl-C stops everything cleanly.
- ``gridcase demo``: the same, plus import of the repository's real data and seed scenario A,
  wait until reporting has counted every case, print one KPI table per dataset, act out seeds B–D
  and write the work summaries of A–D (.docx, .md), exit 0.
- ``gridcase import FILE --format F --tenant T --intake-url URL``: send a file to a running intake
  (formats: services/intake/importers/formats.py FORMATS); ``--route`` evaluates routing locally instead.
- ``gridcase seed-a [--out PATH]``: write seed scenario A as JSONL.
- ``gridcase summary --tenant T --place P --start D --end D --out FILE.docx|.md``: the work summary
  (工作总结) of a place for a period, from a running reporting (docs/summary.md).
- ``gridcase auth issue-key|issue-token|revoke|list``: credentials (shared/platform/authstore.py).
- ``gridcase pii new-key|rotate|anonymise``: reporter data at rest (shared/platform/crypto.py).
- ``gridcase model train|evaluate``: the text classifier (gridcase/model.py, docs/classifier.md).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import typer

from gridcase.importcmd import import_

app = typer.Typer(add_completion=False, help="gridcase: 网格化服务管理 event pipeline (intake → dispatch → reporting).")


def _echo(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


LOG_FORMAT = typer.Option("text", "--log-format", envvar="GRIDCASE_LOG_FORMAT",
                          help="the services' logs: text (plain lines) or json (one JSON object per line)")


def _log_format(value: str) -> None:
    """Check ``--log-format`` and hand it to the services (``GRIDCASE_LOG_FORMAT``)."""
    if value not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--log-format")
    os.environ["GRIDCASE_LOG_FORMAT"] = value


@app.command()
def up(state_dir: Path = typer.Option(None, help="logs and embedded PostgreSQL data (default: a temp dir, removed at exit)"),
       keep_data: bool = typer.Option(True, help="keep existing gridcase tables (False: start empty)"),
       log_format: str = LOG_FORMAT) -> None:
    """Start the whole stack and keep it running until Ctrl-C (or SIGTERM).

    The services' warnings (e.g. the development key for personal data) are shown here too; their
    full logs are in the state folder."""
    import shutil  # noqa: PLC0415

    from gridcase.logwatch import WarningRelay, stack_logs  # noqa: PLC0415
    from gridcase.runtime import Stack  # noqa: PLC0415
    from gridcase.supervise import Supervisor  # noqa: PLC0415

    _log_format(log_format)

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
        _echo(f"admin key  {stack.admin_key}")
        _echo("           (dashboard sign-in, Authorization: Bearer …; more keys: gridcase auth issue-key)")
        _echo("for gridcase import / auth / replay-events / dlq in another shell:")
        jwt_secret = stack.env.get("GRIDCASE_JWT_SECRET") or os.environ.get("GRIDCASE_JWT_SECRET", "")
        _echo(f"  export GRIDCASE_INTAKE_URL='{stack.url('intake')}' GRIDCASE_REPORTING_URL='{stack.url('reporting')}' "
              f"KAFKA_BOOTSTRAP_SERVERS='{stack.infra.kafka_bootstrap}' "
              f"DATABASE_URL='{stack.infra.database_url}' GRIDCASE_API_KEY='{stack.admin_key}' "
              f"GRIDCASE_JWT_SECRET='{jwt_secret}'")
        _echo("Ctrl-C 停止 stops everything.")
        # Restarts an exited service, a killed embedded broker (then replays its lost log) or
        # PostgreSQL, and prints each change of a service's /health (gridcase/supervise.py).
        with WarningRelay(stack_logs(stack), _echo):
            Supervisor(stack, progress=_echo).run(lambda: stopping)
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
def demo(state_dir: Path = typer.Option(None, help="logs and embedded PostgreSQL data (default: a temp dir)"),
         summaries_dir: Path = typer.Option(None, help="where the seed scenarios' work summaries (.docx, .md) go "
                                                       "(default: a new temp dir, kept)"),
         log_format: str = LOG_FORMAT) -> None:
    """Run the pipeline on the repository's real data: KPI tables and work summaries (工作总结).

    Prints the KPI tables and writes the seed scenarios' work summaries; the services' warnings
    are shown as they happen."""
    import shutil  # noqa: PLC0415

    _log_format(log_format)

    from gridcase.demo import run_demo  # noqa: PLC0415

    started = time.monotonic()
    state = state_dir or Path(tempfile.mkdtemp(prefix="gridcase-demo-"))
    try:
        tables = run_demo(state, progress=_echo, summaries_dir=summaries_dir)
    finally:
        if state_dir is None:
            shutil.rmtree(state, ignore_errors=True)
    for table in tables:
        _echo(table)
    _echo(f"\n完成 done in {time.monotonic() - started:.0f} s.")


# gridcase import: gridcase/importcmd.py (options, exit codes, progress)
app.command("import")(import_)


def _connections() -> tuple[str, str]:
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
    """Print one JSON line per dead letter: position, key, error headers, value size (none: a line
    saying so on stderr)."""
    import asyncio  # noqa: PLC0415

    from gridcase.ops import list_dead_letters  # noqa: PLC0415

    kafka, _ = _connections()
    letters = asyncio.run(list_dead_letters(kafka, topic))
    for r in letters:
        _echo(json.dumps({"topic": r.topic, "partition": r.partition, "offset": r.offset, "key": r.key,
                          "headers": r.headers, "value_bytes": len(r.value)}, ensure_ascii=False))
    if not letters:  # on stderr: stdout stays one JSON line per dead letter
        typer.echo(f"没有死信 no dead letters for {topic}", err=True)


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

    from gridcase.ops import rebuild_reporting  # noqa: PLC0415

    _echo(json.dumps({"rebuilt": asyncio.run(rebuild_reporting(_database_url()))}))


auth_app = typer.Typer(help="Credentials: API keys and bearer tokens, bound to a tenant, role and place scope.")
app.add_typer(auth_app, name="auth")
pii_app = typer.Typer(help="Reporter data at rest: keys, rotation, anonymisation.")
app.add_typer(pii_app, name="pii")

from gridcase.model import model_app  # noqa: E402

app.add_typer(model_app, name="model")

_ROLE_HELP = "grid_worker | community_staff | street_staff | department_staff | mediator | city_ops | admin"


def _database_url() -> str:
    db = os.environ.get("DATABASE_URL")
    if not db:
        raise typer.BadParameter("set DATABASE_URL (gridcase up prints it)")
    return db


async def _with_engine(migrations: Path, schema: str, work):
    """``await work(engine)`` on ``$DATABASE_URL`` with ``schema`` migrated first."""
    from shared.platform.db import make_engine, run_migrations_async  # noqa: PLC0415

    url = _database_url()
    await run_migrations_async(url, migrations, schema)
    engine = make_engine(url)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


async def _with_auth_engine(work):
    from shared.platform.authstore import MIGRATIONS, SCHEMA  # noqa: PLC0415

    return await _with_engine(MIGRATIONS, SCHEMA, work)


def _check_place(tenant: str, scope: str) -> None:
    """Refuse a scope that is not a place (or under a place) of the tenant's configuration."""
    from shared.domain.tenants import load_all_tenants  # noqa: PLC0415
    from shared.platform.settings import ServiceSettings  # noqa: PLC0415

    if tenant == "*":
        return
    tenants = load_all_tenants(ServiceSettings().tenants_dir or None)
    if tenant not in tenants:
        raise typer.BadParameter(f"tenant {tenant!r} is not configured ({', '.join(sorted(tenants))})", param_hint="--tenant")
    config = tenants[tenant]
    if scope and config.places and config.owner(scope) is None and not any(p.code.startswith(scope) for p in config.places):
        raise typer.BadParameter(f"{scope!r} is not a place of tenant {tenant!r}", param_hint="--scope")


def _check_department(tenant: str, department: str | None) -> None:
    """Refuse a department that is neither in the taxonomy nor one of the tenant's own."""
    from shared.domain.taxonomy import load_taxonomy  # noqa: PLC0415
    from shared.domain.tenants import load_all_tenants  # noqa: PLC0415
    from shared.platform.settings import ServiceSettings  # noqa: PLC0415

    if not department:
        return
    config = load_all_tenants(ServiceSettings().tenants_dir or None).get(tenant)
    if load_taxonomy().department(department) is None and (config is None or config.department(department) is None):
        raise typer.BadParameter(f"{department!r} is not a department of the taxonomy or of tenant {tenant!r}",
                                 param_hint="--department")


def _issue(kind: str, tenant: str, role: str, scope: str, department: str | None, label: str, ttl) -> None:
    import asyncio  # noqa: PLC0415

    from shared.platform.auth import AccessError  # noqa: PLC0415
    from shared.platform.authstore import issue  # noqa: PLC0415

    _check_place(tenant, scope)
    _check_department(tenant, department)
    try:
        issued = asyncio.run(_with_auth_engine(lambda engine: issue(
            engine, kind=kind, tenant=tenant, role=role, scope=scope, department=department, label=label, ttl=ttl,
            jwt_secret=os.environ.get("GRIDCASE_JWT_SECRET", ""))))
    except (AccessError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    _echo(json.dumps({"credential_id": issued.credential_id, "kind": kind, "tenant": tenant, "role": role,
                      "scope": scope, "department": department,
                      "expires_at": issued.expires_at.isoformat() if issued.expires_at else None}, ensure_ascii=False))
    _echo(issued.secret)


@auth_app.command("issue-key")
def auth_issue_key(
    tenant: str = typer.Option(..., help="tenant the key is bound to ('*': every tenant, admin only)"),
    role: str = typer.Option(..., help=_ROLE_HELP),
    scope: str = typer.Option("", help="place-code prefix the key sees (grid, community or street code; '' = whole tenant)"),
    department: str = typer.Option(None, help="department code (department_staff only)"),
    label: str = typer.Option("", help="what or whom the key is for (no personal data)"),
    expires_days: float = typer.Option(None, help="lifetime in days (default: until revoked)"),
) -> None:
    """Issue an API key. Prints its description (JSON) and, on the next line, the key: shown only
    now, stored only as a hash."""
    from datetime import timedelta  # noqa: PLC0415

    _issue("api_key", tenant, role, scope, department, label, timedelta(days=expires_days) if expires_days else None)


@auth_app.command("issue-token")
def auth_issue_token(
    tenant: str = typer.Option(...), role: str = typer.Option(..., help=_ROLE_HELP),
    scope: str = typer.Option(""), department: str = typer.Option(None), label: str = typer.Option(""),
    ttl_hours: float = typer.Option(12, help="lifetime in hours"),
) -> None:
    """Issue a JWT bearer token (HS256 with GRIDCASE_JWT_SECRET). Prints its description and the token."""
    from datetime import timedelta  # noqa: PLC0415

    _issue("jwt", tenant, role, scope, department, label, timedelta(hours=ttl_hours))


@auth_app.command("revoke")
def auth_revoke(credential_id: str = typer.Argument(..., help="key id (k…) or token id (t…)")) -> None:
    """Revoke a key or token; services refuse it within GRIDCASE_AUTH_CACHE_SECONDS (default 5 s)."""
    import asyncio  # noqa: PLC0415

    from shared.platform.authstore import revoke  # noqa: PLC0415

    done = asyncio.run(_with_auth_engine(lambda engine: revoke(engine, credential_id)))
    _echo(json.dumps({"credential_id": credential_id, "revoked": done}))
    if not done:
        raise typer.Exit(1)


@auth_app.command("list")
def auth_list() -> None:
    """One JSON line per credential (never the secrets)."""
    import asyncio  # noqa: PLC0415

    from shared.platform.authstore import list_credentials  # noqa: PLC0415

    for row in asyncio.run(_with_auth_engine(list_credentials)):
        _echo(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}, ensure_ascii=False))


@pii_app.command("new-key")
def pii_new_key(key_id: str = typer.Argument(..., help="id of the new key, e.g. 2026q4")) -> None:
    """Print a fresh AES-256 key entry 'id:base64' for INTAKE_PII_KEYS (put it first to rotate)."""
    from shared.platform.crypto import new_key  # noqa: PLC0415

    _echo(f"{key_id}:{new_key()}")


async def _with_intake_engine(work):
    from services.intake.db import MIGRATIONS, SCHEMA  # noqa: PLC0415

    return await _with_engine(MIGRATIONS, SCHEMA, work)


@pii_app.command("rotate")
def pii_rotate() -> None:
    """Re-encrypt every stored reporter record under the first key of INTAKE_PII_KEYS."""
    import asyncio  # noqa: PLC0415

    from services.intake.domain.privacy import keyring_of  # noqa: PLC0415
    from services.intake.settings import IntakeSettings  # noqa: PLC0415
    from services.intake.store import reseal_reporters  # noqa: PLC0415
    from shared.platform.crypto import KeyringError  # noqa: PLC0415

    try:
        keyring = keyring_of(IntakeSettings())
        done = asyncio.run(_with_intake_engine(lambda engine: reseal_reporters(engine, keyring)))
    except KeyringError as exc:
        raise typer.BadParameter(str(exc), param_hint="INTAKE_PII_KEYS") from exc
    _echo(json.dumps({"resealed": done, "key_id": keyring.current}))


@pii_app.command("anonymise")
def pii_anonymise(
    after_days: float = typer.Option(None, help="default: INTAKE_ANONYMISE_AFTER_DAYS (365)"),
    case: list[str] = typer.Option(None, "--case", help="only this case (repeatable): an erasure request"),
) -> None:
    """Erase the personal data of cases closed more than AFTER_DAYS ago (intake also does it
    hourly): intake's report, outbox, history and audit trail (services/intake/erasure.py), then
    dispatch's copies with the same known data (services/dispatch/erasure.py), then reporting's
    reporter references of those cases (services/reporting/erasure.py)."""
    import asyncio  # noqa: PLC0415
    import uuid  # noqa: PLC0415
    from datetime import timedelta  # noqa: PLC0415

    from services.dispatch.erasure import erase_cases  # noqa: PLC0415
    from services.intake.domain.privacy import keyring_of  # noqa: PLC0415
    from services.intake.erasure import anonymise_closed  # noqa: PLC0415
    from services.intake.settings import IntakeSettings  # noqa: PLC0415
    from services.reporting.erasure import forget_reporters  # noqa: PLC0415

    settings = IntakeSettings()
    days = after_days if after_days is not None else settings.anonymise_after_days
    try:
        case_ids = [uuid.UUID(c) for c in case] if case else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--case") from exc
    known: dict = {}

    async def erase(engine) -> tuple[int, int]:
        done = await anonymise_closed(engine, timedelta(days=days), keyring=keyring_of(settings), case_ids=case_ids,
                                      collect=known)
        rows = await erase_cases(engine, known) if known else 0
        if known:
            await forget_reporters(engine, case_ids=list(known))
        return done, rows

    done, dispatch_rows = asyncio.run(_with_intake_engine(erase))
    _echo(json.dumps({"anonymised": done, "after_days": days, "dispatch_rows_rewritten": dispatch_rows}))


@app.command("seed-a")
def seed_a(out: Path = typer.Option(None, help="output JSONL file (default: stdout)")) -> None:
    """Write seed scenario A (docs/seeds.md block A) as JSONL in the project's import format."""
    from gridcase.seeds import generate_seed_a, write_seed_a  # noqa: PLC0415

    if out:
        write_seed_a(out)
    else:
        for record in generate_seed_a():
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


def period_bound(value: str, tz_name: str) -> str:
    """A period end as ISO 8601 with a zone: a date (``2026-03-01``) is that day's local midnight
    in ``tz_name``; a date-time is passed on as given (the API refuses one without a zone)."""
    from datetime import date, datetime  # noqa: PLC0415
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz_name)).isoformat()


@app.command("summary")
def summary(
    tenant: str = typer.Option(..., help="tenant, e.g. demo-grid"),
    start: str = typer.Option(..., help="period start: a date (local midnight) or ISO 8601 with zone"),
    end: str = typer.Option(..., help="period end, exclusive: a date (local midnight) or ISO 8601 with zone"),
    out: Path = typer.Option(..., help="output file: .docx (Word) or .md (Markdown)"),
    place: str = typer.Option(None, help="place code (street, community or grid); default: the whole tenant"),
    department: str = typer.Option(None, help="department code: that department's summary"),
    reporting_url: str = typer.Option(None, envvar="GRIDCASE_REPORTING_URL", help="reporting's base URL"),
) -> None:
    """Write a place's work summary (工作总结) for a period, in Chinese.

    Asks reporting's GET /v1/summary/document and writes the .docx or .md it answers."""
    import httpx  # noqa: PLC0415

    from gridcase.client import get_summary_document  # noqa: PLC0415
    from shared.domain.tenants import TenantConfigError, load_tenant  # noqa: PLC0415

    fmt = {".docx": "docx", ".md": "md"}.get(out.suffix.lower())
    if fmt is None:
        _echo("错误 error: --out must end in .docx or .md")
        raise typer.Exit(2)
    if not reporting_url:
        _echo("错误 error: set GRIDCASE_REPORTING_URL or --reporting-url (gridcase up prints it)")
        raise typer.Exit(2)
    try:
        tz = load_tenant(tenant).timezone
    except (TenantConfigError, FileNotFoundError):
        tz = "UTC"  # an unknown tenant: reporting answers 404 for it
    try:
        body = get_summary_document(reporting_url, tenant, period_bound(start, tz), period_bound(end, tz), fmt,
                                    place=place, department=department)
    except httpx.HTTPStatusError as e:
        _echo(f"错误 error: {e.response.status_code} {e.response.text}")
        raise typer.Exit(1) from None
    out.write_bytes(body)
    _echo(f"已写入 written {out} ({len(body)} bytes)")


if __name__ == "__main__":
    app()
