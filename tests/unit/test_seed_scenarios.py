"""gridcase/seeds.py seeds C and D (the live cases ``gridcase demo`` acts out) and the pure parts of
gridcase/scenarios.py (the periods of the seed documents, reading their Markdown). Expected values
come from docs/seeds.md blocks C and D and from the calendar."""

from __future__ import annotations

from datetime import UTC, datetime

from gridcase.scenarios import TZ, half_year, paragraphs, scenarios, table_rows, year
from gridcase.seeds import SEED_C_GRID, SEED_D_COMMUNITY, seed_c_cases, seed_d_cases


def test_seed_c_sewer_climbs_grid_community_street_and_urban_management_closes():
    cases = seed_c_cases("x")
    # block C: sewer, cooking fume, garbage, family dispute
    assert [c.report["category_code"] for c in cases] == ["100401", "100110", "100102", "300101"]
    assert {c.report["place_code"] for c in cases} == {SEED_C_GRID}
    sewer = cases[0]
    assert sewer.report["channel"] == "platform"  # the contradiction-resolution platform
    steps = [(a, role) for a, role, _, _ in sewer.actions]
    assert steps[:3] == [("accept", "grid_worker"), ("escalate", "grid_worker"), ("escalate", "community_staff")]
    assert ("file", "street_staff") in steps and sewer.actions[3][2] == {"target_department": "urban_management"}
    assert sewer.actions[-1][3] == "closed"
    # fume and garbage: settled in the grid by the worker himself, with evidence
    for own in cases[1:3]:
        assert [a for a, *_ in own.actions] == ["accept", "self_handle"] and own.actions[1][2]["evidence"]
    assert cases[3].settles_in == "mediating" and cases[3].actions[-1][0] == "mediation_agreement"
    assert len({c.report["source_id"] for c in cases}) == 4


def test_seed_d_four_family_disputes_mediated():
    cases = seed_d_cases()
    assert len(cases) == 4  # block D: 调解家庭纠纷 4
    assert all(c.report["category_code"] == "300101" and c.report["place_code"].startswith(SEED_D_COMMUNITY)
               for c in cases)
    assert all(c.actions[-1][0] == "mediation_agreement" for c in cases)
    assert sum(a == "mediation_failed" for c in cases for a, *_ in c.actions) == 1


def test_half_year_and_year_of_the_run():
    # 2026-12-06 10:00 UTC is 18:00 in Shanghai: July–December 2026
    now = datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert half_year(now) == (datetime(2026, 7, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ))
    # 2026-06-30 17:00 UTC is already July 1st in Shanghai
    assert half_year(datetime(2026, 6, 30, 17, tzinfo=UTC))[0] == datetime(2026, 7, 1, tzinfo=TZ)
    assert half_year(datetime(2026, 3, 1, tzinfo=UTC)) == (datetime(2026, 1, 1, tzinfo=TZ), datetime(2026, 7, 1, tzinfo=TZ))
    assert year(now) == (datetime(2026, 1, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ))


def test_seed_b_document_covers_the_78_days():
    b = scenarios(datetime(2026, 12, 6, tzinfo=UTC))[1]
    # 2026-09-01 + 78 days = 2026-11-18 (Sep 30 + Oct 31 = 61, + 17 in November)
    assert (b.start, b.end) == ("2026-09-01T00:00:00+08:00", "2026-11-18T00:00:00+08:00")


def test_paragraphs_and_rows_of_a_document():
    md = "# T\n\n## 一、基本情况\n\nfirst\n\nsecond\n\n| a | b |\n|---|---|\n| 办结率 | 1% |\n\n## 二\n\nthird\n"
    assert paragraphs(md, "## 一、基本情况") == ["first", "second"]
    assert paragraphs(md, "## 三") == []
    assert table_rows(md, ("办结率", "受理量")) == ["| 办结率 | 1% |", ""]
