"""services/intake/domain/taxonomy.py: the category names of ``GET /v1/cases/{id}``, the case's
(``category_name``) and its report's (``report.category_name``). Names by hand from
shared/data/taxonomy.yaml: 100102 垃圾扰民, 100110 油烟扰民; 未分类 (the importers' "no category") is
not a taxonomy code."""

from __future__ import annotations

from services.intake.domain.taxonomy import category_name, reported_category_name


def test_a_report_that_named_only_its_code_shows_the_taxonomys_name():
    # POST /v1/reports with category_code alone stores category_name "" (services/intake/schemas.py)
    assert reported_category_name("100102", "") == "垃圾扰民"
    assert reported_category_name("100102", None) == "垃圾扰民"


def test_a_name_the_report_gave_is_shown_verbatim():
    # a source's own category (NYC's complaint type) beside the code it was mapped to
    assert reported_category_name("100102", "Noise - Residential") == "Noise - Residential"
    assert reported_category_name("未分类", "Illegal Parking") == "Illegal Parking"
    assert reported_category_name("未分类", "") == ""  # nothing to name it by: as given


def test_the_cases_name_is_the_taxonomys_first():
    assert category_name("100110", "Noise - Residential") == "油烟扰民"
    assert category_name("未分类", "Illegal Parking") == "Illegal Parking"
    assert category_name("未分类", "") is None
    assert category_name(None, None) is None
