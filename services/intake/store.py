"""Intake's SQL (schema ``intake``, services/intake/db.py): storing reports with their events and
audit records, reading a case and its audit trail, recording actions asked for (and dispatch's
decisions on them) and patrols, keeping dispatch's lifecycle events, and the sweeps over stored
personal data (reseal; erasure: services/intake/erasure.py).

Every write that publishes an event puts it in ``intake.outbox`` in the same transaction
(shared/platform/outbox.py); the relay publishes it to Kafka afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake import db
from services.intake.caseview import closed_now, corrected_category
from services.intake.domain.audit import audit_rows_of, report_entry
from services.intake.domain.privacy import (
    masked_fields,
    report_as_shown,
    sealed_part,
)
from services.intake.domain.reports import to_event
from services.intake.domain.taxonomy import (
    category_name,
    reported_category_name,
)
from services.intake.schemas import ReportIn
from shared.contract.actions import OUTCOME_LABELS, SATISFACTION_LABELS
from shared.contract.events import CaseActionRequested, PatrolRecorded
from shared.contract.topics import TOPIC_ACTIONS, TOPIC_PATROLS, TOPIC_REPORTED
from shared.domain.casefacts import ENDING_STATES
from shared.platform.auth import Principal
from shared.platform.crypto import Keyring
from shared.platform.db import insert_unnest, read_connection
from shared.platform.outbox import OutboxRow, add_to_outbox


@dataclass(frozen=True)
class ReportBatch:
    """Reports sent by one caller in one request: ``(report, case id, idempotency key)`` each;
    ``who`` the caller (audit trail); ``request_hash`` the fingerprint of the body an
    Idempotency-Key came with (one report per request then)."""

    reports: list[tuple[ReportIn, uuid.UUID, str | None]]
    who: Principal | None = None
    request_hash: str | None = None
    #: case id -> how its category came about (services/intake/classify.py ``Classified``;
    #: absent: reported), issue 15
    classified: Mapping[uuid.UUID, Any] = field(default_factory=dict)


async def store_report_batches(engine: AsyncEngine, keyring: Keyring, secret: bytes,
                               batches: list[ReportBatch]) -> list[set[uuid.UUID]]:
    """Insert the reports of ``batches`` (reporter contact sealed with ``keyring``), their
    ``CaseReported`` events and their audit records in one transaction (several requests' batches
    together: group commit, shared/platform/groupcommit.py); return per batch the case ids that
    were new. A case id already stored, or named earlier in the same call, is a duplicate and
    gets no second event and no second audit record."""
    items = [(j, b, r, cid, key, masked_fields(r))  # masked once
             for j, b in enumerate(batches) for r, cid, key in b.reports]
    values = []
    for _, b, r, cid, key, fields in items:
        sealed = sealed_part(r, fields)
        values.append({
            "case_id": cid,
            "tenant": r.tenant,
            "source": fields["source"],
            "source_id": fields["source_id"],
            "category_code": fields["category_code"],
            "place_code": r.place_code,
            "reported_at": r.reported_at,
            "report": r.model_dump(mode="json", exclude={"reporter"}) | fields,
            "reporter_sealed": keyring.seal(sealed, cid.bytes) if sealed else None,
            "reporter_key_id": keyring.current if sealed else None,
            "idempotency_key": key,
            "request_hash": b.request_hash if key else None,
            **(b.classified[cid].columns() if cid in b.classified else {"category_source": "reported",
               "model_version": None, "category_confidence": None, "category_suggestions": None}),
        })
    if not values:
        return [set() for _ in batches]
    async with engine.begin() as conn:
        # one statement per table per batch, the rows as arrays (issue 13)
        inserted = set(await insert_unnest(conn, db.reports, values, on_conflict_do_nothing=True, returning="case_id"))
        fresh, named = [], set()  # each inserted case once, at its first mention
        for item in items:
            if item[3] in inserted and item[3] not in named:
                fresh.append(item)
            named.add(item[3])
        await add_to_outbox(conn, db.outbox,
                            (OutboxRow(TOPIC_REPORTED, to_event(r, cid, secret, fields)) for _, _, r, cid, _, fields in fresh))
        audit = [report_entry(r, cid, b.who, fields) for _, b, r, cid, _, fields in fresh]
        await insert_unnest(conn, db.audit_log, audit)
    news: list[set[uuid.UUID]] = [set() for _ in batches]
    for j, _, _, cid, _, _ in fresh:
        news[j].add(cid)
    return news


async def first_use(engine: AsyncEngine, tenant: str, key: str) -> tuple[uuid.UUID, str | None] | None:
    """The case an ``Idempotency-Key`` (already scoped to its credential) first named in
    ``tenant`` and the fingerprint of the body it came with, or ``None`` when unused."""
    r = db.reports
    async with read_connection(engine) as conn:
        row = (await conn.execute(sa.select(r.c.case_id, r.c.request_hash)
                                  .where(r.c.tenant == tenant, r.c.idempotency_key == key))).one_or_none()
    return (row.case_id, row.request_hash) if row else None


async def add_security_entry(engine: AsyncEngine, entry: dict) -> None:
    """Append one record to the security log (a refused attempt from outside a case's tenant)."""
    async with engine.begin() as conn:
        await conn.execute(insert(db.security_log).values(entry))


async def security_entries(engine: AsyncEngine, tenant: str, limit: int, before: int | None = None) -> list[dict]:
    """The security log, newest first (``limit`` records, those older than ``before`` when
    given): every record for tenant ``*``, else those aimed at or made from ``tenant``."""
    s = db.security_log
    query = sa.select(s).order_by(s.c.entry_id.desc()).limit(limit)
    if tenant != "*":
        query = query.where(sa.or_(s.c.target_tenant == tenant, s.c.actor_tenant == tenant))
    if before is not None:
        query = query.where(s.c.entry_id < before)
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def load_case(engine: AsyncEngine, case_id: uuid.UUID) -> dict | None:
    """The case as ``GET /v1/cases/{id}`` shows it, or ``None`` when intake never accepted it.

    ``state`` is ``reported`` until dispatch's first event reaches the case view. Beside the
    report as stored (``report``, its ``category_name`` the name it gave, else the taxonomy's name of
    its ``category_code``): ``category_code`` / ``category_name``, the category now (the
    corrected one once recategorized); ``outcome`` (and its zh-CN ``outcome_label``,
    ``duplicate_of``) while the case is ended; the newest callback (``satisfaction``,
    ``satisfaction_label``, ``resident_resolved``, ``callback_at``); ``reopen_count``,
    ``recategorize_count``; the current ``mediation_level`` and ``unit`` (services/intake/caseview.py).
    """
    r, v, e = db.reports, db.case_view, db.case_events
    async with engine.connect() as conn:
        report = (await conn.execute(
            sa.select(r.c.tenant, r.c.report, r.c.category_source, r.c.model_version,
                      r.c.category_confidence, r.c.category_suggestions)
            .where(r.c.case_id == case_id))).one_or_none()
        if report is None:
            return None
        row = (await conn.execute(sa.select(v).where(v.c.case_id == case_id))).mappings().one_or_none()
        events = (
            await conn.execute(sa.select(e.c.payload).where(e.c.case_id == case_id).order_by(e.c.occurred_at, e.c.event_id))
        ).scalars().all()
    state = dict(row) if row else {}
    history = sorted(events, key=lambda p: (p.get("sequence") or 0, p["occurred_at"]))
    shown = report_as_shown(report.report)
    given = shown.get("category_name")  # a source's own name; "" when the report named only its code
    shown["category_name"] = reported_category_name(shown.get("category_code"), given)
    current = state.get("state") or ("closed" if state.get("closed") else "reported")
    outcome = state.get("outcome") if current in ENDING_STATES else None
    category = corrected_category(state) or shown.get("category_code")
    return {
        "case_id": str(case_id),
        "tenant": report.tenant,
        "report": shown,
        "state": current,
        "department": state.get("department"),
        "target_kind": state.get("target_kind"),
        "deadline": state.get("deadline"),
        "closed": closed_now(state.get("state"), state.get("closed"), state.get("reopen_count")),
        "closed_at": state.get("closed_at"),
        "transfer_count": state.get("transfer_count", 0),
        "return_count": state.get("return_count", 0),
        "rework_count": state.get("rework_count", 0),
        "supervision_level": state.get("supervision_level", 0),
        "outcome": outcome,
        "outcome_label": OUTCOME_LABELS.get(outcome) if outcome else None,
        "duplicate_of": state.get("duplicate_of") if outcome else None,
        "satisfaction": state.get("satisfaction"),
        "satisfaction_label": SATISFACTION_LABELS.get(state.get("satisfaction") or ""),
        "resident_resolved": state.get("resident_resolved"),
        "callback_at": state.get("callback_at"),
        "reopen_count": state.get("reopen_count", 0),
        "recategorize_count": state.get("recategorize_count", 0),
        "mediation_level": state.get("mediation_level"),
        "unit": state.get("unit"),
        "category_code": category,
        "category_name": category_name(category, given),
        # how the category came about (issue 15, docs/classifier.md §3): a recategorization wins
        "category_source": "corrected" if corrected_category(state) else report.category_source,
        "model_version": report.model_version,
        "category_confidence": report.category_confidence,
        "category_suggestions": report.category_suggestions or [],
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


async def action_fingerprint(engine: AsyncEngine, action_id: uuid.UUID) -> tuple[bool, str | None]:
    """Whether the action was asked for already, and the fingerprint of the body it came with."""
    a = db.case_actions
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(a.c.request_hash).where(a.c.action_id == action_id))).one_or_none()
    return (row is not None, row.request_hash if row else None)


