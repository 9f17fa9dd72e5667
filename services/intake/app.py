"""Intake: the HTTP front door. Takes reports and import files, stores them, publishes them.

Every accepted report is written to ``intake.reports`` together with its ``CaseReported`` event in
``intake.outbox``, in one transaction; the outbox relay publishes the event to Kafka afterwards. So
a 202 answer means the report is durable, whether Kafka is up or not.

Endpoints:
- ``POST /v1/reports`` (JSON :class:`ReportIn`, optional ``Idempotency-Key`` header) → 202.
- ``POST /v1/imports?format=nyc311|fuzhou12345|jsonl&tenant=…`` (file as the raw body or as a
  multipart ``file`` field) → 200 with rows read / accepted / duplicates / rejected.
- ``GET /v1/cases/{id}``, ``POST /v1/cases/{id}/actions``, ``GET /v1/cases/{id}/audit``.
- ``POST /v1/patrols``; Open311 GeoReport v2 under ``/open311/v2/``.
- ``GET /health``, ``GET /metrics`` (no credential needed; no case data).

Every ``/v1`` endpoint needs a credential (shared/platform/authhttp.py) and is place-scoped
(shared/platform/auth.py): a read outside the caller's scope is 404, a write 403; requests are rate
limited per credential (429 + ``Retry-After``). Reporter contact data is sealed with AES-256-GCM
(shared/platform/crypto.py) and erased ``anonymise_after_days`` after the case closed.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import concurrent.futures
import contextlib
import logging
import threading
import os
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import db
from services.intake.importers.formats import DEFAULT_TIMEZONE, FORMATS, UnknownFormat, iter_records
from services.intake.importers.mapping import parse_mapping
from services.intake.open311 import install as install_open311, taxonomy as open311_taxonomy
from services.intake.schemas import ActionIn, ImportResult, PatrolIn, ReportAccepted, ReportIn, RowError
from shared.platform.auth import PATROL, REPORT, Principal
from shared.platform.authhttp import Authenticator, caller, forbidden, not_found
from shared.platform.authstore import MIGRATIONS as AUTH_MIGRATIONS, SCHEMA as AUTH_SCHEMA
from shared.domain.casefacts import CaseFold
from shared.platform.crypto import Keyring
from shared.platform.consumer import BatchProcessor
from shared.platform.db import make_engine, run_migrations_async
from shared.platform.http import BodyLimit, error_response, install_error_handlers
from services.dispatch import lifecycle
from shared.contract.events import CaseActionRequested, CaseReported, PatrolRecorded, derive_id
from shared.platform.kafka import ensure_topics, make_producer
from shared.platform.outbox import OutboxRelay, OutboxRow, add_to_outbox
from shared.domain.pii import mask_text, pseudonym
from services.intake.settings import IntakeSettings
from shared.platform.telemetry import configure_logging, install_task_dump, instrument_http, new_registry
from shared.domain.tenants import TenantConfig, load_all_tenants
from shared.platform.stream import DlqProducer, build_broker, subscribe_batches
from shared.contract.topics import TOPIC_ACTIONS, TOPIC_LIFECYCLE, TOPIC_PATROLS, TOPIC_REPORTED

log = logging.getLogger("gridcase.intake")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
IMPORT_BATCH = 500
#: Actions an actor may ask for: the lifecycle's user actions plus 逐级上报 (escalate: "handle it if
#: you can, report it up level by level if you cannot", seed-figures.md E).
API_ACTIONS = lifecycle.USER_ACTIONS + ("escalate",)
MAX_REPORT_BYTES = 64 * 1024


def to_event(report: ReportIn, case_id: uuid.UUID, secret: bytes, masked_description: str | None = None) -> CaseReported:
    """Build the ``CaseReported`` event of an accepted report: personal data dropped (only a
    pseudonymous ``reporter_ref``), free text masked (:func:`shared.domain.pii.mask_text`;
    ``masked_description`` when the caller has masked the description already)."""
    contact = report.reporter
    return CaseReported(
        event_id=derive_id(case_id, "case.reported"),
        occurred_at=report.reported_at,
        case_id=case_id,
        tenant=report.tenant,
        place_code=report.place_code,
        category_code=report.category_code,
        category_name=mask_text(report.category_name),
        description=mask_text(report.description) if masked_description is None else masked_description,
        channel=mask_text(report.channel),
        request_type=mask_text(report.request_type),
        urgency=report.urgency,
        reported_at=report.reported_at,
        source=mask_text(report.source),
        source_id=report.source_id,
        reporter_ref=pseudonym(secret, contact.phone, contact.id_number, contact.name) if contact else None,
        history=report.history,
        flags=tuple(report.flags),
    )


async def load_case(engine: AsyncEngine, case_id: uuid.UUID) -> dict | None:
    """The case as ``GET /v1/cases/{id}`` shows it, or ``None`` when intake never accepted it.

    ``state`` is ``reported`` until dispatch's first event reaches the case view.
    """
    r, v, e = db.reports, db.case_view, db.case_events
    async with engine.connect() as conn:
        report = (await conn.execute(sa.select(r.c.tenant, r.c.report).where(r.c.case_id == case_id))).one_or_none()
        if report is None:
            return None
        row = (await conn.execute(sa.select(v).where(v.c.case_id == case_id))).mappings().one_or_none()
        events = (
            await conn.execute(sa.select(e.c.payload).where(e.c.case_id == case_id).order_by(e.c.occurred_at, e.c.event_id))
        ).scalars().all()
    body = dict(report.report)
    for name in ("description", "category_name", "channel", "request_type", "source", "source_id"):
        if isinstance(body.get(name), str):
            body[name] = mask_text(body[name])
    state = dict(row) if row else {}
    history = sorted(events, key=lambda p: (p.get("sequence") or 0, p["occurred_at"]))
    return {
        "case_id": str(case_id),
        "tenant": report.tenant,
        "report": {k: body.get(k) for k in ("category_code", "category_name", "place_code", "description", "channel",
                                             "request_type", "urgency", "reported_at", "source", "source_id")},
        "state": state.get("state") or ("closed" if state.get("closed") else "reported"),
        "department": state.get("department"),
        "target_kind": state.get("target_kind"),
        "deadline": state.get("deadline"),
        "closed": bool(state.get("closed")),
        "closed_at": state.get("closed_at"),
        "transfer_count": state.get("transfer_count", 0),
        "return_count": state.get("return_count", 0),
        "rework_count": state.get("rework_count", 0),
        "supervision_level": state.get("supervision_level", 0),
        "history": history,
    }


def place_problem(tenant: TenantConfig, place_code: str) -> str | None:
    """Why ``place_code`` cannot be a place of ``tenant`` (``None`` if it can): the code must be a
    listed place or lie under one (e.g. a building under a listed grid)."""
    if tenant.places and tenant.owner(place_code) is None:
        return f"place {place_code!r} is not in tenant {tenant.tenant!r}'s place hierarchy"
    return None


def where_refusal(svc: "Intake", tenant: str, place_code: str):
    """A 422 answer when ``tenant`` is not configured or ``place_code`` is not one of its places;
    ``None`` when both are fine."""
    if tenant not in svc.tenants:
        return error_response(422, "unknown_tenant", f"tenant {tenant!r} is not configured", field="tenant")
    problem = place_problem(svc.tenants[tenant], place_code)
    if problem:
        return error_response(422, "unknown_place", problem, field="place_code")
    return None


def scope_refusal(who: Principal, capability: str, tenant: str, place_code: str) -> None:
    """Check that ``who`` may write (``capability``: REPORT or PATROL) at ``place_code`` of ``tenant``.

    Raises:
        HTTPException: 403 ``forbidden`` for a role without the capability or a place outside
            the caller's scope (issue 6 item 2: a write outside one's scope is 403).
    """
    if not who.may(capability):
        raise forbidden(f"role {who.role} may not {capability}", role=who.role)
    if not who.sees_place(tenant, place_code):
        raise forbidden("the place is outside your scope", field="place_code", scope=who.scope or None)


def visible_case(view: dict | None, who: Principal, case_id: uuid.UUID) -> dict:
    """``view`` when ``who`` may see the case.

    Raises:
        HTTPException: 404 when there is no such case or it is outside the caller's scope (the
            same answer, so nothing tells that it exists).
    """
    if view is None or not who.sees_case(view["tenant"], view["report"]["place_code"], view["department"]):
        raise not_found(f"no case {case_id}", field="case_id")
    return view


def audit_rows_of(events) -> list[dict]:
    """Audit records of lifecycle events (services/intake/db.py ``audit_log``): applied
    transitions and dispatches with their actor, refused actions, supervision steps."""
    rows = []
    for e in events:
        base = {"case_id": e.case_id, "tenant": e.tenant, "occurred_at": e.occurred_at, "event_id": e.event_id}
        if e.event_type == "case.transitioned":
            rows.append({**base, "actor_ref": e.actor_ref or "system", "actor_role": e.actor_role, "action": e.action,
                         "from_state": e.from_state, "to_state": e.to_state, "outcome": "applied",
                         "detail": (e.reason or "")[:500]})
        elif e.event_type == "case.dispatched":
            rows.append({**base, "actor_ref": "system", "actor_role": "system", "action": "dispatch",
                         "from_state": None, "to_state": getattr(e, "state", None) or "dispatched", "outcome": "applied",
                         "detail": f"{e.target_kind or ''} {e.department or ''} rule={getattr(e, 'rule', '') or ''}"[:500]})
        elif e.event_type == "case.action_rejected":
            rows.append({**base, "actor_ref": "system", "actor_role": "system", "action": e.action,
                         "from_state": e.state, "to_state": None, "outcome": "rejected", "detail": (e.reason or "")[:500]})
        elif e.event_type == "case.supervised":
            rows.append({**base, "actor_ref": "system", "actor_role": "system", "action": "supervise",
                         "from_state": None, "to_state": None, "outcome": "applied",
                         "detail": f"level {e.level} {getattr(e, 'alert', '') or ''}"[:500]})
    return rows


async def anonymise_closed(engine: AsyncEngine, after: timedelta, now: datetime | None = None,
                           batch: int = 1000) -> int:
    """Erase the reporter data of cases closed more than ``after`` ago (issue 6 item 3; default
    365 days, ``IntakeSettings.anonymise_after_days``): the sealed part (contact and unmasked
    description, :func:`sealed_part`) is dropped and the stored description masked again
    (:func:`shared.domain.pii.mask_text`); ``anonymised_at`` is set. Returns the
    number of reports anonymised. Safe to run from several instances (``SKIP LOCKED``)."""
    r, v = db.reports, db.case_view
    cutoff = (now or datetime.now(timezone.utc)) - after
    done = 0
    while True:
        async with engine.begin() as conn:
            rows = (await conn.execute(
                sa.select(r.c.case_id, r.c.report)
                .select_from(r.join(v, v.c.case_id == r.c.case_id))
                .where(r.c.anonymised_at.is_(None), v.c.closed.is_(True), v.c.closed_at < cutoff)
                .limit(batch).with_for_update(of=r, skip_locked=True)
            )).all()
            for row in rows:
                report = dict(row.report)
                report["description"] = mask_text(report.get("description") or "")
                await conn.execute(r.update().where(r.c.case_id == row.case_id).values(
                    reporter_sealed=None, reporter_key_id=None, report=report, anonymised_at=sa.func.now()))
        done += len(rows)
        if len(rows) < batch:
            return done


async def reseal_reporters(engine: AsyncEngine, keyring: Keyring, batch: int = 1000) -> int:
    """Re-encrypt every sealed reporter record under ``keyring``'s current key (key rotation,
    ``gridcase pii rotate``). Returns the number of records re-sealed.

    Raises:
        shared.platform.crypto.KeyringError: a record sealed with a key the ring does not hold.
    """
    r = db.reports
    done = 0
    while True:
        async with engine.begin() as conn:
            rows = (await conn.execute(
                sa.select(r.c.case_id, r.c.reporter_sealed)
                .where(r.c.reporter_sealed.is_not(None), r.c.reporter_key_id != keyring.current)
                .limit(batch).with_for_update(skip_locked=True)
            )).all()
            for row in rows:
                sealed = keyring.reseal(row.reporter_sealed, row.case_id.bytes)
                await conn.execute(r.update().where(r.c.case_id == row.case_id).values(
                    reporter_sealed=sealed, reporter_key_id=keyring.current))
        done += len(rows)
        if len(rows) < batch:
            return done


async def reporter_contact(engine: AsyncEngine, keyring: Keyring, case_id: uuid.UUID) -> dict | None:
    """The decrypted sealed part of a case (:func:`sealed_part`: ``{"reporter"?, "description"?}``;
    ``None`` when none or anonymised); for call-backs by intake staff tools, never put in events or
    logs.

    Raises:
        shared.platform.crypto.KeyringError: sealed with a key the ring does not hold, or tampered with.
    """
    r = db.reports
    async with engine.connect() as conn:
        sealed = (await conn.execute(sa.select(r.c.reporter_sealed).where(r.c.case_id == case_id))).scalar_one_or_none()
    return keyring.open(sealed, case_id.bytes) if sealed else None


def sealed_part(report: ReportIn, masked_description: str) -> dict | None:
    """What of a report is sealed (encrypted at rest): ``{"reporter": contact, "description":
    the unmasked text}``, each only when present (the description only when masking changed it,
    ``masked_description`` being ``mask_text(report.description)``); ``None`` when there is
    nothing personal. The stored report keeps the masked description."""
    part: dict = {}
    if report.reporter is not None:
        part["reporter"] = report.reporter.model_dump(mode="json")
    if report.description and masked_description != report.description:
        part["description"] = report.description
    return part or None


def keyring_of(settings: IntakeSettings) -> Keyring:
    """The PII key ring from ``INTAKE_PII_KEYS`` (a development key when unset).

    Raises:
        shared.platform.crypto.KeyringError: a malformed key setting (refused at start-up)."""
    return Keyring.parse(settings.pii_keys) if settings.pii_keys.strip() else Keyring.development(settings.pseudonym_key)


def case_id_for(report: ReportIn, idempotency_key: str | None) -> uuid.UUID:
    """The case id: derived from (tenant, source, source_id) for records that carry a source id,
    from (tenant, Idempotency-Key) for retried API calls, random otherwise. Derived ids make a
    re-import or a retried POST land on the same case instead of creating a second one. The API
    passes the key already prefixed with the caller's credential id (:func:`scoped_key`), so two
    callers' keys never meet."""
    if report.source_id:
        return derive_id(report.tenant, report.source, report.source_id)
    if idempotency_key:
        return derive_id(report.tenant, "idempotency-key", idempotency_key)
    return uuid.uuid4()


