"""The KPI catalogue: every output column of a KPI table (name, zh/en label, unit), in output
order, and the ways a table can be grouped. What each column counts is in
:mod:`services.reporting.kpis.rules` and :mod:`services.reporting.kpis.formulas`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.contract.actions import MEDIATION_LEVELS, OUTCOME_LABELS, OUTCOMES
from shared.domain.tenants import STANDARD_LEVEL_LENGTHS

#: ``group_by`` values of ``GET /v1/kpis``.
GROUP_BYS: tuple[str, ...] = (
    "period:day", "period:week", "period:month", "street", "community", "grid", "category", "department", "channel",
)

#: Place levels a KPI table can be grouped by: the cumulative code length (docs/domain.md §3(a), shared/domain/tenants.py).
PLACE_LEVELS: Mapping[str, int] = {level: STANDARD_LEVEL_LENGTHS[level] for level in ("street", "community", "grid")}


@dataclass(frozen=True)
class Kpi:
    """One output column: ``name`` (JSON key), ``zh`` / ``en`` labels and ``unit``: ``count``
    (cases, records or events), ``rate`` (share 0–1 in JSON, per cent in CSV/XLSX), ``score``
    (0–100), ``hours`` (natural hours) or ``working_hours`` (hours of working-day time,
    :mod:`services.reporting.kpis.clock`)."""

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


#: English names of the closure outcomes (shared/contract/actions.py has the zh-CN labels).
_OUTCOME_EN = {"resolved": "resolved", "partly_resolved": "partly resolved", "unresolved": "unresolved",
               "unfounded": "unfounded", "duplicate": "duplicate", "not_remit": "not in remit"}

#: The mediation rungs as a column name shows them: short zh-CN and English.
MEDIATION_RUNG_NAMES: Mapping[str, tuple[str, str]] = {
    "grid": ("网格", "grid"), "community": ("社区", "community"), "street": ("街道", "street"),
    "linked": ("联动", "linked"),
}

#: The mediation figures given per rung (:data:`MEDIATION_LEVELS`) beside their total: name, zh,
#: en, unit. ``mediation_hours`` is the mean natural hours a case stayed on the rung.
MEDIATION_FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("mediated", "调解案件", "cases mediated", "count"),
    ("mediation_agreements", "调解成功", "agreements", "count"),
    ("mediation_escalations", "调解上报", "escalations", "count"),
    ("mediation_handoffs", "调解移交", "hand-offs (police, department)", "count"),
    ("mediation_success_rate", "调解成功率", "mediation success rate", "rate"),
    ("mediation_hours", "调解时长平均(小时)", "time at the rung mean (h)", "hours"),
)


def _mediation() -> list[Kpi]:
    out = [Kpi(name, zh, en, unit) for name, zh, en, unit in MEDIATION_FIGURES]
    for rung in MEDIATION_LEVELS:
        rung_zh, rung_en = MEDIATION_RUNG_NAMES[rung]
        out += [Kpi(f"{name}_{rung}", f"{zh}·{rung_zh}", f"{en}, {rung_en}", unit)
                for name, zh, en, unit in MEDIATION_FIGURES]
    return out


#: Every KPI column, in output order (docs/domain.md §3(e) order, parts beside their rate).
KPIS: tuple[Kpi, ...] = (
    Kpi("accepted", "受理量", "intake (accepted)", "count"),
    # reports merged into another case as its duplicate: outside every other figure (issue 15)
    Kpi("merged_duplicates", "合并重复件", "merged duplicates", "count"),
    Kpi("filed", "立案数", "filed", "count"),
    Kpi("closed", "办结量", "completed", "count"),
    # the outcome breakdown of 办结量 (one count per outcome; history sources record none)
    *(Kpi(o, "解决量" if o == "resolved" else OUTCOME_LABELS[o], _OUTCOME_EN[o], "count") for o in OUTCOMES),
    Kpi("outcome_unrecorded", "结果未记录", "outcome not recorded", "count"),
    Kpi("due", "应办结", "due", "count"),
    Kpi("completion_rate", "办结率", "completion rate", "rate"),
    Kpi("closed_on_time", "按期办结", "completed on time", "count"),
    Kpi("on_time_rate", "按期办结率", "on-time completion rate", "rate"),
    # 在办 names the total with 含转办 (incl. transferred) beside its two parts, never bare: the statistics'
    # 在办 (GET /v1/stats, the demo) counts the not-transferred part only (docs/kpis.md §3.3, §5)
    Kpi("in_progress", "在办（含转办）", "in progress incl. transferred (open at end)", "count"),
    Kpi("in_progress_own", "在办·未转办", "in progress (not transferred)", "count"),
    Kpi("in_progress_transferred", "在办·已转办", "in progress (transferred)", "count"),
    Kpi("overdue", "超期", "overdue", "count"),
    Kpi("overdue_open", "超期未办结", "open past deadline", "count"),
    Kpi("closed_late", "超期办结", "completed late", "count"),
    Kpi("overdue_rate", "超期率", "overdue rate", "rate"),
    Kpi("dispatched", "派遣案件", "cases dispatched", "count"),
    Kpi("transferred", "转办案件", "cases transferred", "count"),
    Kpi("transfer_rate", "转办率", "transfer rate", "rate"),
    Kpi("transfers_out", "转出次数", "transfers out", "count"),
    Kpi("transfers_in", "转入次数", "transfers in", "count"),
    Kpi("disposed", "处置案件", "cases disposed", "count"),
    Kpi("rework", "返工案件", "rework cases", "count"),
    Kpi("rework_rate", "返工率", "rework rate", "rate"),
    Kpi("supervisions", "督办数", "supervisions", "count"),
    Kpi("supervised_cases", "督办案件", "supervised cases", "count"),
    Kpi("dispatches", "派遣次数", "dispatches", "count"),
    Kpi("returned", "退回次数", "returns (wrong dispatch)", "count"),
    Kpi("recategorized", "改类次数", "recategorizations", "count"),
    Kpi("inaccurate_dispatches", "错误派遣", "dispatches returned or recategorized", "count"),
    Kpi("accurate_dispatch_rate", "准确派遣率", "accurate-dispatch rate", "rate"),
    Kpi("handovers", "应签收派遣", "hand-overs to a department", "count"),
    Kpi("responded", "按时签收", "acknowledged within the response limit", "count"),
    Kpi("response_rate", "响应率", "response rate", "rate"),
    Kpi("callbacks", "回访量", "callbacks (contact made)", "count"),
    Kpi("callbacks_unreachable", "回访未联系上", "callbacks, not reached", "count"),
    Kpi("callbacks_satisfied", "满意及基本满意", "satisfied or fairly satisfied", "count"),
    Kpi("satisfaction_rate", "满意率", "satisfaction rate", "rate"),
    Kpi("callbacks_rated", "评价解决情况", "callbacks rating resolution", "count"),
    Kpi("callbacks_resolved", "认为已解决", "rated resolved", "count"),
    Kpi("resolution_rate", "解决率", "resolution rate", "rate"),
    Kpi("reopened", "重办", "reopened", "count"),
    Kpi("reopen_rate", "重办率", "reopen rate", "rate"),
    Kpi("escalations", "逐级上报次数", "escalations (reported up a level)", "count"),
    Kpi("escalated", "逐级上报案件", "cases escalated", "count"),
    Kpi("assessment_score", "综合评分", "composite score", "score"),
    *_mediation(),
    Kpi("ack_n", "签收案件", "cases acknowledged", "count"),
    *_times("ack", "签收时长", "time to acknowledge"),
    Kpi("close_n", "计时办结案件(首次)", "cases timed to first close", "count"),
    *_times("close", "首次办结时长", "time to first close"),
    Kpi("final_close_n", "计时办结案件(最终)", "cases timed to final close", "count"),
    *_times("final_close", "最终办结时长", "time to final close"),
)
KPI_BY_NAME: Mapping[str, Kpi] = {k.name: k for k in KPIS}
