"""Intake's side of the closed loop on the real PostgreSQL (issue 12): requested actions and what
dispatch decided about them (``intake.case_actions``: services/intake/store.py ``request_action``,
``decide_actions``; services/intake/service.py ``Intake.decision``), and the case view's
closed-loop columns (services/intake/caseview.py), fed through the case-view consumer's handler
(services/intake/handlers.py ``apply_lifecycle``) with hand-made lifecycle events in any order.

Intake's schema is migrated in a database of the module's own on the session's server.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from services.intake import db
from services.intake.handlers import apply_lifecycle
from services.intake.service import Intake
from services.intake.store import load_action, load_case, request_action
from shared.contract.events import (
    CaseActionRejected,
    CaseActionRequested,
    CaseDispatched,
    CaseTransitioned,
)
from shared.platform.db import async_url, make_engine, run_migrations_async

pytestmark = pytest.mark.integration

TENANT = "demo-grid"
GRID = "990102001002001"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(infra):
    name = f"actions_{uuid.uuid4().hex[:12]}"
    admin = make_engine(infra.database_url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = make_url(async_url(infra.database_url)).set(database=name).render_as_string(hide_password=False)
    await run_migrations_async(url, db.MIGRATIONS, db.SCHEMA)
    engine = make_engine(url)
    yield engine
    await engine.dispose()


async def new_case(engine, category: str = "100102") -> uuid.UUID:
    case_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(sa.insert(db.reports).values(
            case_id=case_id, tenant=TENANT, source="api", category_code=category, place_code=GRID, reported_at=T0,
            report={"tenant": TENANT, "category_code": category, "place_code": GRID, "description": "test",
                    "reported_at": T0.isoformat(), "channel": "phone", "category_name": ""}))
    return case_id


async def fold(engine, *events) -> None:
    async with engine.begin() as conn:
        await apply_lifecycle(conn, list(events))


def step(case_id, seq: int, action: str, from_state: str, to_state: str, **extra) -> CaseTransitioned:
    return CaseTransitioned(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=seq), case_id=case_id,
                            tenant=TENANT, place_code=GRID, action=action, from_state=from_state, to_state=to_state,
                            actor_role="city_ops", sequence=seq, **extra)


def dispatched(case_id, seq: int, **extra) -> CaseDispatched:
    return CaseDispatched(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=seq), case_id=case_id,
                          tenant=TENANT, place_code=GRID, target_kind="department", department="urban_management",
                          rule="test", sequence=seq, **extra)


def command(case_id, action: str, action_id: uuid.UUID | None = None) -> CaseActionRequested:
    action_id = action_id or uuid.uuid4()
    return CaseActionRequested(event_id=action_id, action_id=action_id, occurred_at=T0, case_id=case_id, tenant=TENANT,
                               place_code=GRID, action=action, actor_role="city_ops", actor_ref="k_test")


def audit_entry(case_id, action: str) -> dict:
    return {"case_id": case_id, "tenant": TENANT, "occurred_at": T0, "actor_ref": "k_test", "actor_role": "city_ops",
            "action": action, "from_state": "reported", "to_state": None, "outcome": "requested", "detail": ""}


async def test_an_action_is_pending_until_dispatch_applies_it(engine):
    case_id = await new_case(engine)
    cmd = command(case_id, "file")
    action, new = await request_action(engine, cmd, audit_entry(case_id, "file"))
    assert new and action["status"] == "pending" and action["action_id"] == str(cmd.action_id)
    again, new = await request_action(engine, cmd, audit_entry(case_id, "file"))  # a repeated Idempotency-Key
    assert not new and again == action
    # an event that names no action (dispatch before issue 12) decides nothing
    await fold(engine, step(case_id, 1, "file", "accepted", "filed"))
    assert (await load_action(engine, case_id, cmd.action_id))["status"] == "pending"
    # the two events of one action, the later one first: the state is the newest one's
    await fold(engine, dispatched(case_id, 3, action_id=cmd.action_id))
    await fold(engine, step(case_id, 2, "file", "accepted", "filed", action_id=cmd.action_id))
    decided = await load_action(engine, case_id, cmd.action_id)
    assert (decided["status"], decided["state"]) == ("applied", "dispatched")
    assert decided["decided_at"] == T0 + timedelta(minutes=3)
    # a refusal arriving later (it cannot, but redelivery and races must not flip it)
    await fold(engine, CaseActionRejected(event_id=uuid.uuid4(), occurred_at=T0, case_id=case_id, tenant=TENANT,
                                          place_code=GRID, action="file", state="dispatched", action_id=cmd.action_id))
    assert (await load_action(engine, case_id, cmd.action_id))["status"] == "applied"
    # the action belongs to its case only
    assert await load_action(engine, uuid.uuid4(), cmd.action_id) is None
    async with engine.connect() as conn:
        audit = (await conn.execute(sa.select(sa.func.count()).select_from(db.audit_log).where(
            db.audit_log.c.case_id == case_id, db.audit_log.c.outcome == "requested"))).scalar()
    assert audit == 1  # the repeat added no second request record


async def test_a_refused_action_carries_dispatchs_reason(engine):
    case_id = await new_case(engine)
    cmd = command(case_id, "verify_pass")
    await request_action(engine, cmd, audit_entry(case_id, "verify_pass"))
    await fold(engine, CaseActionRejected(
        event_id=uuid.uuid4(), occurred_at=T0, case_id=case_id, tenant=TENANT, place_code=GRID, action="verify_pass",
        state="reported", allowed_actions=("accept", "reject", "cancel"), reason="verify_pass is not allowed in reported",
        action_id=cmd.action_id))
    action = await load_action(engine, case_id, cmd.action_id)
    assert action["status"] == "refused" and action["state"] == "reported"
    assert action["allowed_actions"] == ["accept", "reject", "cancel"]
    assert action["reason"] == "verify_pass is not allowed in reported"


async def test_waiting_for_the_decision_returns_once_it_arrives(engine):
    case_id = await new_case(engine)
    cmd = command(case_id, "accept")
    await request_action(engine, cmd, audit_entry(case_id, "accept"))
    svc = Intake(None, engine, None, {}, b"", None, None, None)
    started = time.monotonic()
    undecided = await svc.decision(case_id, cmd.action_id, 0.5)
    assert undecided["status"] == "pending" and 0.45 <= time.monotonic() - started < 2

    async def answer_later():
        await asyncio.sleep(0.6)
        await fold(engine, step(case_id, 1, "accept", "reported", "accepted", action_id=cmd.action_id))

    started = time.monotonic()
    decided, _ = await asyncio.gather(svc.decision(case_id, cmd.action_id, 10), answer_later())
    assert decided["status"] == "applied" and decided["state"] == "accepted"
    assert time.monotonic() - started < 3  # not the whole 10 s


async def test_case_view_shows_outcome_callback_reopen_rung_and_corrected_category(engine):
    case_id = await new_case(engine, "100102")
    events = [
        dispatched(case_id, 1, mediation_level=None, unit="990102001"),
        step(case_id, 2, "recategorize", "dispatched", "filed", category_code="100110", recategorize_count=1),
        dispatched(case_id, 3, category_code="100110"),
        step(case_id, 4, "resolve", "dispatched", "checking", outcome="resolved", recategorize_count=1,
             unit="990102001"),
        step(case_id, 5, "verify_pass", "checking", "closed", outcome="resolved", recategorize_count=1,
             unit="990102001"),
        step(case_id, 6, "callback", "closed", "closed", satisfaction="dissatisfied", resident_resolved=False,
             recategorize_count=1, unit="990102001"),
    ]  # every step carries the unit after it (the case's), the newest one counts
    await fold(engine, *reversed(events))  # order-free
    v = await load_case(engine, case_id)
    assert (v["state"], v["closed"], v["outcome"], v["outcome_label"]) == ("closed", True, "resolved", "已解决")
    assert (v["satisfaction"], v["satisfaction_label"], v["resident_resolved"]) == ("dissatisfied", "不满意", False)
    assert v["category_code"] == "100110" and v["report"]["category_code"] == "100102"
    assert v["category_name"] == "油烟扰民" and v["recategorize_count"] == 1 and v["reopen_count"] == 0
    # the report as made: code 100102 alone (category_name ""), named by the taxonomy (100102 垃圾扰民)
    assert v["report"]["category_name"] == "垃圾扰民"
    assert v["unit"] == "990102001"
    # 重办: open again, no outcome shown, the last callback still shown
    await fold(engine, step(case_id, 7, "reopen", "closed", "dispatched", reopen_count=1, recategorize_count=1,
                            department="urban_management"))
    v = await load_case(engine, case_id)
    assert (v["state"], v["closed"], v["outcome"], v["reopen_count"]) == ("dispatched", False, None, 1)
    assert v["satisfaction"] == "dissatisfied"
    # closed again with another outcome; a redelivered old closure does not win
    await fold(engine, step(case_id, 8, "resolve", "dispatched", "checking", outcome="partly_resolved", reopen_count=1),
               step(case_id, 9, "verify_pass", "checking", "closed", outcome="partly_resolved", reopen_count=1))
    await fold(engine, events[4])
    v = await load_case(engine, case_id)
    assert (v["state"], v["closed"], v["outcome"], v["outcome_label"]) == ("closed", True, "partly_resolved", "部分解决")


async def test_case_view_shows_the_mediation_rung_and_a_duplicates_original(engine):
    case_id = await new_case(engine, "300101")
    await fold(engine, CaseDispatched(event_id=uuid.uuid4(), occurred_at=T0, case_id=case_id, tenant=TENANT,
                                      place_code=GRID, target_kind="mediation", department="mediation",
                                      rule="test", mediation_level="community", unit="990102001002", sequence=1))
    v = await load_case(engine, case_id)
    assert (v["mediation_level"], v["unit"], v["outcome"]) == ("community", "990102001002", None)
    await fold(engine, step(case_id, 2, "mediation_failed", "mediating", "mediating", mediation_level="street",
                            unit="990102001", from_mediation_level="community"))
    assert (await load_case(engine, case_id))["mediation_level"] == "street"
    original = uuid.uuid4()
    await fold(engine, step(case_id, 3, "merge_duplicate", "mediating", "cancelled", outcome="duplicate", duplicate_of=original,
                            mediation_level="street", unit="990102001"))
    v = await load_case(engine, case_id)
    assert (v["state"], v["outcome"], v["outcome_label"], v["duplicate_of"]) == ("cancelled", "duplicate", "重复", original)


async def test_merge_names_only_an_original_the_caller_can_see(engine):
    """``duplicate_of`` of a merge must name a case of the same tenant inside the caller's place
    scope (services/intake/api/actions.py ``original_refusal``): a case that does not exist, one of
    another tenant and one of another street all get the one answer, 422 ``unknown_original``, so
    a merge cannot tell which ids are cases; a case the caller sees passes to dispatch."""
    from types import SimpleNamespace  # noqa: PLC0415

    from services.intake.api.actions import original_refusal  # noqa: PLC0415
    from shared.platform.auth import Principal  # noqa: PLC0415

    own = await new_case(engine)  # demo-grid, street 990102001 (GRID)
    other_street, other_tenant = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        for case_id, tenant, place in ((other_street, TENANT, "990102002001001"),
                                       (other_tenant, "demo-market", GRID)):
            await conn.execute(sa.insert(db.reports).values(
                case_id=case_id, tenant=tenant, source="api", category_code="100102", place_code=place, reported_at=T0,
                report={"tenant": tenant, "category_code": "100102", "place_code": place, "description": "test",
                        "reported_at": T0.isoformat(), "channel": "phone", "category_name": ""}))
    svc = SimpleNamespace(engine=engine)
    street = Principal("k_street", TENANT, "street_staff", scope="990102001")
    centre = Principal("k_centre", TENANT, "city_ops")

    assert await original_refusal(svc, street, TENANT, own) is None
    answers = [await original_refusal(svc, street, TENANT, x) for x in (uuid.uuid4(), other_street, other_tenant)]
    assert all(a is not None and a.status_code == 422 for a in answers)
    bodies = [json.loads(a.body) for a in answers]
    assert {b["error"] for b in bodies} == {"unknown_original"} and {b["field"] for b in bodies} == {"duplicate_of"}
    # the city centre sees the whole tenant (the other street), never another tenant's case
    assert await original_refusal(svc, centre, TENANT, other_street) is None
    assert (await original_refusal(svc, centre, TENANT, other_tenant)).status_code == 422
