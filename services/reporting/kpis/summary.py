"""The work summary (工作总结) of ``GET /v1/summary``: its statistics paragraph in Chinese, the
nouns chosen from the tenant's data, and the query that fills it (docs/seeds.md block A)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.filters import CaseFilter
from services.reporting.kpis.catalogue import KPIS
from services.reporting.kpis.periods import OPEN_END, OPEN_START
from services.reporting.kpis.queries import TOTAL, kpi_table, raw_figures
from services.reporting.kpis.rules import business_categories
from services.reporting.labels import department_short_name
from shared.domain.tenants import TenantConfig


@dataclass(frozen=True)
class SummaryWording:
    """The nouns of a summary: ``verb`` (排查梳理 or 受理), ``subject`` (what was found),
    ``unit`` (户 businesses or 件 cases). See :func:`choose_wording`."""

    verb: str
    subject: str
    unit: str


def choose_wording(accepted: int, swept: int, illegal_business: int) -> SummaryWording:
    """The summary's nouns, chosen by the tenant's data in P (``accepted`` cases, of which
    ``swept`` were found by grid sweeps, request_type 排查, and ``illegal_business`` are of an
    :data:`~services.reporting.kpis.rules.ILLEGAL_BUSINESS_CATEGORIES` category or a licence
    trade):

    - verb 排查梳理 (sorted out by sweeps, docs/seeds.md block A) when at least half the cases were
      found by sweeps, else 受理 (accepted: reports from the public, hotlines, imports);
    - subject 非法经营领域矛盾问题 and unit 户 (businesses, one case per business) when every
      case is an illegal-business case (docs/seeds.md block A), else 问题 with 排查梳理 / 案件 with
      受理, unit 件.
    """
    sweep = accepted > 0 and swept * 2 >= accepted
    business = accepted > 0 and illegal_business == accepted
    if business:
        return SummaryWording("排查梳理" if sweep else "受理", "非法经营领域矛盾问题", "户")
    return SummaryWording("排查梳理", "问题", "件") if sweep else SummaryWording("受理", "案件", "件")


def percent(rate: float | None, digits: int = 1) -> str:
    """A share 0–1 as ``"67.4%"`` (half away from zero, like a reader would round), ``"—"`` for None."""
    if rate is None:
        return "—"
    q = Decimal(1).scaleb(-digits)
    return f"{(Decimal(repr(rate)) * 100).quantize(q, rounding=ROUND_HALF_UP)}%"


def _hours(value: float) -> str:
    return f"{value:.1f}"


def summary_paragraph(total: Mapping[str, Any], wording: SummaryWording, *, transfer_departments: Sequence[str] = (),
                      period: str = "", place: str = "") -> str:
    """The statistics paragraph of a work summary (工作总结), in Chinese, from a KPI row.

    Template (clauses with a zero count are left out, except 已办结 and 办结率):
    ``"{period}，{place}共{verb}{subject}{受理量}{unit}（另合并重复件{n}{unit}），已办结{办结量}{unit}，正在办理{在办·未转办}{unit}，
    转办{departments}等部门{在办·已转办}{unit}，办结率{办结率}。"`` followed, when known, by the time to
    close (mean hours and working hours), 超期 and 督办, then by the closed loop
    (:func:`closed_loop_sentence`: returns, transfers, reopens, callbacks, mediation). 正在办理 and 转办 split the cases open at
    the end of P by whether they were transferred, so 已办结 + 正在办理 + 转办 = 受理量 when every
    case of P was reported in P (docs/seeds.md block A: 3644 + 627 + 1139 = 5410). Seed A reads
    "共排查梳理非法经营领域矛盾问题5410户，已办结3644户，正在办理627户，转办卫生健康、文化和旅游等部门1139户，
    办结率67.4%。…".
    """
    u = wording.unit
    lead = f"{period}，" if period else ""
    head = f"{lead}{place}共{wording.verb}{wording.subject}{total['accepted']}{u}"
    if total.get("merged_duplicates"):
        # merged duplicates are outside 受理量 (docs/kpis.md §2 "Duplicates"): said beside it
        head += f"（另合并重复件{total['merged_duplicates']}{u}）"
    parts = [head, f"已办结{total['closed']}{u}"]
    if total["in_progress_own"]:
        parts.append(f"正在办理{total['in_progress_own']}{u}")
    if total["in_progress_transferred"]:
        names = "、".join(transfer_departments[:2])
        to = f"{names}等部门" if len(transfer_departments) > 1 else (f"{names}" if names else "其他部门")
        parts.append(f"转办{to}{total['in_progress_transferred']}{u}")
    parts.append(f"办结率{percent(total['completion_rate'])}")
    text = "，".join(parts) + "。"
    extra = []
    if total.get("close_n") and total.get("close_hours_mean") is not None:
        clause = f"已办结案件平均办理时长{_hours(total['close_hours_mean'])}小时"
        if total.get("close_working_hours_mean") is not None:
            clause += f"（工作日时长{_hours(total['close_working_hours_mean'])}小时）"
        extra.append(clause)
    if total.get("overdue"):
        extra.append(f"超期{total['overdue']}{u}，超期率{percent(total['overdue_rate'])}")
    if total.get("supervisions"):
        extra.append(f"督办{total['supervisions']}次")
    if extra:
        text += "，".join(extra) + "。"
    return text + closed_loop_sentence(total, wording.unit)


#: The clauses of :func:`closed_loop_sentence`, in order: a clause is written when one of its
#: counts is not zero; rates appear as per cent.
_LOOP_CLAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("returned",), "退回{returned}次"),
    (("transfers_out",), "转办{transfers_out}次"),
    (("reopened",), "重办{reopened}次"),
    (("reopen_rate",), "重办率{reopen_rate}"),  # none without a completion in P
    (("callbacks",), "回访{callbacks}次，满意率{satisfaction_rate}"),
    (("callbacks_rated",), "解决率{resolution_rate}"),
    (("mediated",), "调解{mediated}{unit}"),
    (("mediation_agreements",), "达成调解协议{mediation_agreements}{unit}"),
    (("mediation_escalations",), "调解上报{mediation_escalations}次"),
    (("mediation_handoffs",), "移交{mediation_handoffs}{unit}"),
    (("mediation_agreements", "mediation_handoffs"), "调解成功率{mediation_success_rate}"),
)


def closed_loop_sentence(total: Mapping[str, Any], unit: str) -> str:
    """The closed loop of P in one Chinese sentence (issue 12 item 8), from a KPI row: returns,
    transfers, reopens (with 重办率 when something was completed), callbacks (满意率, and 解决率 when
    the residents rated it), mediation (cases, agreements, escalations, hand-offs, 调解成功率), each
    clause only when its count is not zero (:data:`_LOOP_CLAUSES`); ``""`` when all are zero. E.g.
    "退回2次，转办3次，重办1次，重办率25.0%，回访4次，满意率75.0%，调解2件，达成调解协议1件，移交1件，调解成功率50.0%。"."""
    values = {k.name: percent(total.get(k.name)) if k.unit == "rate" else total.get(k.name) for k in KPIS}
    parts = [template.format(unit=unit, **values) for keys, template in _LOOP_CLAUSES
             if any(total.get(k) for k in keys)]
    return "，".join(parts) + "。" if parts else ""


def period_text(start: datetime | None, end: datetime | None, tz: tzinfo) -> str:
    """``"2026年3月2日至2026年5月31日"`` for P = [start, end) in ``tz`` (the last day shown is the
    one before ``end``'s local midnight when ``end`` is a midnight); ``""`` when P is open."""
    def fmt(d: date) -> str:
        return f"{d.year}年{d.month}月{d.day}日"

    last = None
    if end is not None:
        local_end = end.astimezone(tz)
        last = local_end.date() - timedelta(days=1) if local_end.time() == time(0) else local_end.date()
    if start is not None and last is not None:
        return f"{fmt(start.astimezone(tz).date())}至{fmt(last)}"
    if start is not None:
        return f"{fmt(start.astimezone(tz).date())}以来"
    if last is not None:
        return f"截至{fmt(last)}"
    return ""


async def work_summary(conn: AsyncConnection, flt: CaseFilter, *, tenant: TenantConfig | None = None, taxonomy=None,
                       now: datetime | None = None) -> dict:
    """The work-summary statistics of P (one KPI query, grouped by department): ``{"paragraph":
    str, "figures": KPI row, "wording": {verb, subject, unit}, "transfer_departments": [name,
    …]}``. The nouns come from :func:`choose_wording`; departments receiving the transferred open
    cases are named by their Chinese short name, most cases first (ties by code); the place
    (``flt.place_prefix``) by its Chinese name from the tenant file."""
    by_dept, raw = await department_table(conn, flt, tenant=tenant, taxonomy=taxonomy, now=now)
    return stated_summary(by_dept, raw, flt, tenant, taxonomy)


async def department_table(conn: AsyncConnection, flt: CaseFilter, *, tenant: TenantConfig | None, taxonomy,
                           now: datetime | None) -> tuple[dict, dict]:
    """The KPI table by department, and the raw figures of P's total with those the wording needs
    (:data:`~services.reporting.kpis.rules.SUMMARY_RULES`: 排查 swept, 非法经营 illegal business).
    Two queries, so that each is answered by one month cuboid (the table by community ×
    department, the wording's figures, which read the category, by community × category;
    docs/kpis.md §10) rather than both by the scan: no cuboid keeps department and category."""
    now = now or datetime.now(UTC)
    by_dept, _ = await kpi_table(conn, flt, "department", tenant=tenant, taxonomy=taxonomy, now=now)
    bounds = [flt.start or OPEN_START, flt.end or OPEN_END]
    raw = await raw_figures(conn, flt, None, bounds, now, business_categories(taxonomy))
    return by_dept, raw[TOTAL]


def stated_summary(by_dept: dict, raw: dict, flt: CaseFilter, tenant: TenantConfig | None, taxonomy) -> dict:
    """:func:`work_summary`'s answer from the KPI table by department and its total's raw figures."""
    total = by_dept["total"]
    ranked = sorted((r for r in by_dept["rows"] if r["in_progress_transferred"] and r["key"]),
                    key=lambda r: (-r["in_progress_transferred"], r["key"]))
    names = [department_short_name(r["key"], tenant, taxonomy) for r in ranked]
    wording = choose_wording(total["accepted"], int(raw.get("swept") or 0), int(raw.get("illegal_business") or 0))
    paragraph = summary_paragraph(total, wording, transfer_departments=names,
                                  period=period_text(flt.start, flt.end, flt.tz), place=place_name(flt, tenant))
    return {"paragraph": paragraph, "figures": total,
            "wording": {"verb": wording.verb, "subject": wording.subject, "unit": wording.unit},
            "transfer_departments": names}


def place_name(flt: CaseFilter, tenant: TenantConfig | None) -> str:
    """The Chinese name of ``flt.place_prefix`` from the tenant file (the code when not listed;
    ``""`` without a place or a tenant)."""
    if not flt.place_prefix or tenant is None:
        return ""
    p = tenant.place(flt.place_prefix)
    return p.name_zh if p is not None else flt.place_prefix
