"""Mergeable, retractable quantile sketches for the medians and p90 of the KPI times (issue 14,
docs/kpis.md §10): a value in hours goes to the bucket of ddsketch's ``LogarithmicMapping`` with
relative accuracy :data:`ALPHA` (bucket ``k`` holds (γ^(k−1), γ^k], γ = (1+α)/(1−α), and answers
γ^k·2/(1+γ), within relative α of every value in it), zero to its own bucket :data:`ZERO_BUCKET`
(answered exactly). A sketch is a bucket → count map: sketches add (merge) and subtract (retract)
bucket by bucket, so the fold keeps them in the cells with the same deltas as the counters.

:func:`quantile` follows PostgreSQL's ``percentile_cont`` (rules.py TIME_RULES): with n values and
h = q·(n−1), the order statistics x₍⌊h⌋₎ and x₍⌈h⌉₎ (0-based) interpolated linearly by h − ⌊h⌋; the
sketch uses the answers of the buckets that hold those ranks instead of the values. Each is within
relative α of its order statistic and the values are ≥ 0, so the interpolation is within relative α
of ``percentile_cont``'s answer: |sketch − exact| ≤ α·exact (and 0 exactly when exact is 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

from ddsketch.mapping import LogarithmicMapping

#: The relative accuracy of a bucket's answer (1 %: at most 36 minutes on 60 hours; about 470
#: buckets span 1 second to 10 years).
ALPHA = 0.01

_MAPPING = LogarithmicMapping(ALPHA)

#: The bucket of the value 0 (a case closed in the same microsecond; working hours outside the
#: working time): below every key the mapping gives a positive value of at least 1 µs in hours.
ZERO_BUCKET = -(2**31)


def bucket(hours: float) -> int:
    """The bucket of ``hours`` (≥ 0)."""
    if hours < 0:
        raise ValueError(f"negative duration {hours!r}")
    if hours < _MAPPING.min_possible:
        return ZERO_BUCKET
    return _MAPPING.key(hours)


@lru_cache(maxsize=4096)
def bucket_value(key: int) -> float:
    """The answer of a bucket: 0 for :data:`ZERO_BUCKET`, else within relative :data:`ALPHA` of its values."""
    return 0.0 if key == ZERO_BUCKET else _MAPPING.value(key)


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """``percentile_cont(q)`` of the values counted in ``counts`` (bucket → count; buckets with a
    count ≤ 0 are empty), None when it holds no value (module docstring for the bound)."""
    return quantiles(counts, (q,))[0]


def quantiles(counts: Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """:func:`quantile` for each of ``qs`` (ascending), with one sort of the buckets."""
    items = sorted((k, n) for k, n in counts.items() if n > 0)
    total = sum(n for _, n in items)
    if not total:
        return [None] * len(qs)
    out: list[float | None] = []
    i, seen = 0, 0  # items[:i] hold ``seen`` values
    for q in qs:
        h = q * (total - 1)
        lo, hi = math.floor(h), math.ceil(h)
        while seen + items[i][1] <= lo:  # the bucket holding rank lo (0-based)
            seen += items[i][1]
            i += 1
        v_lo = bucket_value(items[i][0])
        j, upto = i, seen + items[i][1]
        while upto <= hi:  # the bucket holding rank hi
            j += 1
            upto += items[j][1]
        out.append(v_lo + (h - lo) * (bucket_value(items[j][0]) - v_lo))
    return out


def split_counts(b: Mapping[str, int]) -> dict[str, dict[int, int]]:
    """A stored sketch map ``{"<statistic>:<bucket>": count}`` (``reporting.kpi_sketches.b``) as
    ``{statistic: {bucket: count}}``."""
    out: dict[str, dict[int, int]] = {}
    for sb, n in b.items():
        stat, _, key = sb.rpartition(":")
        out.setdefault(stat, {})[int(key)] = n
    return out


#: The quantiles a sketch row stores for each statistic (``reporting.kpi_month_sketches.q``).
SUMMARY_QS: tuple[float, float] = (0.5, 0.9)


def summary(b: Mapping[str, int], stats: Sequence[str]) -> list[float | None]:
    """The median and p90 (:func:`quantiles`) of each of ``stats`` in the stored sketch map ``b``,
    flat in that order (``[median₁, p90₁, median₂, …]``; None for a statistic without values): what
    a month sketch row keeps beside its buckets (services/reporting/kpis/rollup_fold.py)."""
    counts = split_counts(b)
    out: list[float | None] = []
    for stat in stats:
        out.extend(quantiles(counts.get(stat, {}), SUMMARY_QS))
    return out
