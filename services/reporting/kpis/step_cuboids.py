"""The step cells by month (issue 14): the per-event figures' day cells and case days
(services/reporting/kpis/step_cells.py) summed over the month and over all dimensions but one or
two, the same *cuboids* 0–3 the case figures keep (services/reporting/kpis/cuboids.py), and the
case days also per tenant by day. Pure functions; the fold adds these deltas beside the day cells'
(services/reporting/step_rollup.py), the reader picks a cuboid
(services/reporting/kpis/step_cells_sql.py).

Why: the day key tenant × day × grid × category × department × channel × rung holds about one
cell per counted event, and a case day about one row per case with such an event, so reading a
month of them costs what scanning the steps costs and grows with the cases (1,000,000 cases:
100–250 ms for the per-event half of one KPI table, docs/kpis.md §10).

==========  =======================  ==========================  ===================================
cuboid      place kept               other dimension kept        rows
==========  =======================  ==========================  ===================================
0           the full code (grid)     none                        month × grid × rung
1           community (12 digits)    category                    month × community × category × rung
2           community                department                  month × community × department × rung
3           community                channel                     month × community × channel × rung
10 (days)   none ('')                department (case days only) day × department × rung
==========  =======================  ==========================  ===================================

The cells of cuboid 10 are ``step_day_cells`` (kept since the step cells began); only the case
days are added for it here, so that a request that ``step_day_cells`` answers reads no row per case
either.

Months, exactly: a cell's ``day`` becomes the first day of its month. The reader compares it with
bounds that are all month starts or open ends (cuboids.py ``month_aligned``), and ``d ≥ b ⟺
month_of(d) ≥ b`` for such a bound, so each cell falls in the same sub-period. A case day ``(d,
p)`` counts in a sub-period ``[a, b)`` iff ``a ≤ d < b`` and ``p < a`` (step_cells.py): with ``d``
and ``p`` both rounded to their month, both comparisons keep their truth for month-start bounds. A
row whose ``p`` lies in the month of ``d`` can never count then (``p < a ≤ d`` needs a month start
between them), so it is left out: most cases have all their escalations or mediations in one
month. Rows counted per department (``by_department``) are kept only where the department is
(cuboids 2 and 10), the only ones a department question reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from services.reporting.kpis.cuboids import CUBOIDS, month_of, projections
from services.reporting.kpis.step_cells import CaseDayKey, CellKey

#: The cuboid of the case days by tenant, day, department and rung (module docstring).
STEP_DAY_CUBOID = 10
#: The cuboid whose rows keep the department (cuboids.py CUBOIDS).
DEPARTMENT_CUBOID = next(i for i, c in CUBOIDS.items() if c.dim == "department")


def month_cells(cells: Mapping[CellKey, Mapping[str, int]]) -> dict[tuple, Counter]:
    """The day cells' deltas summed into the cuboids 0–3 by month: keys in
    :data:`~services.reporting.db.STEP_MONTH_CELL_KEY` order; rows whose deltas cancel are dropped."""
    out: dict[tuple, Counter] = {}
    for k, counters in cells.items():
        month = month_of(k.day)
        for i, place, cat, dept, chan in projections(k.place_code, k.category_code, k.department, k.channel):
            out.setdefault((i, k.tenant, month, place, cat, dept, chan, k.rung), Counter()).update(counters)
    return {k: c for k, c in out.items() if any(c.values())}


def month_case_days(case_days: Mapping[CaseDayKey, int]) -> Counter:
    """The case days' deltas summed into the cuboids 0–3 by month and the tenant by day
    (:data:`STEP_DAY_CUBOID`): keys in
    :data:`~services.reporting.db.STEP_MONTH_CASE_DAY_KEY` order; counts that cancel are
    dropped."""
    out: Counter = Counter()
    for k, n in case_days.items():
        out[(STEP_DAY_CUBOID, k.tenant, k.figure, k.day, k.prev_day, k.by_department, k.by_rung, k.department,
             k.rung, "", None, None)] += n
        day, prev = month_of(k.day), month_of(k.prev_day)
        if prev == day:
            continue  # never counts for month-start bounds (module docstring)
        for i, place, cat, dept, chan in projections(k.place_code, k.category_code, k.department, k.channel):
            if k.by_department and i != DEPARTMENT_CUBOID:
                continue
            out[(i, k.tenant, k.figure, day, prev, k.by_department, k.by_rung, dept, k.rung, place, cat, chan)] += n
    return Counter({k: n for k, n in out.items() if n})
