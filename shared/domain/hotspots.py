"""Hot issues (热点问题, issue 15 item 4; docs/classifier.md §5): recent cases grouped by place and
text similarity, each group with a heat index. Pure rules.

The shape is the Teddy Cup 2020 problem C task 2 (热点问题挖掘: "某一时段内群众集中反映的某一问题",
a problem many people raise about one place in one period; the task asks for a heat index and a
ranked table of hot issues with their place, period and description; data README
"teddycup2020c_fj2_messages_sample.csv"). The competition leaves the index to the entrant; this is
gridcase's, made of the four things the issue names:

1. **Place**: cases are grouped by their place code cut to :data:`PLACE_DIGITS` (12 digits: the
   community, docs/domain.md §3(a); a shorter code, e.g. Teddy Cup's ``"0"``, stays whole).
2. **Text**: within a place, cases are taken in time order; each joins the group whose summed
   character-bigram counts (shared/domain/duplicates.py ``bigrams``) are most similar to its own,
   when that cosine is at least :data:`SIMILAR`, else it starts a group.
3. **Heat** of a group of ``n`` cases from ``r`` distinct reporters (by the reporter key reporting
   keeps, one per reporter, community and month; a case without one counts as its own reporter), reported over ``span`` days (first to last), of which
   ``recent`` fall in the later half of the period asked for::

       weight = r + 0.5 · (n − r)                      # a repeated report of one person counts half
       growth = max(0, (recent − (n − recent)) / n)    # 0..1: how much the group grows late in the period
       heat   = weight · (1 + growth) / (1 + log10(1 + span))

   so more people, faster growth and a tighter burst all raise it. Groups of fewer than
   :data:`MIN_CASES` cases are not hot issues.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from shared.domain.duplicates import bigrams, cosine

PLACE_DIGITS = 12
SIMILAR = 0.3
MIN_CASES = 2


@dataclass(frozen=True)
class CaseText:
    case_id: str
    place_code: str
    category_code: str | None
    reported_at: datetime
    text: str
    reporter_key: str | None = None  # the reporter within one community and month (reporting's handlers.py)


@dataclass
class Hotspot:
    place: str
    cases: list[CaseText] = field(default_factory=list)
    grams: Counter = field(default_factory=Counter)
    heat: float = 0.0
    growth: float = 0.0

    @property
    def count(self) -> int:
        return len(self.cases)

    @property
    def reporters(self) -> int:
        return len({c.reporter_key or f"case:{c.case_id}" for c in self.cases})

    @property
    def first_at(self) -> datetime:
        return min(c.reported_at for c in self.cases)

    @property
    def last_at(self) -> datetime:
        return max(c.reported_at for c in self.cases)

    @property
    def span_days(self) -> float:
        return (self.last_at - self.first_at).total_seconds() / 86400

    def as_dict(self, limit_ids: int = 20) -> dict:
        categories = Counter(c.category_code for c in self.cases if c.category_code)
        sample = max(self.cases, key=lambda c: (cosine(bigrams(c.text), self.grams), c.reported_at)).text
        return {
            "place_code": self.place,
            "heat": round(self.heat, 2),
            "count": self.count,
            "reporters": self.reporters,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "span_days": round(self.span_days, 2),
            "growth": round(self.growth, 4),
            "category_code": categories.most_common(1)[0][0] if categories else None,
            "sample": sample[:200],
            "case_ids": [c.case_id for c in sorted(self.cases, key=lambda c: c.reported_at)][:limit_ids],
        }


def place_key(code: str, digits: int = PLACE_DIGITS) -> str:
    return code[:digits]


def heat_of(group: Hotspot, start: datetime, end: datetime) -> tuple[float, float]:
    """``(heat, growth)`` of ``group`` for the period ``[start, end)`` (module docstring)."""
    n, r = group.count, group.reporters
    middle = start + (end - start) / 2
    recent = sum(1 for c in group.cases if c.reported_at >= middle)
    growth = max(0.0, (recent - (n - recent)) / n)
    weight = r + 0.5 * (n - r)
    return weight * (1 + growth) / (1 + math.log10(1 + group.span_days)), growth


def hotspots(cases: Iterable[CaseText], start: datetime, end: datetime, *, limit: int = 10,
             similar: float = SIMILAR, min_cases: int = MIN_CASES, digits: int = PLACE_DIGITS) -> list[Hotspot]:
    """The hot issues among ``cases`` reported in ``[start, end)``, hottest first (ties: more
    cases, then the newer last report, then the place)."""
    groups: dict[str, list[Hotspot]] = {}
    for case in sorted(cases, key=lambda c: (c.reported_at, c.case_id)):
        if not (start <= case.reported_at < end):
            continue
        grams = bigrams(case.text)
        if not grams:
            continue
        place = place_key(case.place_code, digits)
        candidates = groups.setdefault(place, [])
        best, score = None, similar
        for group in candidates:
            s = cosine(grams, group.grams)
            if s >= score:
                best, score = group, s
        if best is None:
            best = Hotspot(place)
            candidates.append(best)
        best.cases.append(case)
        best.grams.update(grams)
    hot = [g for gs in groups.values() for g in gs if g.count >= min_cases]
    for g in hot:
        g.heat, g.growth = heat_of(g, start, end)
    hot.sort(key=lambda g: (-g.heat, -g.count, -g.last_at.timestamp(), g.place))
    return hot[:limit]
