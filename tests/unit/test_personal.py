"""Masking of a case's known personal data in free text (shared/domain/personal.py, issue 16):
the reporter's name, phone, ID number and address wherever they occur, besides the patterns of
shared/domain/pii.py; identifier-like fields that name a person become pseudonymous references."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.domain.personal import (
    KnownPersonal,
    mask_known,
    mask_personal,
    pseudonymous_ref,
    scrub,
    scrub_event,
)

ZHANG = KnownPersonal(name="张三丰", phone="+86 139-1234-5678", id_number="11010119900307123X",
                      address="幸福路12号3栋2单元")


@pytest.mark.parametrize("text, masked", [
    ("已联系张三丰", "已联系[姓名]"),
    ("张 三 丰来电", "[姓名]来电"),                       # spaces between the characters
    ("三丰说下水道又堵了", "[姓名]说下水道又堵了"),          # the given name alone (3+ characters)
    ("住幸福路12号3栋2单元", "住[地址]"),
    ("住幸福路 12号 3栋 2单元", "住[地址]"),
    ("住幸福路１２号３栋２单元", "住[地址]"),                # full-width digits (IME)
    ("回访13912345678", "回访[电话]"),
    ("回访139 1234 5678", "回访[电话]"),
    ("身份证110101 19900307 123x", "身份证[身份证号]"),
    ("张先生", "张先生"),                                  # the family name alone is not looked for
    ("幸福路", "幸福路"),                                  # part of the address is not the address
])
def test_known_values_are_masked_as_written(text, masked):
    assert mask_known(text, ZHANG) == masked


def test_mask_personal_adds_the_patterns():
    # the e-mail is not known: the pattern of pii.py finds it; the name only the known value does
    assert mask_personal("张三丰 a@b.com 13800000000", ZHANG) == "[姓名] [邮箱] [电话]"
    assert mask_personal("张三丰 13800000000", None) == "张三丰 [电话]"
    assert mask_personal(None, ZHANG) is None


def test_a_two_character_name_is_masked_whole_only():
    known = KnownPersonal(name="张三")
    assert mask_known("已联系张三，三号楼", known) == "已联系[姓名]，三号楼"


def test_latin_names_by_whole_words_in_any_case():
    known = KnownPersonal(name="John Smith")
    assert mask_known("Called JOHN SMITH; smith agreed. Smithfield Rd", known) == \
        "Called [姓名]; [姓名] agreed. Smithfield Rd"


def test_landline_also_without_its_area_code():
    known = KnownPersonal(phone="0591-87654321")
    assert mask_known("座机(0591)87654321，或87654321", known) == "座机[电话]，或[电话]"


def test_digits_inside_a_longer_number_are_not_a_phone():
    known = KnownPersonal(phone="13912345678")
    assert mask_known("订单913912345678", known) == "订单913912345678"


@pytest.mark.parametrize("known", [KnownPersonal(), KnownPersonal(name="张"), KnownPersonal(phone="12345"),
                                   KnownPersonal(address="3号")])
def test_too_short_or_missing_values_mask_nothing(known):
    text = "张先生住3号，电话12345"
    assert mask_known(text, known) == text


def test_known_of_a_sealed_contact():
    assert KnownPersonal.of({"name": "张三", "phone": "", "email": "x"}) == KnownPersonal(name="张三")
    assert not KnownPersonal.of(None)


def test_worker_ref_with_a_name_or_phone_becomes_a_pseudonym():
    secret = b"k" * 32
    ref = pseudonymous_ref("王巡查13511112222", secret)
    assert ref.startswith("ref-") and len(ref) == 20 and "135" not in ref
    assert pseudonymous_ref("王巡查13511112222", secret) == ref        # the same worker, the same ref
    assert pseudonymous_ref("王巡查13511112222", b"j" * 32) != ref     # keyed
    assert pseudonymous_ref("w-0042", secret) == "w-0042"             # a plain code stays
    assert pseudonymous_ref("13511112222", secret).startswith("ref-")  # a bare phone is no code
    assert pseudonymous_ref(None, secret) is None


def test_scrub_masks_every_string_and_drops_the_reporter_ref():
    payload = {"event_type": "case.transitioned", "reporter_ref": "ab12", "reason": "已联系张三丰",
               "evidence": ["录音_13912345678.mp3", 3], "nested": {"note": "幸福路12号3栋2单元"}, "n": None}
    assert scrub(payload, ZHANG) == {
        "event_type": "case.transitioned", "reporter_ref": None, "reason": "已联系[姓名]",
        "evidence": ["录音_[电话].mp3", 3], "nested": {"note": "[地址]"}, "n": None}
    assert scrub({"reporter_ref": "x", "d": "张三丰"}, None) == {"reporter_ref": None, "d": "张三丰"}


def test_masking_never_pushes_a_text_past_its_limit():
    known = KnownPersonal(name="张三")  # "[姓名]" is two characters longer than the name
    text = "张三" * 10
    assert len(mask_personal(text, known)) == 40
    assert mask_personal(text, known, limit=20) == "[姓名]" * 5
    assert scrub({"d": text}, known, tight=True) == {"d": "[姓名]" * 5}  # never longer than it was


def test_an_erased_event_still_decodes():
    from datetime import UTC, datetime

    from shared.contract.events import CaseActionRequested, decode_event

    known = KnownPersonal(name="张三")
    note = ("张三" * 1000)[:2000]  # at the note's limit: the loose mask would be 4,000 characters
    event = CaseActionRequested(case_id=uuid.uuid4(), tenant="demo-grid", place_code="990102001002001",
                                occurred_at=datetime(2026, 12, 1, tzinfo=UTC), action="accept", note=note,
                                event_id=uuid.uuid4(), actor_role="city_ops")
    erased = scrub_event(event.model_dump(mode="json"), known)
    assert erased["note"] == "[姓名]" * 500
    assert decode_event(json.dumps(erased, ensure_ascii=False)).note == "[姓名]" * 500
    short = event.model_copy(update={"note": "已联系张三"}).model_dump(mode="json")
    assert scrub_event(short, known)["note"] == "已联系[姓名]"  # loose where it fits
