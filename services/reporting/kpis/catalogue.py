"""The KPI catalogue: every output column of a KPI table (name, zh/en label, unit), in output
order, and the ways a table can be grouped. What each column counts is in
:mod:`services.reporting.kpis.rules` and :mod:`services.reporting.kpis.formulas`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.domain.tenants import STANDARD_LEVEL_LENGTHS

#: ``group_by`` values of ``GET /v1/kpis``.
GROUP_BYS: tuple[str, ...] = (
    "period:day", "period:week", "period:month", "street", "community", "grid", "category", "department", "channel",
)

#: Place levels a KPI table can be grouped by: the cumulative code length (domain.md §3(a), shared/domain/tenants.py).
PLACE_LEVELS: Mapping[str, int] = {level: STANDARD_LEVEL_LENGTHS[level] for level in ("street", "community", "grid")}


@dataclass(frozen=True)
class Kpi:
    """One output column: ``name`` (JSON key), ``zh`` / ``en`` labels and ``unit``: ``count``
    (cases or records), ``rate`` (share 0–1 in JSON, per cent in CSV/XLSX), ``hours`` (natural
    hours) or ``working_hours`` (hours of working-day time, :mod:`services.reporting.kpis.clock`)."""

    name: str
    zh: str
    en: str
    unit: str

    @property
    def label(self) -> str:
        """``"<zh> <en>"``, Chinese first (the users' language)."""
        return f"{self.zh} {self.en}"


def _times(prefix: str, zh: str, en: str) -> list[Kpi]:
    out = []
    for unit, zh_unit, en_unit in (("hours", "小时", "h"), ("working_hours", "工作小时", "working h")):
        stem = f"{prefix}_{'hours' if unit == 'hours' else 'working_hours'}"
        for stat, zh_stat, en_stat in (("mean", "平均", "mean"), ("median", "中位数", "median"), ("p90", "P90", "p90")):
            out.append(Kpi(f"{stem}_{stat}", f"{zh}{zh_stat}({zh_unit})", f"{en} {en_stat} ({en_unit})", unit))
    return out


#: Every KPI column, in output order (domain.md §3(e) order, parts beside their rate).
KPIS: tuple[Kpi, ...] = (
    Kpi("accepted", "受理量", "intake (accepted)", "count"),
    Kpi("filed", "立案数", "filed", "count"),
    Kpi("closed", "办结量", "completed", "count"),
    Kpi("due", "应办结", "due", "count"),
    Kpi("completion_rate", "办结率", "completion rate", "rate"),
    Kpi("closed_on_time", "按期办结", "completed on time", "count"),
    Kpi("on_time_rate", "按期办结率", "on-time completion rate", "rate"),
    Kpi("in_progress", "在办", "in progress (open at end)", "count"),
    Kpi("in_progress_own", "在办·未转办", "in progress (not transferred)", "count"),
    Kpi("in_progress_transferred", "在办·已转办", "in progress (transferred)", "count"),
    Kpi("overdue", "超期", "overdue", "count"),
    Kpi("overdue_open", "超期未办结", "open past deadline", "count"),
    Kpi("closed_late", "超期办结", "completed late", "count"),
    Kpi("overdue_rate", "超期率", "overdue rate", "rate"),
    Kpi("dispatched", "派遣案件", "cases dispatched", "count"),
    Kpi("transferred", "转办案件", "cases transferred", "count"),
    Kpi("transfer_rate", "转办率", "transfer rate", "rate"),
    Kpi("disposed", "处置案件", "cases disposed", "count"),
    Kpi("rework", "返工案件", "rework cases", "count"),
    Kpi("rework_rate", "返工率", "rework rate", "rate"),
    Kpi("supervisions", "督办数", "supervisions", "count"),
    Kpi("supervised_cases", "督办案件", "supervised cases", "count"),
    Kpi("dispatches", "派遣次数", "dispatches", "count"),
    Kpi("returned", "退回次数", "returns (wrong dispatch)", "count"),
    Kpi("accurate_dispatch_rate", "准确派遣率", "accurate-dispatch rate", "rate"),
    Kpi("ack_n", "签收案件", "cases acknowledged", "count"),
    *_times("ack", "签收时长", "time to acknowledge"),
    Kpi("close_n", "计时办结案件", "completed cases timed", "count"),
    *_times("close", "办结时长", "time to close"),
)
KPI_BY_NAME: Mapping[str, Kpi] = {k.name: k for k in KPIS}
