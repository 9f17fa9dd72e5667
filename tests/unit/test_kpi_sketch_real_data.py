"""The quantile sketches (services/reporting/kpis/sketch.py) against the exact percentile on real
311 data (../shared/data, its README.md): hours from open to close of the closed requests of NYC
(2018-10-21), San Francisco (2008–2016) and Boston (2015). The values are spread over random
cells, sketched per cell, some cells get values added and retracted again, and the merged sketches
of all cells and of random groups of cells must lie within the documented bound (docs/kpis.md §10:
relative α of ``percentile_cont``). Skipped when the data folder is absent."""

from __future__ import annotations

import csv
import math
import random
from datetime import datetime

import pytest

from services.reporting.kpis.sketch import ALPHA, bucket, quantile
from tests.conftest import SHARED_DATA

# (file, open column, close column, status column, date format) — README.md "Quirks" of each file
SOURCES = {
    "nyc": ("nyc311_2018-10-21_sample.csv", "Created Date", "Closed Date", "Status", "%m/%d/%y %H:%M"),
    "sf": ("sf311_2008-2016_sample.csv", "Opened", "Closed", "Status", "%m/%d/%Y %I:%M:%S %p"),
    "boston": ("boston311_2015_sample.csv", "OPEN_DT", "CLOSED_DT", "CASE_STATUS", "%m/%d/%Y %I:%M:%S %p"),
}
# README.md "Ground-truth figures": hours from open to close of the closed rows (end < start left
# out): n, median, p90 (pandas' linear quantile = percentile_cont), to the 0.01 h printed there
README = {"nyc": (1372, 1.95, 5.97), "sf": (4692, 69.47, 1320.39), "boston": (2896, 62.07, 854.38)}


def hours(city: str) -> list[float]:
    name, opened, closed, status, fmt = SOURCES[city]
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row[status] != "Closed" or not row[closed].strip():
                continue
            start, end = datetime.strptime(row[opened].strip(), fmt), datetime.strptime(row[closed].strip(), fmt)
            if end >= start:
                out.append((end - start).total_seconds() / 3600)
    return out


def percentile_cont(values: list[float], q: float) -> float:
    """PostgreSQL's ``percentile_cont``: linear between the order statistics at ⌊q(n−1)⌋ and ⌈q(n−1)⌉."""
    xs = sorted(values)
    h = q * (len(xs) - 1)
    lo, hi = math.floor(h), math.ceil(h)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def sketch(values: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for v in values:
        counts[bucket(v)] = counts.get(bucket(v), 0) + 1
    return counts


def merged(sketches: list[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for s in sketches:
        for k, n in s.items():
            out[k] = out.get(k, 0) + n
    return out


def within_bound(got: float, exact: float) -> bool:
    return abs(got - exact) <= ALPHA * exact * (1 + 1e-9)


@pytest.mark.parametrize("city", sorted(SOURCES))
def test_sketches_of_real_durations_keep_the_bound(city):
    values = hours(city)
    n, median, p90 = README[city]
    # the exact figures are the README's (so the data and the definition are the ones meant)
    assert len(values) == n
    assert percentile_cont(values, 0.5) == pytest.approx(median, abs=0.005)
    assert percentile_cont(values, 0.9) == pytest.approx(p90, abs=0.005)
    rng = random.Random(f"h14c-{city}")
    cells: list[list[float]] = [[] for _ in range(40)]
    for v in values:
        cells[rng.randrange(len(cells))].append(v)
    sketches = [sketch(c) for c in cells]
    # a case that moved on: added to one cell, retracted (−1) from it again
    for v in rng.sample(values, 50):
        i, k = rng.randrange(len(cells)), bucket(v * 3)
        sketches[i][k] = sketches[i].get(k, 0) + 1
        sketches[i][k] -= 1
    for q in (0.5, 0.9, 0.1, 0.99):
        exact = percentile_cont(values, q)
        got = quantile(merged(sketches), q)
        assert within_bound(got, exact), (city, q, got, exact)
    # any group of cells (a place, a category, a sub-period) merges to the same bound
    for _ in range(30):
        group = rng.sample(range(len(cells)), rng.randint(1, len(cells)))
        vals = [v for i in group for v in cells[i]]
        if not vals:
            continue
        for q in (0.5, 0.9):
            exact = percentile_cont(vals, q)
            got = quantile(merged([sketches[i] for i in group]), q)
            assert within_bound(got, exact), (city, q, group, got, exact)
