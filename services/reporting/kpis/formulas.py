"""KPI formulas: the arithmetic that turns a row's raw counts into its KPI columns (rates, sums,
the composite score), each a pure function citing its source (docs/domain.md §3(e), docs/kpis.md).
The per-case and per-event rules that produce the raw counts are in
:mod:`services.reporting.kpis.rules`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.reporting.kpis.catalogue import KPIS
from shared.contract.actions import MEDIATION_LEVELS
from shared.domain.tenants import AssessmentWeights


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` as a share 0–1, or ``None`` when the denominator is 0 (nothing
    to measure: a rate of an empty set is not 0 % and not 100 %)."""
    return numerator / denominator if denominator else None


def completion_rate(closed: int, due: int) -> float | None:
    """办结率 completion rate = 办结 ÷ 应办结 (docs/domain.md §3(e)3 "办结率 completion rate = 办结 ÷
    应办结"; §1.3 结案率 = 结案数 / 应结案数 [R1]). Seed A: 3644 / 5410 = 0.6736 (docs/seeds.md block A).
    ``None`` when nothing is due."""
    return ratio(closed, due)


def on_time_rate(closed_on_time: int, due: int) -> float | None:
    """按期办结率 on-time completion rate = closed by the deadline ÷ 应办结 (docs/domain.md §3(e)4
    [R1][P9]). ``None`` when nothing is due."""
    return ratio(closed_on_time, due)


def overdue_total(open_past_deadline: int, closed_late: int) -> int:
    """超期 overdue = open past the deadline (at the end of P) + closed late (in P)
    (docs/domain.md §3(e)6 "超期 overdue = open past the deadline + closed late")."""
    return open_past_deadline + closed_late


def overdue_rate(overdue: int, due: int) -> float | None:
    """超期率 overdue rate = 超期 ÷ 应办结 (docs/domain.md §3(e)6). ``None`` when nothing is due."""
    return ratio(overdue, due)


def transfer_rate(transferred: int, dispatched: int) -> float | None:
    """转办率 transfer rate = cases transferred ≥ 1 time ÷ cases dispatched (docs/domain.md §3(e)7;
    转办 [P22]). ``None`` when nothing was dispatched."""
    return ratio(transferred, dispatched)


def rework_rate(rework: int, disposed: int) -> float | None:
    """返工率 rework rate = rework cases ÷ disposed (resolved) cases (docs/domain.md §3(e)8 [R1];
    §1.3 返工率 = 返工数/处置数 in R1's ranking service). ``None`` when nothing was disposed."""
    return ratio(rework, disposed)


def accurate_dispatch_rate(dispatches: int, inaccurate: int) -> float | None:
    """准确派遣率 accurate-dispatch rate = dispatches neither returned nor recategorized while with
    the handler ÷ dispatches (docs/domain.md §3(e)14; §1.3 派遣员 composite [R1]; a recategorization
    after a dispatch makes it inaccurate: issue 12). ``None`` when there was no dispatch.

    Raises:
        ValueError: more inaccurate dispatches than dispatches (impossible counts).
    """
    if inaccurate > dispatches:
        raise ValueError(f"inaccurate dispatches ({inaccurate}) > dispatches ({dispatches})")
    return ratio(dispatches - inaccurate, dispatches)


def response_rate(responded: int, handovers: int) -> float | None:
    """响应率 response rate = hand-overs to a department acknowledged (签收) within the response limit
    of the case's urgency ÷ hand-overs (docs/domain.md §1.5 [P19][P23]; limits §3(d)3: 特急 30 min, 紧急
    2 h, 一般/复杂 1 WD). ``None`` when nothing was handed over."""
    return ratio(responded, handovers)


def satisfaction_rate(satisfied: int, callbacks: int) -> float | None:
    """满意率 satisfaction rate = (满意 satisfied + 基本满意 fairly satisfied) ÷ callbacks that reached
    the resident (docs/domain.md §1.5 [P19][P23]; 未联系上 unreachable ones are not rated). ``None``
    without such a callback."""
    return ratio(satisfied, callbacks)


def resolution_rate(rated_resolved: int, rated: int) -> float | None:
    """解决率 resolution rate = callbacks in which the resident judged the matter resolved ÷ callbacks
    that reached the resident and rated it (docs/domain.md §1.5 [P19]). ``None`` without a rating."""
    return ratio(rated_resolved, rated)


def reopen_rate(reopened: int, closed: int) -> float | None:
    """重办率 reopen rate = reopens (重办) ÷ 办结量 (the redo rate 发回重办率 of [P22], docs/domain.md §1.5;
    counted against completions: our definition). ``None`` when nothing was completed."""
    return ratio(reopened, closed)


