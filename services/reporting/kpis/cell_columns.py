"""The names of the KPI rollups' columns (services/reporting/kpis/cells.py), apart so that the schema
(services/reporting/db.py) can build its tables without importing the rules."""

from __future__ import annotations

from shared.contract.actions import OUTCOMES

#: The dimensions of a cell beside the tenant and the days (the group keys and filters of a KPI query).
DIMS: tuple[str, ...] = ("place_code", "category_code", "department", "channel")

#: The time statistics of services/reporting/kpis/rules.py TIME_RULES.
TIME_PREFIXES: tuple[str, ...] = ("ack", "close", "final_close")

EVENT_COUNTERS: tuple[str, ...] = (
    "accepted", "filed", "swept",
    "closed", *OUTCOMES, "outcome_unrecorded", "closed_on_time", "closed_late",
    "dispatched", "transferred", "disposed", "rework", "supervisions", "supervised_cases",
    # outside the universe: merged duplicates by their report day (rules.py DUPLICATE_RULES)
    "merged_duplicates",
)
TIME_COUNTERS: tuple[str, ...] = tuple(f"{p}_{s}" for p in TIME_PREFIXES for s in ("n", "us", "wn", "wus"))
STATE_COUNTERS: tuple[str, ...] = ("open_own", "open_transferred", "overdue")

#: Every counter of a cell of ``kpi_cells`` (one integer column each; bigint for the sums of microseconds).
COUNTERS: tuple[str, ...] = (*EVENT_COUNTERS, *TIME_COUNTERS)

#: The counters of the span table (services/reporting/kpis/cells.py): 应办结's open part and the states.
SPAN_COUNTERS: tuple[str, ...] = ("due_open", *STATE_COUNTERS)

#: The statistics of the quantile sketches (services/reporting/kpis/sketch.py; cells.py SketchKey),
#: in the order of a month sketch row's stored quantiles ``q`` (median then p90 of each).
SKETCH_STATS: tuple[str, ...] = tuple(f"{p}_{s}" for p in TIME_PREFIXES for s in ("hours", "working_hours"))