async def request_action(engine: AsyncEngine, command: CaseActionRequested, entry: dict,
                         request_hash: str | None = None) -> tuple[dict, bool]:
    """Record the action request (``case_actions``, pending), put its command in the outbox and,
    unless it is a duplicate (same action id: a repeated Idempotency-Key), its audit record
    ``entry``, in one transaction. Returns the action as :func:`load_action` shows it and whether
    it was new."""
    a = db.case_actions
    async with engine.begin() as conn:
        await conn.execute(insert(a).on_conflict_do_nothing().values(
            action_id=command.action_id, case_id=command.case_id, tenant=command.tenant, action=command.action,
            actor_ref=command.actor_ref, requested_at=command.occurred_at, request_hash=request_hash))
        added = await add_to_outbox(conn, db.outbox, [OutboxRow(TOPIC_ACTIONS, command)])
        if added:
            await conn.execute(insert(db.audit_log).values(entry))
        row = (await conn.execute(sa.select(a).where(a.c.action_id == command.action_id))).mappings().one()
    return _action_shown(row), bool(added)


def _action_shown(row) -> dict:
    return {"action_id": str(row["action_id"]), "case_id": str(row["case_id"]), "action": row["action"],
            "status": row["status"], "reason": row["reason"], "state": row["state"],
            "allowed_actions": row["allowed_actions"], "requested_at": row["requested_at"],
            "decided_at": row["decided_at"]}


