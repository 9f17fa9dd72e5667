"""Possible duplicates of a new report (issue 15 item 3; docs/classifier.md §4): pure rules.

A stored case is a candidate when, against the new report:

- it has the **same category** (the category now);
- it lies at the **same place** (equal place code: the same grid, or the same building under it),
  or, where both carry coordinates, **within 50 m** (great-circle distance, :func:`distance_m`);
- it was reported **within the tenant's window** before the new report (``text.duplicate_window_days``,
  shared/domain/tenanttext.py), open or closed.

Candidates are ranked by text similarity (:func:`similarity`, most similar first; ties: the newer
first) and the first :data:`LIMIT` are returned. The text only ranks: place, category and window
decide. A candidate whose text shares no bigram with the report's is listed for its place and
category alone, with similarity ``None``, after those that share some: a bare "x", "见图" or other
words for the same matter (井盖丢失 / 下水道盖子没了) say nothing against it, and a 0.0 shown beside it would read as
"judged not similar". Text similarity is the cosine of the sets of
character bigrams of the two masked texts (punctuation and spaces dropped; the Ochiai coefficient
``|A ∩ B| / sqrt(|A| · |B|)``): it needs no dictionary, treats Chinese and Latin script alike, is 1
for texts with the same bigrams and 0 for texts sharing none, and costs about 10 µs a pair (sets,
not counts: four times faster, and it runs in the request).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

#: Distance within which two reports with coordinates are at the same spot (issue 15: "within 50 m").
RADIUS_M = 50.0
#: How many possible duplicates are shown.
LIMIT = 5
#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8

_DROP = re.compile(r"[\W_]+", re.UNICODE)


def bigrams(text: str) -> Counter[str]:
    """Character bigram counts of ``text`` without punctuation, spaces and case (a one-character
    text counts as its single character); hot issues sum them per group (shared/domain/hotspots.py)."""
    clean = _DROP.sub("", text.lower())
    if len(clean) == 1:
        return Counter([clean])
    return Counter(clean[i:i + 2] for i in range(len(clean) - 1))


def bigram_set(text: str) -> frozenset[str]:
    """The set of :func:`bigrams` of ``text``. Not remembered across requests: a cache keyed by the
    texts would keep residents' (masked) texts in memory after their case is erased."""
    clean = _DROP.sub("", text.lower())
    if len(clean) == 1:
        return frozenset((clean,))
    return frozenset(map("".join, zip(clean, clean[1:], strict=False)))


def set_cosine(a: frozenset[str], b: frozenset[str]) -> float:
    """``|a ∩ b| / sqrt(|a| · |b|)`` (0 when either is empty)."""
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))


def cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(count * b[gram] for gram, count in a.items() if gram in b)
    return dot / math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))


def similarity(a: str, b: str) -> float:
    """Cosine similarity of the character bigram sets of ``a`` and ``b`` (0..1)."""
    return set_cosine(bigram_set(a), bigram_set(b))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Box:
    """The latitude and longitude bounds (degrees) that hold every point within a radius of a
    centre (:func:`bounding_box`); ``lon_min``/``lon_max`` are ``None`` when any longitude may."""

    lat_min: float
    lat_max: float
    lon_min: float | None
    lon_max: float | None


def bounding_box(lat: float, lon: float, radius_m: float = RADIUS_M) -> Box:
    """The smallest latitude/longitude box holding every point within ``radius_m`` of
    (``lat``, ``lon``) on the sphere of :func:`distance_m`: the store reads only the stored reports
    inside it, and :func:`near` decides. The angular radius is r = radius ÷ R. Latitude: a point at
    distance d differs by at most d ÷ R in latitude (the meridian is the shortest way to another
    latitude). Longitude: at most asin(sin r ÷ cos φ) (the meridians tangent to the circle; J. P.
    Matuschek, "Finding Points Within a Distance of a Latitude/Longitude Using Bounding
    Coordinates", 2010, §3.3). When the circle holds a pole, or its box would cross the ±180°
    meridian, any longitude may (``None``): rarer than a grid, and never wrong. Bounds are widened
    by 1e-9° (0.1 mm) against rounding."""
    r = radius_m / EARTH_RADIUS_M
    eps = 1e-9
    phi = math.radians(lat)
    d_lat = math.degrees(r)
    lat_min, lat_max = max(lat - d_lat - eps, -90.0), min(lat + d_lat + eps, 90.0)
    if abs(phi) + r >= math.pi / 2:
        return Box(lat_min, lat_max, None, None)
    d_lon = math.degrees(math.asin(min(1.0, math.sin(r) / math.cos(phi))))
    lon_min, lon_max = lon - d_lon - eps, lon + d_lon + eps
    if lon_min < -180.0 or lon_max > 180.0:
        return Box(lat_min, lat_max, None, None)
    return Box(lat_min, lat_max, lon_min, lon_max)


class Report(NamedTuple):
    """What the rules read of a report or a stored case (a named tuple: the store builds up to
    100 per request, at a third of a frozen dataclass's cost)."""

    case_id: str
    category_code: str
    place_code: str
    reported_at: datetime
    text: str
    latitude: float | None = None
    longitude: float | None = None


def near(a: Report, b: Report, radius_m: float = RADIUS_M) -> bool:
    """Same place code, or both located and within ``radius_m``."""
    if a.place_code == b.place_code:
        return True
    if None in (a.latitude, a.longitude, b.latitude, b.longitude):
        return False
    return distance_m(a.latitude, a.longitude, b.latitude, b.longitude) <= radius_m


def possible_duplicates(new: Report, stored: Iterable[Report], window: timedelta, *,
                        limit: int = LIMIT, radius_m: float = RADIUS_M) -> list[tuple[Report, float | None]]:
    """``(case, similarity)`` of the candidates (module docstring), most similar first; ``None``
    when the texts share no bigram (never 0.0)."""
    grams = None  # the new text's bigrams, once a candidate needs them
    since, until = new.reported_at - window, new.reported_at
    found = []
    for case in stored:
        if case.case_id == new.case_id or case.category_code != new.category_code:
            continue
        if not (since <= case.reported_at <= until):
            continue
        if not near(new, case, radius_m):
            continue
        grams = bigram_set(new.text) if grams is None else grams
        score = set_cosine(grams, bigram_set(case.text))
        found.append((case, max(round(score, 4), 0.0001) if score > 0 else None))
    found.sort(key=lambda pair: (-(pair[1] or 0.0), -pair[0].reported_at.timestamp(), pair[0].case_id))
    return found[:limit]