def mediation_success_rate(agreements: int, handoffs: int) -> float | None:
    """调解成功率 mediation success rate = agreements (调解协议) ÷ (agreements + hand-offs to the police
    or a department); escalations to the next rung are neither (the case is still mediated). Our
    definition, on the ladder of seed E (docs/domain.md §1.6). ``None`` when mediation ended neither way."""
    return ratio(agreements, agreements + handoffs)


def assessment_score(response: float | None, resolution: float | None, satisfaction: float | None,
                     weights: AssessmentWeights = AssessmentWeights()) -> float | None:
    """综合评分 composite score = 100 × (w_resp × 响应率 + w_res × 解决率 + w_sat × 满意率), weights per
    tenant (default 30/35/35, the sample scheme of [P23], docs/domain.md §1.5). ``None`` unless all
    three rates exist (a missing rate is not scored as 0 % nor left out of the weights)."""
    if response is None or resolution is None or satisfaction is None:
        return None
    return 100 * (weights.response * response + weights.resolution * resolution
                  + weights.satisfaction * satisfaction)


#: The catalogue's columns by kind, worked out once (:func:`derive` runs for every row of a
#: breakdown: a thousand grids).
_COUNTS = tuple(k.name for k in KPIS if k.unit == "count")
_TIMES = tuple(k.name for k in KPIS if k.unit in ("hours", "working_hours"))
_EMPTY_ROW = dict.fromkeys(k.name for k in KPIS)
_EMPTY_TABLE_ROW = {"key": None, "label": None, **_EMPTY_ROW}
#: ``(mediation_success_rate<s>, mediation_agreements<s>, mediation_handoffs<s>)`` over all rungs and per rung.
_MEDIATION_COLUMNS = tuple((f"mediation_success_rate{s}", f"mediation_agreements{s}", f"mediation_handoffs{s}")
                           for s in ("", *(f"_{rung}" for rung in MEDIATION_LEVELS)))


def derive(raw: Mapping[str, Any], weights: AssessmentWeights = AssessmentWeights()) -> dict[str, Any]:
    """All KPI columns of one row from its raw counts (every count and time column of
    :data:`~services.reporting.kpis.catalogue.KPIS` that :func:`services.reporting.kpis.queries.query_kpis`
    reads: the case figures and the per-event figures). Missing counts are 0, missing times
    ``None``. Rates are shares 0–1 or ``None``; counts ints; times floats (hours); the composite
    score 0–100 or ``None``, weighed by ``weights``."""
    return _fill(dict(_EMPTY_ROW), raw, weights)


def table_row(key: Any, label: str, raw: Mapping[str, Any],
              weights: AssessmentWeights = AssessmentWeights()) -> dict[str, Any]:
    """``{"key": key, "label": label, **derive(raw, weights)}``, a row of a KPI table, made
    without copying the derived columns once more (a thousand rows by grid)."""
    row = dict(_EMPTY_TABLE_ROW)
    row["key"], row["label"] = key, label
    return _fill(row, raw, weights)


def _fill(row: dict[str, Any], raw: Mapping[str, Any], weights: AssessmentWeights) -> dict[str, Any]:
    """:func:`derive`'s columns written into ``row`` (which has them all, in the catalogue's order)."""
    get = raw.get
    # column by column in bulk (a thousand rows of a hundred columns: no call per column)
    row.update(zip(_COUNTS, [int(v) if v else 0 for v in map(get, _COUNTS)], strict=True))
    row.update(zip(_TIMES, [None if v is None else float(v) for v in map(get, _TIMES)], strict=True))
    row["in_progress"] = row["in_progress_own"] + row["in_progress_transferred"]
    row["overdue"] = overdue_total(row["overdue_open"], row["closed_late"])
    row["completion_rate"] = completion_rate(row["closed"], row["due"])
    row["on_time_rate"] = on_time_rate(row["closed_on_time"], row["due"])
    row["overdue_rate"] = overdue_rate(row["overdue"], row["due"])
    row["transfer_rate"] = transfer_rate(row["transferred"], row["dispatched"])
    row["rework_rate"] = rework_rate(row["rework"], row["disposed"])
    row["accurate_dispatch_rate"] = accurate_dispatch_rate(row["dispatches"], row["inaccurate_dispatches"])
    row["response_rate"] = response_rate(row["responded"], row["handovers"])
    row["satisfaction_rate"] = satisfaction_rate(row["callbacks_satisfied"], row["callbacks"])
    row["resolution_rate"] = resolution_rate(row["callbacks_resolved"], row["callbacks_rated"])
    row["reopen_rate"] = reopen_rate(row["reopened"], row["closed"])
    row["assessment_score"] = assessment_score(row["response_rate"], row["resolution_rate"],
                                               row["satisfaction_rate"], weights)
    for rate, agreements, handoffs in _MEDIATION_COLUMNS:
        row[rate] = mediation_success_rate(row[agreements], row[handoffs])
    return row
