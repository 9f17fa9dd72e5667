"""Possible duplicates (shared/domain/duplicates.py, docs/classifier.md §4): the pure rules."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.duplicates import (
    EARTH_RADIUS_M,
    Report,
    bigrams,
    bounding_box,
    distance_m,
    possible_duplicates,
    similarity,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=CST)
WINDOW = timedelta(days=30)


def rep(case_id: str, text: str, *, category="100102", place="990102001001001", days_before=1.0,
        lat=None, lon=None) -> Report:
    return Report(case_id, category, place, T0 - timedelta(days=days_before), text, lat, lon)


def test_similarity_by_hand():
    # "垃圾满溢" -> bigrams 垃圾 圾满 满溢; "垃圾清运" -> 垃圾 圾清 清运: one shared of three each,
    # cosine = 1 / (sqrt(3) * sqrt(3)) = 1/3
    assert abs(similarity("垃圾满溢", "垃圾清运") - 1 / 3) < 1e-12
    assert similarity("垃圾满溢！", "垃圾 满溢") == 1.0  # punctuation and spaces dropped
    assert similarity("垃圾", "下水") == 0.0
    assert bigrams("A") == {"a": 1}


def test_distance_by_hand():
    # one thousandth of a degree of latitude: 6,371,008.8 m x pi / 180 / 1000 = 111.19 m
    assert abs(distance_m(39.9, 116.4, 39.901, 116.4) - 6_371_008.8 * math.pi / 180 / 1000) < 0.01


def test_candidates_same_category_same_place_or_near_within_the_window():
    new = Report("new", "100102", "990102001001001", T0, "幸福路口垃圾桶满溢，垃圾三天没有清运", 39.9, 116.4)
    stored = [
        rep("same", "幸福路口垃圾桶满溢，三天没有清运"),
        rep("other-category", "幸福路口垃圾桶满溢，三天没有清运", category="100401"),
        rep("other-place", "幸福路口垃圾桶满溢", place="990102001001002"),
        # 0.0003 degrees of latitude = 33.4 m: near although in another grid
        rep("near", "垃圾没有清运", place="990102001001002", lat=39.9003, lon=116.4),
        # 0.0005 degrees = 55.6 m: too far
        rep("far", "垃圾桶满溢", place="990102001001002", lat=39.9005, lon=116.4),
        rep("too-old", "幸福路口垃圾桶满溢，垃圾三天没有清运", days_before=31),
        rep("later", "幸福路口垃圾桶满溢，垃圾三天没有清运", days_before=-1),
        rep("new", "itself"),
    ]
    found = possible_duplicates(new, stored, WINDOW)
    assert [case.case_id for case, _ in found] == ["same", "near"]
    assert found[0][1] > found[1][1]


def test_ties_rank_the_newer_first_and_the_limit_holds():
    new = Report("new", "100102", "p", T0, "垃圾满溢")
    stored = [rep(f"c{i}", "垃圾满溢", place="p", days_before=i + 1) for i in range(7)]
    found = possible_duplicates(new, stored, WINDOW, limit=5)
    assert [case.case_id for case, _ in found] == ["c0", "c1", "c2", "c3", "c4"]


def test_a_text_sharing_nothing_is_listed_for_place_and_category_without_a_similarity():
    """The report of a bare "x" at the place and category of an earlier case: listed, for place and
    category alone, with similarity None rather than a 0.0 that reads "judged not similar"; a case
    whose text shares something ranks before it, although older."""
    new = Report("new", "100102", "990102001001001", T0, "x")
    first = rep("first", "幸福路口垃圾桶满溢，三天没有清运", days_before=1)
    assert possible_duplicates(new, [first], WINDOW) == [(first, None)]
    # "垃圾桶满溢" vs "幸福路口垃圾桶满溢": bigram sets of 4 and 8 sharing 垃圾 圾桶 桶满 满溢, 4 / sqrt(4 · 8) = 0.7071
    worded = Report("worded", "100102", "990102001001001", T0, "垃圾桶满溢")
    older = rep("older", "幸福路口垃圾桶满溢", days_before=5)
    other_words = rep("other-words", "有人乱扔", days_before=1)
    assert possible_duplicates(worded, [other_words, older], WINDOW) == [(older, 0.7071), (other_words, None)]


def test_bounding_box_by_hand():
    # 50 m on a sphere of 6,371,008.8 m is 50 / 6,371,008.8 = 7.84805e-6 rad = 4.49661e-4 degrees
    # of latitude anywhere; of longitude asin(sin r / cos lat): the same at the equator, twice
    # that at 60 degrees (cos 60 = 1/2; sin r ~ r this small)
    box = bounding_box(0.0, 116.4)
    assert abs(box.lat_max - 4.49661e-4) < 1e-9 and abs(box.lat_min + 4.49661e-4) < 1e-9
    assert abs(box.lon_max - 116.4 - 4.49661e-4) < 1e-9 and abs(116.4 - box.lon_min - 4.49661e-4) < 1e-9
    box = bounding_box(60.0, 10.0)
    assert abs(box.lat_max - 60.0 - 4.49661e-4) < 1e-9
    assert abs(box.lon_max - 10.0 - 2 * 4.49661e-4) < 1e-8


def test_bounding_box_gives_up_longitude_at_a_pole_and_across_180():
    assert bounding_box(89.9999, 0.0).lon_min is None  # 11 m from the pole: the circle holds it
    assert bounding_box(-89.9999, 0.0).lon_max is None
    assert bounding_box(0.0, 179.9999).lon_min is None  # the box would cross the 180th meridian
    assert bounding_box(0.0, -179.9999).lon_max is None
    assert bounding_box(89.0, 0.0).lon_min is not None


def destination(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` from (lat, lon) along ``bearing`` (degrees from north) on the sphere:
    the direct problem (Ed Williams' Aviation Formulary, "Lat/lon given radial and distance")."""
    d, theta = metres / EARTH_RADIUS_M, math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(theta))
    l2 = l1 + math.atan2(math.sin(theta) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), math.degrees(l2)


@given(st.floats(-89.9, 89.9), st.floats(-179.99, 179.99), st.floats(0, 360), st.floats(0, 50))
def test_every_point_within_the_radius_is_in_its_box(lat, lon, bearing, metres):
    p_lat, p_lon = destination(lat, lon, bearing, metres)
    box = bounding_box(lat, lon)
    assert distance_m(lat, lon, p_lat, p_lon) <= 50.0 + 1e-6
    assert box.lat_min <= p_lat <= box.lat_max
    if box.lon_min is not None:
        assert box.lon_min <= p_lon <= box.lon_max