def scoped_key(who: Principal, idempotency_key: str | None) -> str | None:
    """An ``Idempotency-Key`` made the caller's own (``<credential id>:<key>``): a key is a
    client's promise about its own retries, and another caller's equal key must neither land on
    nor reveal that caller's case."""
    return f"{who.subject}:{idempotency_key}" if idempotency_key else None


#: ``source`` values used as a metric label; anything else is counted as ``other`` (labels stay
#: bounded whatever a client sends).
KNOWN_SOURCES = frozenset(FORMATS) | {"api", "open311", "jsonl", "csv"}


class CaseViewConsumer:
    """Keeps ``intake.case_view`` / ``intake.case_events`` up to date from dispatch's lifecycle
    events (consumer group ``gridcase-intake-view``), so intake can show a case's state and history
    and check actions without calling dispatch. It starts in the background and retries while the
    broker is unreachable: intake keeps taking reports meanwhile."""

    def __init__(self, settings: IntakeSettings, engine: AsyncEngine, registry) -> None:
        self.settings = settings
        self.fold = CaseFold(db.case_view)
        self.dlq = DlqProducer(settings.kafka_bootstrap_servers, "gridcase-intake-view-dlq")
        self.broker = build_broker(settings, registry, "intake")
        processor = BatchProcessor("intake-view", engine, db.processed_events, self.apply, self.dlq.get,
                                   max_attempts=settings.max_attempts)
        subscribe_batches(self.broker, settings, topics=(TOPIC_LIFECYCLE,), group_id="gridcase-intake-view",
                          processor=processor, registry=registry, metric_prefix="intake_view")
        self.started = False

    async def apply(self, conn, events) -> None:
        """Fold lifecycle events into the view and keep them as the case's history."""
        await self.fold(conn, events)
        audit = audit_rows_of(events)
        if audit:
            await conn.execute(insert(db.audit_log).on_conflict_do_nothing(index_elements=["event_id"]), audit)
        rows = [
            {"event_id": e.event_id, "case_id": e.case_id, "event_type": e.event_type, "occurred_at": e.occurred_at,
             "payload": e.model_dump(mode="json")}
            for e in events
        ]
        if rows:
            await conn.execute(insert(db.case_events).on_conflict_do_nothing(), rows)

    async def run(self) -> None:
        """Start the subscriber, retrying every few seconds until the broker answers."""
        delay = 1.0
        while not self.started:
            try:
                await ensure_topics(self.settings.kafka_bootstrap_servers, timeout_s=10)
                await self.broker.start()
                self.started = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker not there yet
                log.info("case view: broker not reachable (%s); retrying", type(exc).__name__)
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def stop(self) -> None:
        """Stop the subscriber (graceful) and the dead-letter producer."""
        if self.started:
            await self.broker.stop()
        await self.dlq.stop()


