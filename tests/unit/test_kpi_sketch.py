"""The quantile sketch of the KPI times (services/reporting/kpis/sketch.py), with values worked by hand.

α = 0.01 gives γ = 1.01/0.99 = 1.0202…; bucket k holds (γ^(k−1), γ^k] and answers γ^k·2/(1+γ) =
γ^k·0.99. 1 h: log_γ 1 = 0 → bucket 0, answer 0.99 h. 2 h: log_γ 2 = ln 2 / ln γ = 0.693147/0.020001
= 34.656 → bucket 35, answer γ^35·0.99 = e^(35·0.0200007)·0.99 = 2.01380·0.99 = 1.99366 h
(0.3 % below 2)."""

from __future__ import annotations

import math
import random
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.kpis.cells import SketchKey, all_deltas, contributions
from services.reporting.kpis.sketch import (
    ALPHA,
    ZERO_BUCKET,
    bucket,
    bucket_value,
    quantile,
    quantiles,
    split_counts,
    summary,
)
from tests.unit.test_kpi_cells import CASE_A, TZ, cell  # case A, worked by hand there

GAMMA = 1.01 / 0.99


def test_buckets_by_hand():
    assert bucket(1.0) == 0 and bucket_value(0) == pytest.approx(0.99)
    assert bucket(2.0) == 35 and bucket_value(35) == pytest.approx(GAMMA**35 * 0.99) == pytest.approx(1.99366, rel=1e-5)
    # the bucket just above 1 h: (1, γ]
    assert bucket(1.01) == 1 and bucket(GAMMA * 0.999) == 1
    assert bucket(0.0) == ZERO_BUCKET and bucket_value(ZERO_BUCKET) == 0.0
    # one microsecond in hours is far above the zero bucket
    assert bucket(1 / 3.6e9) > ZERO_BUCKET
    with pytest.raises(ValueError):
        bucket(-1.0)


def test_quantile_follows_percentile_cont_by_hand():
    # values 0, 1, 1, 2 h: buckets {zero: 1, 0: 2, 35: 1}
    counts = {ZERO_BUCKET: 1, 0: 2, 35: 1}
    # median: h = 0.5·3 = 1.5 → ranks 1 and 2 (both 1 h, answer 0.99), interpolated: 0.99
    assert quantile(counts, 0.5) == pytest.approx(0.99)
    # p90: h = 0.9·3 = 2.7 → ranks 2 (0.99) and 3 (1.99366): 0.99 + 0.7·(1.99366 − 0.99) = 1.69256
    assert quantile(counts, 0.9) == pytest.approx(0.99 + 0.7 * (GAMMA**35 * 0.99 - 0.99))
    # the exact percentile_cont is 1 + 0.7·1 = 1.7; the answer is within α of it
    assert abs(quantile(counts, 0.9) - 1.7) <= ALPHA * 1.7
    # zero exactly: 0, 0, 0, 2 h → median h = 1.5 between two zeros
    assert quantile({ZERO_BUCKET: 3, 35: 1}, 0.5) == 0.0
    # retracted to nothing: no value; a negative count (never in a consistent sketch) is empty
    assert quantile({0: 0, 35: -1}, 0.5) is None
    assert quantile({}, 0.9) is None
    # one value: every quantile is its bucket's answer
    assert quantile({35: 1}, 0.9) == pytest.approx(1.99366, rel=1e-5)


def test_summary_of_a_stored_map_by_hand():
    # a month row's map: close_hours holds 0, 1, 1, 2 h (as above), ack_hours one value of 1 h
    b = {f"close_hours:{ZERO_BUCKET}": 1, "close_hours:0": 2, "close_hours:35": 1, "ack_hours:0": 1}
    assert split_counts(b) == {"close_hours": {ZERO_BUCKET: 1, 0: 2, 35: 1}, "ack_hours": {0: 1}}
    got = summary(b, ("ack_hours", "ack_working_hours", "close_hours"))
    # ack: one value, both quantiles its bucket's answer 0.99; working hours: none; close: as above
    assert got[:4] == [pytest.approx(0.99), pytest.approx(0.99), None, None]
    assert got[4:] == [pytest.approx(0.99), pytest.approx(0.99 + 0.7 * (GAMMA**35 * 0.99 - 0.99))]


def _exact(values: list[float], q: float) -> float:
    xs = sorted(values)
    h = q * (len(xs) - 1)
    lo, hi = math.floor(h), math.ceil(h)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def test_bound_on_random_values_and_merging():
    rng = random.Random(14)
    for _ in range(200):
        values = [0.0 if rng.random() < 0.1 else rng.lognormvariate(1, 2) for _ in range(rng.randint(1, 60))]
        parts: list[dict[int, int]] = [{}, {}]
        for i, v in enumerate(values):
            part = parts[i % 2]
            part[bucket(v)] = part.get(bucket(v), 0) + 1
        merged = {k: parts[0].get(k, 0) + parts[1].get(k, 0) for k in parts[0].keys() | parts[1].keys()}
        for q in (0.5, 0.9):
            exact = _exact(values, q)
            assert abs(quantile(merged, q) - exact) <= ALPHA * exact * (1 + 1e-9)


def test_a_case_puts_one_point_per_time_figure_and_retracts_it():
    _, _, points = contributions(CASE_A, TZ)
    # acknowledged after 2 h on 3/2, first and final close after 50.5 h on 3/4 (all working time)
    d2, d4 = cell(date(2026, 3, 2)), cell(date(2026, 3, 4))
    assert points == {SketchKey(d2, "ack_hours", bucket(2.0)): 1, SketchKey(d2, "ack_working_hours", bucket(2.0)): 1,
                      **{SketchKey(d4, f"{p}_{s}", bucket(50.5)): 1
                         for p in ("close", "final_close") for s in ("hours", "working_hours")}}
    # the same row before and after: nothing moves; removed: −1 each
    assert all_deltas([(CASE_A, CASE_A)], lambda t: TZ)[2] == {}
    assert all_deltas([(CASE_A, None)], lambda t: TZ)[2] == {k: -1 for k in points}


@given(counts=st.dictionaries(st.sampled_from([ZERO_BUCKET, -40, -3, 0, 1, 2, 57, 58, 300]), st.integers(-2, 9),
                              max_size=9),
       qs=st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), min_size=1, max_size=4).map(sorted))
def test_quantiles_is_percentile_cont_of_the_bucket_answers(counts, qs):
    """sketch.quantiles against percentile_cont's definition written out: every counted value
    replaced by its bucket's answer, sorted, ranks ⌊h⌋ and ⌈h⌉ of h = q(n−1) interpolated."""
    values = sorted(bucket_value(k) for k, n in counts.items() for _ in range(max(n, 0)))
    want = []
    for q in qs:
        if not values:
            want.append(None)
            continue
        h = q * (len(values) - 1)
        lo, hi = values[math.floor(h)], values[math.ceil(h)]
        want.append(lo + (h - math.floor(h)) * (hi - lo))
    assert quantiles(counts, qs) == want