async def load_action(engine: AsyncEngine, case_id: uuid.UUID, action_id: uuid.UUID) -> dict | None:
    """An action asked for on the case, as ``GET /v1/cases/{id}/actions/{action_id}`` shows it
    (``status`` pending | applied | refused; ``reason``, ``state``, ``allowed_actions`` once
    decided), or ``None``."""
    a = db.case_actions
    async with engine.connect() as conn:
        row = (await conn.execute(
            sa.select(a).where(a.c.action_id == action_id, a.c.case_id == case_id))).mappings().one_or_none()
    return _action_shown(row) if row is not None else None


async def decide_actions(conn: AsyncConnection, events) -> None:
    """Mark the actions dispatch answered: ``applied`` by the transitions and dispatches that
    carry their ``action_id`` (``state``: the newest one's new state, by sequence), ``refused`` by
    ``case.action_rejected`` (its reason, state and allowed actions). Events without an
    ``action_id`` (dispatch's own steps, or a dispatch that does not name them yet) decide nothing;
    an action stays decided once decided (redeliveries and late events change nothing but a newer
    state of an applied action)."""
    a = db.case_actions
    applied: dict[uuid.UUID, dict] = {}
    refused: list[dict] = []
    for e in events:
        action_id = getattr(e, "action_id", None)
        if action_id is None:
            continue
        if e.event_type in ("case.transitioned", "case.dispatched"):
            state = e.to_state if e.event_type == "case.transitioned" else e.state
            if action_id not in applied or e.sequence > applied[action_id]["b_seq"]:
                applied[action_id] = {"b_id": action_id, "b_seq": e.sequence, "b_state": state, "b_at": e.occurred_at}
        elif e.event_type == "case.action_rejected":
            refused.append({"b_id": action_id, "b_reason": e.reason[:500], "b_state": e.state,
                            "b_allowed": list(e.allowed_actions), "b_at": e.occurred_at})
    if applied:
        newer = sa.or_(a.c.status == "pending",
                       sa.and_(a.c.status == "applied", sa.func.coalesce(a.c.sequence, -1) < sa.bindparam("b_seq", type_=sa.Integer)))
        await conn.execute(
            a.update().where(a.c.action_id == sa.bindparam("b_id"), newer).values(
                status="applied", state=sa.bindparam("b_state"), sequence=sa.bindparam("b_seq"),
                decided_at=sa.func.coalesce(a.c.decided_at, sa.bindparam("b_at", type_=sa.DateTime(timezone=True)))),
            list(applied.values()))
    if refused:
        await conn.execute(
            a.update().where(a.c.action_id == sa.bindparam("b_id"), a.c.status == "pending").values(
                status="refused", reason=sa.bindparam("b_reason"), state=sa.bindparam("b_state"),
                allowed_actions=sa.bindparam("b_allowed", type_=pg.JSONB), decided_at=sa.bindparam("b_at")),
            refused)


async def record_patrol(engine: AsyncEngine, event: PatrolRecorded) -> int:
    """Put the patrol's event in the outbox. Returns the number of events added (0: duplicate)."""
    async with engine.begin() as conn:
        return await add_to_outbox(conn, db.outbox, [OutboxRow(TOPIC_PATROLS, event)])


async def keep_lifecycle_events(conn: AsyncConnection, events) -> None:
    """Keep dispatch's lifecycle events as the cases' history (``case_events``) and their audit
    records (redelivered events are skipped: both are keyed by event id)."""
    audit = audit_rows_of(events)
    # one statement per table per batch, the same text whatever its size (issue 13)
    await insert_unnest(conn, db.audit_log, audit, on_conflict_do_nothing=True)
    rows = [
        {"event_id": e.event_id, "case_id": e.case_id, "event_type": e.event_type, "occurred_at": e.occurred_at,
         "payload": e.model_dump(mode="json")}
        for e in events
    ]
    await insert_unnest(conn, db.case_events, rows, on_conflict_do_nothing=True)


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
