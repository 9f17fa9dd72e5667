"""The ``Prefer`` header (RFC 7240, shared/platform/prefer.py): what intake's action endpoints read
of ``Prefer: wait=N``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.platform.prefer import preferences, preferred_wait


def test_preferences_of_one_header():
    assert preferences(["respond-async, wait=10"]) == {"respond-async": None, "wait": "10"}


def test_names_are_case_insensitive_and_spaces_around_them_ignored():
    assert preferences([" WAIT = 5 ;foo=bar , Return=minimal"]) == {"wait": "5", "return": "minimal"}


def test_parameters_after_a_semicolon_are_ignored():
    assert preferences(['handling=lenient; x="a,b"; y']) == {"handling": "lenient"}


def test_quoted_values_are_unquoted_and_may_hold_commas_and_semicolons():
    assert preferences(['foo="a, b; c", wait="7"']) == {"foo": "a, b; c", "wait": "7"}
    assert preferences([r'foo="say \"hi\""']) == {"foo": 'say "hi"'}


def test_the_first_occurrence_counts_also_across_headers():
    # RFC 7240 §2: a preference stated more than once is read at its first occurrence
    assert preferences(["wait=3, wait=9"])["wait"] == "3"
    assert preferences(["respond-async", "wait=4", "wait=20"])["wait"] == "4"


def test_empty_items_are_skipped():
    assert preferences([", ,wait=1,,"]) == {"wait": "1"}
    assert preferences([]) == {}


@pytest.mark.parametrize("headers, wait", [
    (["wait=10"], 10),
    (["wait=0"], 0),
    (["respond-async, wait=12"], 12),
    (['wait="8"'], 8),
    (["wait=30"], 30),
    (["wait=31"], 30),          # capped
    (["wait=86400"], 30),
    (["wait=" + "9" * 5000], 30),  # absurd, still capped (no huge int conversion)
    ([], None),
    (["respond-async"], None),
    (["wait"], None),           # no value
    (["wait="], None),
    (["wait=-1"], None),        # delta-seconds is 1*DIGIT
    (["wait=1.5"], None),
    (["wait=ten"], None),
    (["wait=１０"], None),      # full-width digits are not DIGIT
    (["wait=abc, wait=5"], None),  # the first occurrence counts, and it is malformed
])
def test_preferred_wait(headers, wait):
    assert preferred_wait(headers, cap=30) == wait


@given(st.lists(st.text(max_size=40), max_size=4))
def test_any_header_text_parses_without_error(headers):
    wait = preferred_wait(headers, cap=30)
    assert wait is None or 0 <= wait <= 30
