"""Masking of personal data in free text (shared/domain/pii.py), issue 6 item 3.

Formats: mainland mobile numbers (11 digits, 1[3-9], optional +86/0086), landlines (0 + area code
+ 7–8 digits), resident ID numbers (GB 11643: 18 characters; 15 digits in the first generation,
GB 11643-1989), e-mail addresses (RFC 6531 allows non-ASCII), bank cards (16–19 digits).
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.pii import _FOLD, _apply_patterns, _fold, mask_text, pseudonym


@pytest.mark.parametrize("text, masked", [
    ("电话13912345678", "电话[电话]"),
    ("+86 139-1234-5678", "[电话]"),
    ("0086 13812345678", "[电话]"),
    ("138.1234.5678 / 138/1234/5678", "[电话] / [电话]"),
    ("1 3 8 1 2 3 4 5 6 7 8", "[电话]"),
    ("138\u200b1234\u200b5678", "[电话]"),              # zero-width spaces
    ("１３８１２３４５６７８", "[电话]"),                # full-width (IME)
    ("١٣٨١٢٣٤٥٦٧٨", "[电话]"),                          # Arabic-Indic digits
    ("座机0591-87654321", "座机[电话]"),
    ("（0571）8765 4321", "[电话]"),
    ("身份证110101199003071234", "身份证[身份证号]"),
    ("11010119900307123X", "[身份证号]"),
    ("110101 19900307 1234", "[身份证号]"),
    ("老身份证110101900307123", "老身份证[身份证号]"),
    ("a.b@example.com，谢谢", "[邮箱]，谢谢"),
    ("张三@例子.中国", "[邮箱]"),
    ("卡号6222608377835337406", "卡号[卡号]"),
    ("6222 6083 7783 5337 406", "[卡号]"),
])
def test_personal_numbers_are_masked(text, masked):
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", [
    "下水道堵塞，2026年11月29日上午10点",
    "2026 11 29 10 30",
    "网格990102001001001",        # a (fictional, province 99) grid code
    "罚款5000元，面积120平方米",
    "12345热线转办",
    "",
])
def test_ordinary_text_is_left_alone(text):
    assert mask_text(text) == text


def test_pseudonym_is_stable_and_secret_bound():
    a = pseudonym(b"k1", "13912345678", None, "张三")
    assert a == pseudonym(b"k1", " 13912345678 ", None, "张三") and len(a) == 32
    assert a != pseudonym(b"k2", "13912345678", None, "张三")
    assert pseudonym(b"k1", None, "", None) is None


# --- the fold table (one translate per text) against the rule written out per character ----------


def fold_by_hand(text: str) -> str:
    """The fold as the module docstring states it, character by character."""
    out = []
    for c in text.translate(_FOLD):
        d = None if c.isascii() else unicodedata.decimal(c, None)
        out.append(c if d is None else str(d))
    return "".join(out)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_fold_is_the_per_character_rule(text):
    assert _fold(text) == fold_by_hand(text)
    assert len(_fold(text)) == len(text)


def test_fold_examples():
    # full-width digits (FF10–FF19), Arabic-Indic (0660–0669), Devanagari (0966–096F), zero width space
    assert _fold("１３９") == "139"
    assert _fold("١٣٩") == "139"
    assert _fold("१३९") == "139"
    assert _fold("a\u200bb") == "a b"
    assert _fold("网格") == "网格"


# --- the shortcut for texts with too few digits (issue 13) ----------------------------------------


def mask_with_every_pattern(text: str) -> str:
    """:func:`mask_text` without its shortcut: every pattern run, as the module docstring states."""
    return _apply_patterns(text, _fold(text))


@pytest.mark.parametrize("text, masked", [
    ("座机010-123-4567", "座机[电话]"),   # the shortest landline: 0 + 2-digit area code + 3 + 4 digits (10)
    ("(010)1234567", "[电话]"),
    ("1 3 9 1 2 3 4 5 6 7 8", "[电话]"),  # mobile: 11 digits
])
def test_the_shortest_numbers_are_masked(text, masked):
    assert mask_text(text) == masked


@given(st.text(alphabet=st.sampled_from("0123456789０１٣ -()@.x号楼张"), max_size=30))
def test_the_shortcut_masks_as_every_pattern_does(text):
    assert mask_text(text) == mask_with_every_pattern(text)
