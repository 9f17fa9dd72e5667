"""Intake's SQL (schema ``intake``, services/intake/db.py): storing reports with their events and
audit records, reading a case and its audit trail, recording actions asked for and patrols, keeping
dispatch's lifecycle events, and the sweeps over stored personal data (anonymise, reseal).

Every write that publishes an event puts it in ``intake.outbox`` in the same transaction
(shared/platform/outbox.py); the relay publishes it to Kafka afterwards.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake import db
from services.intake.domain.audit import audit_rows_of, report_entry
from services.intake.domain.privacy import anonymised_report, report_as_shown, sealed_part
from services.intake.domain.reports import to_event
from services.intake.schemas import ReportIn
from shared.contract.events import CaseActionRequested, PatrolRecorded
from shared.contract.topics import TOPIC_ACTIONS, TOPIC_PATROLS, TOPIC_REPORTED
from shared.domain.pii import mask_text
from shared.platform.auth import Principal
from shared.platform.crypto import Keyring
from shared.platform.outbox import OutboxRow, add_to_outbox


async def store_reports(engine: AsyncEngine, keyring: Keyring, secret: bytes,
                        reports: list[tuple[ReportIn, uuid.UUID, str | None]],
                        who: Principal | None = None) -> set[uuid.UUID]:
    """Insert ``(report, case id, idempotency key)`` rows (reporter contact sealed with
    ``keyring``), their ``CaseReported`` events and their audit records in one transaction; return
    the case ids that were new (a case id already stored is a duplicate and gets no second event).
    ``who`` is the caller, recorded in the audit trail."""
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
            "reporter_sealed": keyring.seal(sealed, cid.bytes) if sealed else None,
            "reporter_key_id": keyring.current if sealed else None,
            "idempotency_key": key,
        })
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(db.reports).on_conflict_do_nothing().returning(db.reports.c.case_id), values
        )
        new = {row[0] for row in result}
        await add_to_outbox(
            conn,
            db.outbox,
            (OutboxRow(TOPIC_REPORTED, to_event(r, cid, secret, text))
             for (r, cid, _), text in zip(reports, masked) if cid in new),
        )
        audit = [report_entry(r, cid, who) for r, cid, _ in reports if cid in new]
        if audit:
            await conn.execute(insert(db.audit_log), audit)
    return new


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
    state = dict(row) if row else {}
    history = sorted(events, key=lambda p: (p.get("sequence") or 0, p["occurred_at"]))
    return {
        "case_id": str(case_id),
        "tenant": report.tenant,
        "report": report_as_shown(report.report),
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


async def audit_trail(engine: AsyncEngine, case_id: uuid.UUID) -> list[dict]:
    """The case's audit records, oldest first, as ``GET /v1/cases/{id}/audit`` lists them."""
    a = db.audit_log
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(a).where(a.c.case_id == case_id).order_by(a.c.audit_id))).mappings().all()
    return [
        {"at": row["occurred_at"], "recorded_at": row["recorded_at"], "actor_ref": row["actor_ref"],
         "actor_role": row["actor_role"], "action": row["action"], "from_state": row["from_state"],
         "to_state": row["to_state"], "outcome": row["outcome"], "detail": row["detail"]}
        for row in rows]


async def add_audit_entry(engine: AsyncEngine, entry: dict) -> None:
    """Append one audit record (e.g. an action refused at intake)."""
    async with engine.begin() as conn:
        await conn.execute(insert(db.audit_log).values(entry))


async def request_action(engine: AsyncEngine, command: CaseActionRequested, entry: dict) -> int:
    """Put the action request in the outbox and, unless it is a duplicate (same event id), its
    audit record ``entry``, in one transaction. Returns the number of events added (0: duplicate)."""
    async with engine.begin() as conn:
        added = await add_to_outbox(conn, db.outbox, [OutboxRow(TOPIC_ACTIONS, command)])
        if added:
            await conn.execute(insert(db.audit_log).values(entry))
    return added


async def record_patrol(engine: AsyncEngine, event: PatrolRecorded) -> int:
    """Put the patrol's event in the outbox. Returns the number of events added (0: duplicate)."""
    async with engine.begin() as conn:
        return await add_to_outbox(conn, db.outbox, [OutboxRow(TOPIC_PATROLS, event)])


async def keep_lifecycle_events(conn: AsyncConnection, events) -> None:
    """Keep dispatch's lifecycle events as the cases' history (``case_events``) and their audit
    records (redelivered events are skipped: both are keyed by event id)."""
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


async def anonymise_closed(engine: AsyncEngine, after: timedelta, now: datetime | None = None,
                           batch: int = 1000) -> int:
    """Erase the reporter data of cases closed more than ``after`` ago (issue 6 item 3; default
    365 days, ``IntakeSettings.anonymise_after_days``): the sealed part (contact and unmasked
    description, services/intake/domain/privacy.py ``sealed_part``) is dropped and the stored
    description masked again (``anonymised_report``); ``anonymised_at`` is set. Returns the
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
                await conn.execute(r.update().where(r.c.case_id == row.case_id).values(
                    reporter_sealed=None, reporter_key_id=None, report=anonymised_report(row.report),
                    anonymised_at=sa.func.now()))
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
    """The decrypted sealed part of a case (domain/privacy.py ``sealed_part``: ``{"reporter"?,
    "description"?}``; ``None`` when none or anonymised); for call-backs by intake staff tools,
    never put in events or logs.

    Raises:
        shared.platform.crypto.KeyringError: sealed with a key the ring does not hold, or tampered with.
    """
    r = db.reports
    async with engine.connect() as conn:
        sealed = (await conn.execute(sa.select(r.c.reporter_sealed).where(r.c.case_id == case_id))).scalar_one_or_none()
    return keyring.open(sealed, case_id.bytes) if sealed else None
