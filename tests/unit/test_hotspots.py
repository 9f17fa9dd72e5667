"""Hot issues (shared/domain/hotspots.py, docs/classifier.md §5): grouping and heat by hand."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from shared.domain.hotspots import CaseText, hotspots

CST = timezone(timedelta(hours=8))
START = datetime(2026, 11, 1, tzinfo=CST)
END = datetime(2026, 12, 1, tzinfo=CST)  # 30 days; the later half starts 2026-11-16 00:00
COMMUNITY = "990102001001"


def case(i: int, text: str, day: float, *, place=COMMUNITY + "001", reporter=None, category="100102") -> CaseText:
    return CaseText(f"c{i:03d}", place, category, START + timedelta(days=day), text, reporter)


def test_a_burst_in_one_community_is_the_top_hot_issue():
    burst = [case(i, f"幸福路菜市场门口垃圾堆积如山，臭气熏天{'！' * i}", 20 + i * 0.5, reporter=f"r{i}",
                  place=COMMUNITY + ("001" if i % 2 else "002")) for i in range(5)]
    scattered = [case(10, "路灯不亮", 3, place="990102001002001"), case(11, "路灯坏了不亮", 25, place="990102001002001"),
                 case(12, "下水道堵塞", 5), case(13, "邻居装修噪音", 6)]
    found = hotspots(burst + scattered, START, END)
    top = found[0]
    assert top.place == COMMUNITY and top.count == 5 and top.reporters == 5
    # by hand: n = r = 5 -> weight 5; all five on days 20..22 (later half) -> growth (5 - 0)/5 = 1;
    # span 2 days -> heat = 5 * 2 / (1 + log10(3))
    assert math.isclose(top.heat, 10 / (1 + math.log10(3)))
    # the two street-light reports share the bigram 路灯 … 不亮: one group of two, in another community
    assert [(g.place, g.count) for g in found[1:]] == [("990102001002", 2)]


def test_repeats_of_one_reporter_count_half_and_early_groups_do_not_grow():
    cases = [case(i, "小区门口垃圾没人清运", i, reporter="same") for i in range(3)]
    (group,) = hotspots(cases, START, END)
    # n = 3, r = 1 -> weight 1 + 0.5 * 2 = 2; days 0..2, all in the first half -> growth 0;
    # span 2 days -> heat = 2 / (1 + log10(3))
    assert group.reporters == 1 and group.growth == 0
    assert math.isclose(group.heat, 2 / (1 + math.log10(3)))


def test_cases_outside_the_period_and_single_cases_are_left_out():
    cases = [case(1, "垃圾没人清运", -1), case(2, "垃圾没人清运", 30), case(3, "垃圾没人清运", 1)]
    assert hotspots(cases, START, END) == []


def test_as_dict_names_the_place_the_category_and_a_sample():
    cases = [case(i, "幸福路垃圾没人清运", i, reporter=f"r{i}") for i in range(2)]
    shown = hotspots(cases, START, END)[0].as_dict()
    assert (shown["place_code"], shown["count"], shown["category_code"]) == (COMMUNITY, 2, "100102")
    assert shown["sample"] == "幸福路垃圾没人清运" and shown["case_ids"] == ["c000", "c001"]


def test_reporter_key_is_per_community_and_month_and_not_the_reference():
    """services/reporting/handlers.py ``reporter_key``: reporting keeps no reporter reference (issue 16)."""
    import uuid

    from services.reporting.handlers import reporter_key
    from shared.contract.events import CaseReported

    def event(ref, place, day):
        at = START + timedelta(days=day)
        return CaseReported(event_id=uuid.uuid4(), occurred_at=at, case_id=uuid.uuid4(), tenant="demo-grid",
                            place_code=place, category_code="100102", reported_at=at, reporter_ref=ref)

    ref = "0123456789abcdef0123456789abcdef"
    key = reporter_key(event(ref, COMMUNITY + "001", 1))
    assert key and ref not in key and len(key) == 32
    assert reporter_key(event(ref, COMMUNITY + "002", 5)) == key  # another grid of the same community, same month
    assert reporter_key(event(ref, "990102001002001", 1)) != key  # another community
    assert reporter_key(event(ref, COMMUNITY + "001", 31)) != key  # December
    assert reporter_key(event(None, COMMUNITY + "001", 1)) is None
