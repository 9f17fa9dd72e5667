"""Reporter data at rest on the real PostgreSQL (issue 6 item 3): AES-GCM key rotation and
anonymisation after closure (services/intake/store.py ``reseal_reporters``, ``anonymise_closed``,
``reporter_contact``; shared/platform/crypto.py ``Keyring``).

Rows go straight into intake's schema, migrated here in a database of each test's own on the
session's PostgreSQL, for tenant ``demo-grid`` with fresh case ids.
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.intake import db
from services.intake.domain.privacy import masked_fields, sealed_part
from services.intake.erasure import anonymise_closed
from services.intake.schemas import ReporterContact, ReportIn
from services.intake.settings import IntakeSettings
from services.intake.store import reporter_contact, reseal_reporters
from shared.platform.crypto import Keyring, KeyringError

pytestmark = pytest.mark.integration

TENANT = "demo-grid"
GRID = "990102001002001"


def ring(*ids: str, keys: dict[str, str]) -> Keyring:
    return Keyring.parse(",".join(f"{i}:{keys[i]}" for i in ids))


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {name: base64.urlsafe_b64encode(os.urandom(32)).decode() for name in ("ka", "kb")}


@pytest.fixture
def engine(intake_own_db):
    """``reseal_reporters`` and ``anonymise_closed`` work on every row, so the figures they return
    count only the rows this test stored, and other tests' rows (sealed with the development key,
    or tampered with here) must neither stop them nor be changed by them: a database of its own."""
    return intake_own_db


def a_report(phone: str) -> ReportIn:
    return ReportIn(tenant=TENANT, category_code="100401", place_code=GRID, reported_at=datetime.now(UTC),
                    description=f"下水道堵塞，回电{phone}",
                    reporter=ReporterContact(name="测试员甲", phone=phone, id_number="11010519491231002X",
                                             address="幸福路88号3栋2单元501室"))


async def store(engine, keyring: Keyring, report: ReportIn) -> uuid.UUID:
    """A report row as Intake.store writes it (sealed part bound to the case id)."""
    case_id = uuid.uuid4()
    masked = masked_fields(report)
    part = sealed_part(report, masked)
    async with engine.begin() as conn:
        await conn.execute(db.reports.insert().values(
            case_id=case_id, tenant=report.tenant, source="api", source_id=None, category_code=report.category_code,
            place_code=report.place_code, reported_at=report.reported_at,
            report=report.model_dump(mode="json", exclude={"reporter"}) | masked,
            reporter_sealed=keyring.seal(part, case_id.bytes), reporter_key_id=keyring.current))
    return case_id


async def row(engine, case_id: uuid.UUID):
    r = db.reports
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(r).where(r.c.case_id == case_id))).mappings().one()


async def close(engine, case_id: uuid.UUID, closed_at: datetime | None, closed: bool = True) -> None:
    async with engine.begin() as conn:
        await conn.execute(db.case_view.insert().values(case_id=case_id, tenant=TENANT, place_code=GRID,
                                                        category_code="100401", closed=closed, closed_at=closed_at))


async def test_rotation_reseals_under_the_new_key(engine, keys):
    phone = "13800138000"
    case_id = await store(engine, ring("ka", keys=keys), a_report(phone))
    stored = await row(engine, case_id)
    assert stored["reporter_key_id"] == "ka" and phone.encode() not in stored["reporter_sealed"]
    assert phone not in str(stored["report"]) and "[电话]" in stored["report"]["description"]

    # rotation: new key first, old key still listed, re-seal
    assert await reseal_reporters(engine, ring("kb", "ka", keys=keys)) == 1
    resealed = await row(engine, case_id)
    assert resealed["reporter_key_id"] == "kb" and Keyring.key_id_of(resealed["reporter_sealed"]) == "kb"
    assert resealed["reporter_sealed"] != stored["reporter_sealed"]
    assert await reseal_reporters(engine, ring("kb", "ka", keys=keys)) == 0  # nothing left under ka

    # the old key can be dropped: ring (kb) alone opens it, ring (ka) alone does not
    opened = await reporter_contact(engine, ring("kb", keys=keys), case_id)
    assert opened["reporter"]["phone"] == phone and opened["reporter"]["name"] == "测试员甲"
    assert opened["reporter"]["id_number"] == "11010519491231002X" and phone in opened["description"]
    with pytest.raises(KeyringError, match="not configured"):
        await reporter_contact(engine, ring("ka", keys=keys), case_id)
    # a key of the same id but other bytes fails authentication
    with pytest.raises(KeyringError, match="authentication"):
        await reporter_contact(engine, Keyring.parse(f"kb:{keys['ka']}"), case_id)


async def test_tampered_or_moved_ciphertext_fails(engine, keys):
    keyring = ring("ka", keys=keys)
    case_id = await store(engine, keyring, a_report("13900139000"))
    sealed = bytearray((await row(engine, case_id))["reporter_sealed"])
    sealed[-1] ^= 0x01  # flip one bit of the tag
    async with engine.begin() as conn:
        await conn.execute(db.reports.update().where(db.reports.c.case_id == case_id).values(reporter_sealed=bytes(sealed)))
    with pytest.raises(KeyringError, match="authentication"):
        await reporter_contact(engine, keyring, case_id)
    # an intact value copied to another case's row does not open there (bound to the case id)
    other = await store(engine, keyring, a_report("13700137000"))
    good = (await row(engine, other))["reporter_sealed"]
    async with engine.begin() as conn:
        await conn.execute(db.reports.update().where(db.reports.c.case_id == case_id).values(reporter_sealed=good))
    with pytest.raises(KeyringError):
        await reporter_contact(engine, keyring, case_id)
    assert (await reporter_contact(engine, keyring, other))["reporter"]["phone"] == "13700137000"


async def test_anonymisation_erases_only_cases_closed_before_the_cutoff(engine, keys):
    keyring = ring("ka", keys=keys)
    now = datetime.now(UTC)
    after = timedelta(days=IntakeSettings().anonymise_after_days)
    old = await store(engine, keyring, a_report("13600136000"))
    recent = await store(engine, keyring, a_report("13500135000"))
    still_open = await store(engine, keyring, a_report("13300133000"))
    never_viewed = await store(engine, keyring, a_report("13200132000"))
    await close(engine, old, now - after - timedelta(days=1))
    await close(engine, recent, now - after + timedelta(days=1))
    await close(engine, still_open, None, closed=False)

    assert await anonymise_closed(engine, after, now=now) == 1
    erased = await row(engine, old)
    assert erased["reporter_sealed"] is None and erased["reporter_key_id"] is None
    assert erased["anonymised_at"] is not None and "13600136000" not in str(erased["report"])
    assert await reporter_contact(engine, keyring, old) is None
    for case_id, phone in ((recent, "13500135000"), (still_open, "13300133000"), (never_viewed, "13200132000")):
        kept = await row(engine, case_id)
        assert kept["anonymised_at"] is None and kept["reporter_sealed"] is not None, case_id
        assert (await reporter_contact(engine, keyring, case_id))["reporter"]["phone"] == phone
    # a second sweep finds nothing more; a later one takes the recent case too
    assert await anonymise_closed(engine, after, now=now) == 0
    assert await anonymise_closed(engine, after, now=now + timedelta(days=2)) == 1
    assert (await row(engine, recent))["reporter_sealed"] is None
    assert (await row(engine, still_open))["reporter_sealed"] is not None


def test_anonymisation_defaults_to_365_days(monkeypatch):
    monkeypatch.delenv("INTAKE_ANONYMISE_AFTER_DAYS", raising=False)
    assert IntakeSettings(_env_file=None).anonymise_after_days == 365
    assert IntakeSettings.model_fields["anonymise_after_days"].default == 365


async def test_erasure_rewrites_every_copy_intake_keeps(engine, keys):
    """A case stored before issue 16 (its name and address only pattern-masked, so in the clear in
    the report, the outbox, the history and the audit trail): erasure of that case alone leaves
    none of its known data and no reporter_ref in any of them; another closed case is untouched;
    the audit log still refuses any other change."""
    import json

    from shared.contract.events import derive_id

    keyring = ring("ka", keys=keys)
    name, address = "测试员乙", "幸福路99号9栋1单元901室"
    report = ReportIn(tenant=TENANT, category_code="100401", place_code=GRID, reported_at=datetime.now(UTC),
                      description=f"{name}反映{address}下水道堵塞",
                      reporter=ReporterContact(name=name, phone="13700137000", address=address))
    case_id, other = await store(engine, keyring, report), await store(engine, keyring, report)
    async with engine.begin() as conn:  # the copies as an older intake wrote them
        await conn.execute(db.reports.update().where(db.reports.c.case_id.in_([case_id, other])).values(
            report=report.model_dump(mode="json", exclude={"reporter"})))
        for cid in (case_id, other):
            await conn.execute(db.outbox.insert().values(
                event_id=derive_id(cid, "case.reported"), topic="gridcase.case.reported", key=str(cid),
                event_type="case.reported", payload=json.dumps(
                    {"event_type": "case.reported", "description": report.description, "reporter_ref": "f00d"},
                    ensure_ascii=False).encode()))
            await conn.execute(db.case_events.insert().values(
                event_id=derive_id(cid, "t1"), case_id=cid, event_type="case.transitioned", occurred_at=datetime.now(UTC),
                payload={"reason": f"已联系{name}", "evidence": [f"{address}.jpg"]}))
            await conn.execute(db.audit_log.insert().values(
                case_id=cid, tenant=TENANT, occurred_at=datetime.now(UTC), actor_ref="k1", actor_role="city_ops",
                action="accept", outcome="requested", detail=f"已联系{name}，回电13700137000"))
    now = datetime.now(UTC)
    for cid in (case_id, other):
        await close(engine, cid, now - timedelta(days=2))

    known: dict = {}
    assert await anonymise_closed(engine, timedelta(days=1), now=now, keyring=keyring, case_ids=[case_id],
                                  collect=known) == 1
    assert known[case_id].name == name and known[case_id].address == address

    async def copies(cid) -> str:
        async with engine.connect() as conn:
            texts = [str(dict(r)) for r in (await conn.execute(sa.select(db.reports).where(db.reports.c.case_id == cid))).mappings()]
            texts += [bytes(p).decode() for p in (await conn.execute(
                sa.select(db.outbox.c.payload).where(db.outbox.c.key == str(cid)))).scalars()]
            texts += [json.dumps(p, ensure_ascii=False) for p in (await conn.execute(
                sa.select(db.case_events.c.payload).where(db.case_events.c.case_id == cid))).scalars()]
            texts += list((await conn.execute(sa.select(db.audit_log.c.detail).where(db.audit_log.c.case_id == cid))).scalars())
        return "\n".join(texts)

    erased, kept = await copies(case_id), await copies(other)
    for secret in (name, address, "13700137000", "f00d", name[1:]):
        assert secret not in erased, (secret, erased)
        assert secret in kept, secret  # the case not named keeps everything
    for placeholder in ("[姓名]", "[地址]", "[电话]"):
        assert placeholder in erased
    async with engine.begin() as conn:
        with pytest.raises(Exception, match="append-only"):
            await conn.execute(db.audit_log.update().where(db.audit_log.c.case_id == other).values(detail="x"))
    async with engine.begin() as conn:
        await conn.execute(sa.text("SET LOCAL gridcase.erasure = 'on'"))
        with pytest.raises(Exception, match="append-only"):  # erasure too may change the detail only
            await conn.execute(db.audit_log.update().where(db.audit_log.c.case_id == other).values(actor_ref="k2"))