@dataclass
class Intake:
    """The running service's state (engine, relay, tenants, metrics)."""

    settings: IntakeSettings
    engine: AsyncEngine
    relay: OutboxRelay
    tenants: dict[str, TenantConfig]
    secret: bytes
    accepted: Counter
    rejected: Counter
    keyring: Keyring

    def knows_department(self, tenant: str, code: str) -> bool:
        """Whether ``code`` is a taxonomy department or one of ``tenant``'s own."""
        config = self.tenants.get(tenant)
        return open311_taxonomy().department(code) is not None or (config is not None and config.department(code) is not None)

    async def store(self, reports: list[tuple[ReportIn, uuid.UUID, str | None]],
                    who: Principal | None = None) -> set[uuid.UUID]:
        """Insert reports (reporter contact sealed), their events and their audit records in one
        transaction; return the case ids that were new (a case id already stored is a duplicate
        and gets no second event). ``who`` is the caller, recorded in the audit trail."""
        if not reports:
            return set()
        values = []
        masked = [mask_text(r.description) for r, _, _ in reports]  # once per report
        for (r, cid, key), text in zip(reports, masked):
            sealed = sealed_part(r, text)
            values.append({
                "case_id": cid,
                "tenant": r.tenant,
                "source": r.source,
                "source_id": r.source_id,
                "category_code": r.category_code,
                "place_code": r.place_code,
                "reported_at": r.reported_at,
                "report": r.model_dump(mode="json", exclude={"reporter"}) | {"description": text},
                "reporter_sealed": self.keyring.seal(sealed, cid.bytes) if sealed else None,
                "reporter_key_id": self.keyring.current if sealed else None,
                "idempotency_key": key,
            })
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(db.reports).on_conflict_do_nothing().returning(db.reports.c.case_id), values
            )
            new = {row[0] for row in result}
            await add_to_outbox(
                conn,
                db.outbox,
                (OutboxRow(TOPIC_REPORTED, to_event(r, cid, self.secret, text))
                 for (r, cid, _), text in zip(reports, masked) if cid in new),
            )
            audit = [
                {"case_id": cid, "tenant": r.tenant, "occurred_at": r.reported_at,
                 "actor_ref": who.subject if who else "system", "actor_role": who.role if who else "system",
                 "action": "report", "from_state": None, "to_state": "reported", "outcome": "applied",
                 "detail": f"{r.source} {r.channel}"[:500]}
                for r, cid, _ in reports if cid in new
            ]
            if audit:
                await conn.execute(insert(db.audit_log), audit)
        self.relay.wake()
        for r, cid, _ in reports:
            if cid in new:
                self.accepted.labels(r.tenant, r.source if r.source in KNOWN_SOURCES else "other").inc()
        return new


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    """Build intake's FastAPI app; the lifespan migrates the schema and runs the outbox relay."""
    settings = settings or IntakeSettings()
    registry = new_registry()
    accepted = Counter("intake_reports_accepted_total", "Reports accepted", ["tenant", "source"], registry=registry)
    rejected = Counter("intake_reports_rejected_total", "Report rows rejected", ["tenant", "source"], registry=registry)
    published = Counter("intake_outbox_published_total", "Outbox events published to Kafka", registry=registry)
    relay_errors = Counter("intake_outbox_publish_errors_total", "Failed outbox publish attempts", registry=registry)
    pending = Gauge("intake_outbox_pending_messages", "Outbox events not yet acknowledged by Kafka", registry=registry)
    anonymised = Counter("intake_reporters_anonymised_total", "Reports whose reporter data was erased after closure",
                         registry=registry)
    keyring = keyring_of(settings)  # a malformed key setting stops the start-up here

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_logging(settings.log_level, "intake")
        install_task_dump(log)
        await run_migrations_async(settings.database_url, MIGRATIONS, db.SCHEMA)
        await run_migrations_async(settings.database_url, AUTH_MIGRATIONS, AUTH_SCHEMA)
        engine = make_engine(settings.database_url)
        app.state.auth = Authenticator.for_service(engine, settings)
        relay = OutboxRelay(
            engine,
            db.outbox,
            lambda: make_producer(settings.kafka_bootstrap_servers, "gridcase-intake-relay"),
            batch=settings.relay_batch,
            idle_seconds=settings.relay_idle_seconds,
            on_published=published.inc,
            on_error=lambda exc: relay_errors.inc(),
            prepare=lambda: ensure_topics(settings.kafka_bootstrap_servers, timeout_s=15),
        )
        tenants = load_all_tenants(settings.tenants_dir or None)
        secret = settings.pseudonym_key.encode()
        app.state.intake = Intake(settings, engine, relay, tenants, secret, accepted, rejected, keyring)

        async def sweep_closed() -> None:
            while True:
                try:
                    erased = await anonymise_closed(engine, timedelta(days=settings.anonymise_after_days))
                    if erased:
                        anonymised.inc(erased)
                        log.info("anonymised the reporter data of %d closed cases", erased)
                except Exception:  # noqa: BLE001 - retried next round
                    log.warning("anonymisation sweep failed", exc_info=True)
                await asyncio.sleep(settings.anonymise_interval_seconds)

        async def sample_backlog() -> None:
            while True:
                try:
                    pending.set(await relay.backlog())
                except Exception:  # noqa: BLE001 - the gauge is best effort
                    log.debug("backlog sample failed", exc_info=True)
                await asyncio.sleep(5)

        # The relay creates the topics before it connects (prepare), but intake does not wait for
        # the broker: reports are accepted (202) and kept in the outbox while Kafka is unreachable.
        view = CaseViewConsumer(settings, engine, registry)
        tasks = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(sample_backlog()),
            asyncio.create_task(view.run(), name="case-view"),
            asyncio.create_task(sweep_closed(), name="anonymiser"),
        ]
        log.info("intake ready on %s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            await relay.stop()
            await view.stop()
            for task in tasks[1:]:
                task.cancel()
            await asyncio.wait(tasks, timeout=20)
            await engine.dispose()

    app = FastAPI(title="gridcase intake", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    # One report is a few KB; absurd bodies are refused before they are parsed (imports stream instead).
    app.add_middleware(BodyLimit, paths=("/v1/reports",), limit=MAX_REPORT_BYTES)
    install_open311(app)
    instrument_http(app, registry, "intake")

    def intake_of(request: Request) -> Intake:
        return request.app.state.intake

    @app.get("/health")
    async def health(request: Request) -> dict:
        async with intake_of(request).engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return {"status": "ok", "service": "intake"}

    @app.post("/v1/reports", status_code=202, response_model=ReportAccepted)
    async def post_report(
        report: ReportIn,
        request: Request,
        who: Principal = Depends(caller),
        idempotency_key: Annotated[str | None, Header(max_length=160)] = None,
    ):
        """Accept one report (202 + case id). 403 outside the caller's place scope or for a role
        that does not report; 422 for an unknown tenant or place; 409 ``duplicate_source`` when
        the ``source``/``source_id`` already names a report outside the caller's scope (its
        case id is not disclosed)."""
        svc = intake_of(request)
        scope_refusal(who, REPORT, report.tenant, report.place_code)
        if refusal := where_refusal(svc, report.tenant, report.place_code):
            return refusal
        key = scoped_key(who, idempotency_key)
        case_id = case_id_for(report, key)
        new = await svc.store([(report, case_id, key)], who)
        if case_id not in new:
            stored = await load_case(svc.engine, case_id)
            if stored is None or not who.sees_case(stored["tenant"], stored["report"]["place_code"], stored["department"]):
                return error_response(409, "duplicate_source", "this source and source_id already name a report "
                                      "outside your scope; nothing was stored", field="source_id")
        return ReportAccepted(case_id=case_id, duplicate=case_id not in new)

    @app.post("/v1/patrols", status_code=202)
    async def post_patrol(patrol: PatrolIn, request: Request, who: Principal = Depends(caller)):
        """Record an inspection round; reporting counts rounds and points by kind (403 outside
        the caller's scope)."""
        svc = intake_of(request)
        scope_refusal(who, PATROL, patrol.tenant, patrol.place_code)
        if refusal := where_refusal(svc, patrol.tenant, patrol.place_code):
            return refusal
        patrol_id = derive_id(patrol.tenant, "patrol", patrol.source_id) if patrol.source_id else uuid.uuid4()
        event = PatrolRecorded(
            event_id=derive_id(patrol_id, "patrol.recorded"),
            occurred_at=patrol.ended_at or patrol.started_at,
            case_id=patrol_id,
            tenant=patrol.tenant,
            place_code=patrol.place_code,
            kind=patrol.kind,
            points=patrol.points,
            started_at=patrol.started_at,
            ended_at=patrol.ended_at,
            worker_ref=patrol.worker_ref,
            findings=tuple(patrol.findings),
        )
        async with svc.engine.begin() as conn:
            added = await add_to_outbox(conn, db.outbox, [OutboxRow(TOPIC_PATROLS, event)])
        svc.relay.wake()
        return {"patrol_id": str(patrol_id), "status": "accepted", "duplicate": added == 0}

    @app.get("/v1/cases/{case_id}")
    async def get_case(case_id: uuid.UUID, request: Request, who: Principal = Depends(caller)):
        """A case's report (without personal data; free text masked), its current state from the
        case view, and its lifecycle history in order (404 outside the caller's scope)."""
        return visible_case(await load_case(intake_of(request).engine, case_id), who, case_id)

    @app.get("/v1/cases/{case_id}/audit")
    async def get_audit(case_id: uuid.UUID, request: Request, who: Principal = Depends(caller)):
        """The case's audit trail, oldest first: ``{"case_id", "entries": [{"at", "recorded_at",
        "actor_ref", "actor_role", "action", "from_state", "to_state", "outcome", "detail"}]}``.
        ``outcome``: requested (asked at intake), applied (dispatch's transition), rejected
        (dispatch refused: the state had moved on), refused (intake refused: 403/409). Visible to
        whoever may see the case (404 otherwise)."""
        svc = intake_of(request)
        visible_case(await load_case(svc.engine, case_id), who, case_id)
        a = db.audit_log
        async with svc.engine.connect() as conn:
            rows = (await conn.execute(sa.select(a).where(a.c.case_id == case_id).order_by(a.c.audit_id))).mappings().all()
        return {"case_id": str(case_id), "entries": [
            {"at": row["occurred_at"], "recorded_at": row["recorded_at"], "actor_ref": row["actor_ref"],
             "actor_role": row["actor_role"], "action": row["action"], "from_state": row["from_state"],
             "to_state": row["to_state"], "outcome": row["outcome"], "detail": row["detail"]}
            for row in rows]}

    @app.post("/v1/cases/{case_id}/actions", status_code=202)
    async def post_action(
        case_id: uuid.UUID,
        body: ActionIn,
        request: Request,
        who: Principal = Depends(caller),
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ):
        """Ask for an action on a case. 404 when the case is outside the caller's scope; 403 when
        the caller's role may not take this action (shared/platform/auth.py ROLE_ACTIONS). Checked against
        the case's current state (intake's case view): an illegal action gets 409 with the state
        and the allowed actions and changes nothing; a legal one is published to dispatch (202),
        which applies it against its own state (authoritative; a race with another actor ends in
        ``case.action_rejected``). Every answer from 403 on is kept in the audit trail; the actor
        recorded is the credential (role and id), not ``actor_role``/``actor_ref`` of the body."""
        svc = intake_of(request)
        if body.action not in API_ACTIONS:
            return error_response(422, "unknown_action", f"action must be one of {', '.join(API_ACTIONS)}",
                                  field="action")
        now = datetime.now(timezone.utc)

        def entry(tenant: str, state: str, outcome: str, detail: str) -> dict:
            """The audit record of this request (the caller's credential as the actor)."""
            return {"case_id": case_id, "tenant": tenant, "occurred_at": now, "actor_ref": who.subject,
                    "actor_role": who.role, "action": body.action, "from_state": state, "to_state": None,
                    "outcome": outcome, "detail": detail[:500]}

        async def refuse(tenant: str, state: str, detail: str) -> None:
            async with svc.engine.begin() as conn:
                await conn.execute(insert(db.audit_log).values(entry(tenant, state, "refused", detail)))

        found = await load_case(svc.engine, case_id)
        if found is not None and not who.sees_case(found["tenant"], found["report"]["place_code"], found["department"]):
            # a probe from outside the scope: kept, answered as "no case"
            await refuse(found["tenant"], found["state"], "404 outside the caller's scope")
        view = visible_case(found, who, case_id)
        if body.target_department and not svc.knows_department(view["tenant"], body.target_department):
            return error_response(422, "unknown_department",
                                  f"target_department {body.target_department[:40]!r} is not a department of the "
                                  "taxonomy or of the tenant", field="target_department")
        if not who.may_act(body.action):
            await refuse(view["tenant"], view["state"], "403 role may not take this action")
            raise forbidden(f"role {who.role} may not {body.action}", role=who.role, action=body.action)
        state = view["state"] if view["state"] in lifecycle.STATES else lifecycle.REPORTED
        current = lifecycle.Case(
            state=state,
            department=view["department"],
            # the view keeps no rung; the allowed actions of a mediating case do not depend on it
            mediation_level="grid" if state == lifecycle.MEDIATING else None,
            paused_since=datetime.now(timezone.utc) if state == lifecycle.SHELVED else None,
            deadline=view["deadline"],
            transfer_count=view["transfer_count"],
            return_count=view["return_count"],
            rework_count=view["rework_count"],
            supervision_level=view["supervision_level"],
            place_code=view["report"]["place_code"],
        )
        # The view does not know the extension flags: allow what either flag value allows and let
        # dispatch (authoritative) refuse the rest with case.action_rejected.
        allowed = tuple(dict.fromkeys(
            lifecycle.allowed_actions(current) + lifecycle.allowed_actions(dataclasses.replace(current, extension_requested=True))
        ))
        if body.action not in allowed:
            await refuse(view["tenant"], current.state, "409 illegal_action")
            return error_response(
                409, "illegal_action", f"{body.action} is not allowed in state {current.state}",
                state=current.state, allowed_actions=list(allowed),
            )
        event_id = derive_id(case_id, "action", who.subject, idempotency_key) if idempotency_key else uuid.uuid4()
        command = CaseActionRequested(
            event_id=event_id,
            occurred_at=now,
            case_id=case_id,
            tenant=view["tenant"],
            place_code=view["report"]["place_code"],
            action=body.action,
            actor_role=who.role,
            actor_ref=who.subject,
            note=mask_text(body.note),
            evidence=tuple(mask_text(e) for e in body.evidence),
            target_department=body.target_department,
            extension_days=body.extension_days,
        )
        async with svc.engine.begin() as conn:
            added = await add_to_outbox(conn, db.outbox, [OutboxRow(TOPIC_ACTIONS, command)])
            if added:
                await conn.execute(insert(db.audit_log).values(entry(view["tenant"], current.state, "requested",
                                                                     command.note)))
        svc.relay.wake()
        return {"case_id": str(case_id), "action": body.action, "status": "accepted", "duplicate": added == 0,
                "state": current.state}

    @app.post("/v1/imports", response_model=ImportResult)
    async def post_import(
        request: Request,
        format: Annotated[str, Query(description=f"one of {', '.join(FORMATS)}")],
        tenant: Annotated[str, Query()],
        tz: Annotated[str | None, Query(description="IANA zone of naive source times")] = None,
        max_rejects: Annotated[int, Query(ge=0, le=100_000, description="rejected rows listed in the answer")] = 100,
        who: Principal = Depends(caller),
    ):
        """Import a file of reports for a whole tenant (city ops or admin of the tenant; 403
        otherwise)."""
        svc = intake_of(request)
        if not who.may_import(tenant):
            raise forbidden("imports are for the operations centre (city_ops or admin of the tenant)", role=who.role)
        if format not in FORMATS:
            return error_response(422, "unknown_format", f"format must be one of {', '.join(FORMATS)}", field="format")
        if tenant not in svc.tenants:
            return error_response(422, "unknown_tenant", f"tenant {tenant!r} is not configured", field="tenant")
        zone = tz or svc.tenants[tenant].timezone or DEFAULT_TIMEZONE[format]
        path, mapping_text = await _spool_body(request, settings.max_import_bytes)
        try:
            mapping = None
            if format == "csv":
                if not mapping_text:
                    return error_response(422, "missing_mapping", "format csv needs a column mapping: send it as "
                                          "the multipart part 'mapping' (YAML, see importers.load_mapping)",
                                          field="mapping")
                mapping = parse_mapping(mapping_text)
            return await _import_file(svc, path, format, tenant, zone, mapping, max_rejects, who)
        except (UnknownFormat, ValueError) as exc:
            return error_response(422, "invalid_file", str(exc), field="file")
        finally:
            os.unlink(path)

    return app


class _Utf8Check:
    """Incremental UTF-8 validation of a byte stream, tracking the line for error messages."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.line = 1

    def feed(self, chunk: bytes, final: bool = False) -> None:
        """Validate ``chunk``.

        Raises:
            HTTPException: 422 ``invalid_utf8`` naming the line of the first invalid byte.
        """
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            line = self.line + chunk[: exc.start].count(b"\n")
            raise HTTPException(
                422,
                detail={"error": "invalid_utf8", "field": "file", "line": line,
                        "message": f"the file is not UTF-8: invalid byte on line {line}; nothing was imported"},
            ) from None
        self.line += text.count("\n")


async def _spool_body(request: Request, limit: int) -> tuple[str, str | None]:
    """Stream the request body (raw, or the ``file`` part of a multipart form) to a temp file,
    checking that it is UTF-8 on the way, so a bad file is refused before any row is stored.
    Returns the file's path and the multipart ``mapping`` part's text (``None`` if absent).

    Raises:
        HTTPException: 413 when larger than ``limit`` bytes, 422 when not UTF-8 or no file part.
    """
    fd, path = tempfile.mkstemp(prefix="gridcase-import-", suffix=".dat")
    size = 0
    mapping_text: str | None = None
    check = _Utf8Check()
    ctype = request.headers.get("content-type", "")

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail={"error": "too_large", "message": "import file too large", "limit_bytes": limit})
        check.feed(chunk)
        out.write(chunk)

    try:
        with os.fdopen(fd, "wb") as out:
            if ctype.startswith("multipart/form-data"):
                form = await request.form(max_part_size=limit)
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise HTTPException(422, detail={"error": "missing_file", "field": "file",
                                                     "message": "send the file as the form field 'file'"})
                while chunk := await upload.read(1 << 20):
                    take(chunk)
                part = form.get("mapping")
                if part is not None:
                    raw = part if isinstance(part, str) else (await part.read((1 << 16) + 1)).decode("utf-8", "replace")
                    if len(raw) > 1 << 16:
                        raise HTTPException(413, detail={"error": "too_large", "field": "mapping",
                                                         "message": "a column mapping may be at most 64 KiB"})
                    mapping_text = raw
            else:
                async for chunk in request.stream():
                    take(chunk)
            check.feed(b"", final=True)
    except BaseException:
        os.unlink(path)
        raise
    return path, mapping_text


class _ImportCancelled(Exception):
    """The request side stopped consuming; the parser thread must end."""


async def _import_file(svc: Intake, path: str, fmt: str, tenant: str, zone: str, mapping: dict | None = None,
                       max_rejects: int = 100, who: Principal | None = None) -> ImportResult:
    """Parse the spooled file in a worker thread and store accepted rows in batches of 500.

    The thread hands batches over a bounded queue (constant memory). If storing fails, the thread
    is told to stop and the error propagates (the batches stored before stay stored; a retried
    import skips them as duplicates, since case ids derive from the source ids).
    """
    result = ImportResult(format=fmt, tenant=tenant, rows_read=0, accepted=0, duplicates=0, rejected=0)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)
    cancelled = threading.Event()

    def put(item) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while True:
            try:
                future.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                if cancelled.is_set():
                    future.cancel()
                    raise _ImportCancelled from None

    def produce() -> None:
        batch: list = []
        try:
            with open(path, encoding="utf-8-sig", newline="") as stream:
                for item in iter_records(fmt, stream, tenant, zone, mapping=mapping):
                    batch.append(item)
                    if len(batch) >= IMPORT_BATCH:
                        put(batch)
                        batch = []
            put(batch)
            put(None)
        except _ImportCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the request side
            with contextlib.suppress(_ImportCancelled):
                put(exc)

    worker = loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            good: list[tuple[ReportIn, uuid.UUID, None]] = []
            for line, row in item:
                result.rows_read += 1
                if isinstance(row, RowError):
                    result.rejected += 1
                    svc.rejected.labels(tenant, fmt).inc()
                    if len(result.rejects) < max_rejects:
                        result.rejects.append(row)
                elif problem := place_problem(svc.tenants[tenant], row.place_code):
                    result.rejected += 1
                    svc.rejected.labels(tenant, fmt).inc()
                    if len(result.rejects) < max_rejects:
                        result.rejects.append(RowError(line=line, errors=[{"field": "place_code", "problem": problem}]))
                else:
                    good.append((row, case_id_for(row, None), None))
            new = await svc.store(good, who)
            result.accepted += len(good)
            result.duplicates += len(good) - len(new)
    finally:
        cancelled.set()
        while not queue.empty():  # unblock a put() in flight
            queue.get_nowait()
        await worker
    return result
