"""KPI formulas: the arithmetic that turns a row's raw counts into its KPI columns (rates, sums),
each a pure function citing its source (domain.md §3(e)). The per-case rules that produce the raw
counts are in :mod:`services.reporting.kpis.rules`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.reporting.kpis.catalogue import KPIS


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` as a share 0–1, or ``None`` when the denominator is 0 (nothing
    to measure: a rate of an empty set is not 0 % and not 100 %)."""
    return numerator / denominator if denominator else None


def completion_rate(closed: int, due: int) -> float | None:
    """办结率 completion rate = 办结 ÷ 应办结 (domain.md §3(e) l.174 "办结率 completion rate = 办结 ÷
    应办结"; §1.3 结案率 = 结案数 / 应结案数 [R1]). Seed A: 3644 / 5410 = 0.6736 (seed-figures.md A).
    ``None`` when nothing is due."""
    return ratio(closed, due)


def on_time_rate(closed_on_time: int, due: int) -> float | None:
    """按期办结率 on-time completion rate = closed by the deadline ÷ 应办结 (domain.md §3(e)
    l.175 [R1][P9]). ``None`` when nothing is due."""
    return ratio(closed_on_time, due)


def overdue_total(open_past_deadline: int, closed_late: int) -> int:
    """超期 overdue = open past the deadline (at the end of P) + closed late (in P)
    (domain.md §3(e) l.177 "超期 overdue = open past the deadline + closed late")."""
    return open_past_deadline + closed_late


def overdue_rate(overdue: int, due: int) -> float | None:
    """超期率 overdue rate = 超期 ÷ 应办结 (domain.md §3(e) l.177). ``None`` when nothing is due."""
    return ratio(overdue, due)


def transfer_rate(transferred: int, dispatched: int) -> float | None:
    """转办率 transfer rate = cases transferred ≥ 1 time ÷ cases dispatched (domain.md §3(e) l.178;
    转办 [P22]). ``None`` when nothing was dispatched."""
    return ratio(transferred, dispatched)


def rework_rate(rework: int, disposed: int) -> float | None:
    """返工率 rework rate = rework cases ÷ disposed (resolved) cases (domain.md §3(e) l.179 [R1];
    §1.3 返工率 = 返工数/处置数 in R1's ranking service). ``None`` when nothing was disposed."""
    return ratio(rework, disposed)


def accurate_dispatch_rate(dispatches: int, returned: int) -> float | None:
    """准确派遣率 accurate-dispatch rate = dispatches not returned ÷ dispatches (domain.md §3(e) l.185;
    §1.3 派遣员 composite [R1]). ``None`` when there was no dispatch.

    Raises:
        ValueError: more returns than dispatches (impossible counts).
    """
    if returned > dispatches:
        raise ValueError(f"returned ({returned}) > dispatches ({dispatches})")
    return ratio(dispatches - returned, dispatches)


def derive(raw: Mapping[str, Any]) -> dict[str, Any]:
    """All KPI columns of one row from its raw counts (the keys :func:`services.reporting.kpis.queries.query_kpis` reads: accepted,
    filed, closed, closed_on_time, closed_late, due, in_progress_own, in_progress_transferred,
    overdue_open, dispatched, transferred, dispatches, returned, disposed, rework, supervisions,
    supervised_cases, ack_n, close_n and the time statistics). Missing counts are 0, missing
    times ``None``. Rates are shares 0–1 or ``None``; counts ints; times floats (hours)."""
    g = lambda k: int(raw.get(k) or 0)  # noqa: E731
    row: dict[str, Any] = {}
    for k in KPIS:
        if k.unit == "count":
            row[k.name] = g(k.name)
        elif k.unit in ("hours", "working_hours"):
            v = raw.get(k.name)
            row[k.name] = float(v) if v is not None else None
    row["in_progress"] = row["in_progress_own"] + row["in_progress_transferred"]
    row["overdue"] = overdue_total(row["overdue_open"], row["closed_late"])
    row["completion_rate"] = completion_rate(row["closed"], row["due"])
    row["on_time_rate"] = on_time_rate(row["closed_on_time"], row["due"])
    row["overdue_rate"] = overdue_rate(row["overdue"], row["due"])
    row["transfer_rate"] = transfer_rate(row["transferred"], row["dispatched"])
    row["rework_rate"] = rework_rate(row["rework"], row["disposed"])
    row["accurate_dispatch_rate"] = accurate_dispatch_rate(row["dispatches"], row["returned"])
    return {k.name: row[k.name] for k in KPIS}
