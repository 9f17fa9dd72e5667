"""Per-category 处置时限 overrides (issue 3 item 5; docs/domain.md §1.1: garbage 4 working hours [P4])."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.dispatch.store import CaseBook
from shared.domain.taxonomy import TaxonomyError, load_taxonomy
from shared.domain.tenants import load_all_tenants
from shared.domain.workcalendar import Limit

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_garbage_has_its_own_limit_and_other_categories_the_urgency_table():
    taxonomy = load_taxonomy()
    book = CaseBook(load_all_tenants(), taxonomy, clock=None)
    garbage = book.context("demo-grid", "100102", "990102001001001", "一般", NOW).limit
    sewer = book.context("demo-grid", "100401", "990102001001001", "一般", NOW).limit
    urgent_garbage = book.context("demo-grid", "100102", "990102001001001", "紧急", NOW).limit
    assert garbage == Limit(4 / 24, "working_days")  # 4 hours of working-day time
    assert sewer == Limit(5, "working_days")  # 一般: 5 WD (docs/domain.md §3(d)3)
    assert urgent_garbage == Limit(24, "hours")  # an emergency keeps its natural-hour limit


def test_a_malformed_limit_is_refused_with_file_and_line(tmp_path):
    text = Path(load_taxonomy().path).read_text(encoding="utf-8")
    broken = text.replace("dispose_limit: 4wh", "dispose_limit: soon")
    path = tmp_path / "taxonomy.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    assert "taxonomy.yaml" in str(info.value) and "dispose_limit" in str(info.value)
