"""The pure rules of text classification (shared/domain/textclass.py, docs/classifier.md)."""

from __future__ import annotations

from shared.domain.textclass import (
    UNCLASSIFIED,
    decide,
    dedupe,
    first_level,
    macro_f1,
    nearest_codes,
    ranked,
    text_key,
)


def test_first_level_of_a_path_and_of_a_plain_label():
    assert first_level("城乡建设/市政管理/道路") == "城乡建设"
    assert first_level("城乡建设 > 市政管理") == "城乡建设"
    assert first_level(" 卫生计生 ") == "卫生计生"
    assert first_level("HEAT/HOT WATER") == "HEAT"  # a path-shaped label is cut, documented


def test_text_key_finds_title_plus_body_and_body_alone():
    body = "小区门口的垃圾站离住户不到五米，夏季臭气四溢，请有关部门尽快处理，谢谢！" * 2
    assert text_key("垃圾站规划不合理\n\t" + body) == text_key(body.replace("，", "，"))
    pairs = dedupe([("标题\n" + body, "城乡建设"), (body, "城乡建设"), ("  ", "x"), ("另一条留言", "环境保护")])
    assert [label for _, label in pairs] == ["城乡建设", "环境保护"]


def test_decide_above_and_below_the_threshold():
    probabilities = {"a": 0.62, "b": 0.2, "c": 0.1, "d": 0.08}
    taken = decide(probabilities, 0.5)
    assert (taken.category_source, taken.category_code, taken.confidence) == ("predicted", "a", 0.62)
    triage = decide(probabilities, 0.7)
    assert (triage.category_source, triage.category_code) == ("unclassified", None)
    assert [s.category_code for s in triage.suggestions] == ["a", "b", "c"]  # top three, most probable first
    assert decide({}, 0.5).category_source == "unclassified"


def test_ranked_breaks_ties_by_code():
    assert [s.category_code for s in ranked({"z": 0.4, "a": 0.4, "m": 0.2}, 2)] == ["a", "z"]


def test_nearest_codes_by_spelling_and_by_name():
    known = {"100102": "垃圾扰民", "100401": "下水道堵塞", "200101": "噪声扰民", "300101": "占道经营"}
    assert nearest_codes("100103", known)[0] == "100102"
    assert "100102" in nearest_codes("垃圾", known)
    assert nearest_codes("zzzzzz", known) == []


def test_macro_f1_by_hand():
    # classes a, b: a has tp=1 fp=1 fn=0 -> F1 = 2/3; b has tp=1 fp=0 fn=1 -> F1 = 2/3; mean 2/3
    assert abs(macro_f1(["a", "b", "b"], ["a", "a", "b"]) - 2 / 3) < 1e-12


def test_unclassified_is_the_replies_category():
    # importers/mappings/teddycup_replies.yaml gives records without a category 未分类
    assert UNCLASSIFIED == "未分类"
