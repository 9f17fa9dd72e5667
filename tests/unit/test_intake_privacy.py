"""What of a report leaves intake (services/intake/domain/privacy.py, reports.py; issue 16): the
reporter's known data masked in every free-text and identifier field, the originals sealed, the
event built from the masked fields, a live report's category a taxonomy code, and the fingerprint
that tells a retry from a reused Idempotency-Key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.intake.domain.privacy import anonymised_report, masked_fields, sealed_part
from services.intake.domain.reports import category_problem, fingerprint, to_event
from services.intake.schemas import ReporterContact, ReportIn
from shared.contract.events import RecordedOutcome
from shared.domain.personal import KnownPersonal

NAME, PHONE, ADDRESS = "张三丰", "13987654321", "幸福路12号3栋"


def report(**fields) -> ReportIn:
    base = {"tenant": "demo-grid", "category_code": "100401", "place_code": "990102001002001",
            "reported_at": datetime(2026, 11, 29, 9, tzinfo=UTC), "description": f"{NAME}反映{ADDRESS}下水道堵塞",
            "source": "12345", "source_id": f"src-{PHONE}", "channel": "phone",
            "reporter": ReporterContact(name=NAME, phone=PHONE, address=ADDRESS)}
    return ReportIn(**(base | fields))


def test_every_field_that_leaves_intake_is_masked_and_the_originals_sealed():
    r = report()
    masked = masked_fields(r)
    assert masked["description"] == "[姓名]反映[地址]下水道堵塞"
    assert masked["source_id"] == "src-[电话]"
    assert masked["category_code"] == "100401" and masked["source"] == "12345"
    part = sealed_part(r, masked)
    assert part["reporter"]["name"] == NAME and part["description"] == r.description
    assert part["original"] == {"source_id": f"src-{PHONE}"}  # only what masking changed
    event = to_event(r, uuid.uuid4(), b"s" * 32, masked)
    dumped = event.model_dump_json()
    assert NAME not in dumped and PHONE not in dumped and ADDRESS not in dumped
    assert event.source_id == "src-[电话]" and event.reporter_ref


def test_without_a_reporter_only_the_patterns_mask():
    masked = masked_fields(report(reporter=None))
    assert masked["description"] == f"{NAME}反映{ADDRESS}下水道堵塞"  # nothing known: nothing to look for
    assert masked["source_id"] == "src-[电话]"
    assert sealed_part(report(reporter=None, description="下水道堵塞", source_id="A-1"),
                       masked_fields(report(reporter=None, description="下水道堵塞", source_id="A-1"))) is None


def test_anonymised_report_masks_again_with_the_known_data():
    stored = {"description": f"{NAME}来电", "source_id": f"{NAME}-1", "place_code": "990102001002001"}
    assert anonymised_report(stored, KnownPersonal(name=NAME)) == {
        "description": "[姓名]来电", "source_id": "[姓名]-1", "place_code": "990102001002001"}


def test_a_live_report_names_a_taxonomy_category():
    assert category_problem(report()) is None
    assert category_problem(report(category_code=f"张三{PHONE}")) is not None
    assert PHONE not in category_problem(report(category_code=f"张三{PHONE}"))  # not echoed
    # a record of another system keeps its own category (masked when it leaves intake)
    history = report(category_code=f"Noise {PHONE}", history=RecordedOutcome(status="Open"))
    assert category_problem(history) is None
    assert masked_fields(history)["category_code"] == "Noise [电话]"


def test_fingerprint_tells_a_retry_from_another_body():
    secret = b"k" * 32
    assert fingerprint(secret, report()) == fingerprint(secret, report())
    assert fingerprint(secret, report()) != fingerprint(secret, report(description="另一件事"))
    assert fingerprint(secret, report()) != fingerprint(b"j" * 32, report())  # keyed
    assert len(fingerprint(secret, report())) == 64


def test_masked_fields_still_fit_their_fields():
    r = report(description="张三丰" * 1333, source="张三丰" * 10,
               reporter=ReporterContact(name="张三丰"))  # 3,999 and 30 characters, within 4000 and 32
    masked = masked_fields(r)
    assert len(masked["description"]) == 4000 and masked["description"].startswith("[姓名][姓名]")
    assert len(masked["source"]) == 32
    to_event(r, uuid.uuid4(), b"s" * 32, masked)  # the event's limits hold
