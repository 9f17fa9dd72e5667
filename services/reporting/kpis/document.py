"""The whole work summary (工作总结) of a place or a department for a period, as a document in the
seeds' own shape (docs/seeds.md; docs/summary.md): 一、基本情况, 二、巡查与信息采集, 三、案件办理,
四、矛盾纠纷化解, 五、存在的不足, 六、下一步打算.

Pure code: :func:`build_document` fills fixed Chinese sentence templates and tables from figures
that the KPI and patrol queries computed (:class:`SummaryFigures`, gathered by
:func:`services.reporting.kpis.summary.document_figures`); nothing here computes a figure a second
way: counts are shown as the queries gave them, rates as :func:`~services.reporting.kpis.summary.percent`
writes them, and the only arithmetic is the difference between two periods' figures (增减). The
shortfalls of 五 are the rules of :data:`SHORTFALL_RULES` (a threshold on a figure each), and 六 has
one line per shortfall found. A section without data says so in one sentence and has no table.
:func:`to_markdown` renders the document; services/reporting/kpis/docx.py renders it as .docx.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, tzinfo

from services.reporting.kpis.catalogue import KPI_BY_NAME, MEDIATION_RUNG_NAMES
from services.reporting.kpis.summary import percent
from shared.contract.actions import MEDIATION_LEVEL_LABELS, MEDIATION_LEVELS

#: Rates in the document's tables and sentences: per cent with two decimals (seed A's 67.36 %).
RATE_DIGITS = 2

#: Patrol kinds (shared/contract/events.py ``PatrolRecorded.kind``) in the document's order and words.
PATROL_KINDS: Mapping[str, str] = {
    "routine": "日常巡查", "night": "夜查", "heavy_pollution": "重污染巡查", "weekend_duty": "周末值班",
}

#: Thresholds of the shortfall rules (docs/summary.md §5): a satisfaction or resolution rate under
#: 90 % is a shortfall; a category is a hot issue when it holds at least 30 % of 受理 and 3 cases.
LOW_RATE = 0.9
HOT_SHARE = 0.3
HOT_MIN = 3

#: The figures of 三（一）, in order: KPI name (label from the KPI catalogue).
CASE_FIGURES: tuple[str, ...] = (
    "accepted", "filed", "dispatched", "closed", "closed_on_time", "completion_rate", "on_time_rate",
    "in_progress", "transferred", "escalated", "returned", "reopened", "overdue", "callbacks", "satisfaction_rate",
    "resolution_rate",
)


@dataclass(frozen=True)
class Table:
    """A table: a header row and body rows, every cell text."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Section:
    """One heading (``level`` 2: 一、…; 3: （一）…), its paragraphs and at most one table."""

    heading: str
    paragraphs: tuple[str, ...]
    table: Table | None = None
    level: int = 2


@dataclass(frozen=True)
class Document:
    """A work summary: its title and its sections in order."""

    title: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Part:
    """One row of a breakdown: its Chinese name and its KPI row (``{}``: no data)."""

    name: str
    row: Mapping


@dataclass(frozen=True)
class SummaryFigures:
    """What a work summary is written from, every figure as the queries answered it.

    ``total`` / ``previous``: the KPI total rows of P and of the period before it (``{}`` when
    there is none); ``parts``: the places under the place (or the place itself) with their KPI
    rows; ``by_category`` / ``by_department``: KPI rows of P per category and department;
    ``previous_by_category``: the previous period's KPI rows by category name; ``patrols``: the
    ``GET /v1/patrols`` answer of P (``None`` for a department); ``paragraph``: the statistics paragraph of ``GET /v1/summary``;
    ``unit``: 件 or 户 (the summary's wording)."""

    tenant_name: str
    place_name: str
    period: str
    previous_period: str
    unit: str
    paragraph: str
    total: Mapping
    previous: Mapping
    parts_level: str
    parts: Sequence[Part]
    by_category: Sequence[Part]
    by_department: Sequence[Part]
    previous_by_category: Mapping[str, Mapping]
    patrols: Mapping | None
    #: the top hot issues of P (``GET /v1/hotspots``' ``hotspots``, at most :data:`HOTSPOTS_SHOWN`)
    hotspots: Sequence[Mapping] = ()


#: Hot issues a work summary names (issue 15 item 4: "the top five in the work summary").
HOTSPOTS_SHOWN = 5


# --------------------------------------------------------------------------- formatting


def count(value) -> str:
    """A count as text (``0`` for none)."""
    return str(int(value or 0))


def rate(value) -> str:
    """A share 0–1 as per cent with :data:`RATE_DIGITS` decimals; ``—`` for none."""
    return percent(value, RATE_DIGITS)


def figure(name: str, row: Mapping) -> str:
    """KPI ``name`` of ``row`` as text: a rate as per cent, a count as a whole number."""
    return rate(row.get(name)) if KPI_BY_NAME[name].unit == "rate" else count(row.get(name))


def change(name: str, now: Mapping, before: Mapping) -> str:
    """增减 of KPI ``name`` from ``before`` to ``now``: ``+3`` / ``-2`` / ``0`` for counts,
    ``+5.00个百分点`` for rates (``—`` when either rate is undefined or there is no previous period)."""
    if not before:
        return "—"
    if KPI_BY_NAME[name].unit == "rate":
        a, b = now.get(name), before.get(name)
        if a is None or b is None:
            return "—"
        return f"{(a - b) * 100:+.{RATE_DIGITS}f}个百分点"
    d = int(now.get(name) or 0) - int(before.get(name) or 0)
    return f"{d:+d}" if d else "0"


def previous_period(start: datetime, end: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The period before P = [start, end) that P is compared with: the same number of calendar
    months before when P is whole months in ``tz`` (both ends local midnights on a 1st), else
    the same length of time just before ``start``."""
    s, e = start.astimezone(tz), end.astimezone(tz)
    if s.day == 1 and e.day == 1 and s.time() == time(0) and e.time() == time(0):
        months = (e.year - s.year) * 12 + (e.month - s.month)
        k = s.year * 12 + (s.month - 1) - months
        return s.replace(year=k // 12, month=k % 12 + 1), s
    return start - (end - start), start


# --------------------------------------------------------------------------- the sections


def basic_section(f: SummaryFigures) -> Section:
    """一、基本情况: the place, its parts, the period, the statistics paragraph; a table of the parts."""
    names = "、".join(p.name for p in f.parts)
    lead = f"本报告期为{f.period}。" if f.period else ""
    where = f.place_name
    if f.parts and f.parts_level:
        lead += f"{where}下辖{f.parts_level}{len(f.parts)}个：{names}。"
    else:
        lead += f"本总结范围为{where}。"
    paragraphs = [lead]
    if not int(f.total.get("accepted") or 0) and not int(f.total.get("closed") or 0):
        paragraphs.append("本期无受理或办结的案件。")
    else:
        paragraphs.append(f.paragraph)
    rows = tuple((p.name, count(p.row.get("accepted")), count(p.row.get("closed")), count(p.row.get("in_progress")),
                  rate(p.row.get("completion_rate"))) for p in f.parts)
    table = Table((f.parts_level or "范围", "受理", "办结", KPI_BY_NAME["in_progress"].zh, "办结率"), rows) if rows else None
    return Section("一、基本情况", tuple(paragraphs), table)


def patrol_section(f: SummaryFigures) -> Section:
    """二、巡查与信息采集: rounds, points and findings by kind (``GET /v1/patrols``); a department's
    summary (``patrols`` None) says that patrols are recorded by place."""
    heading = "二、巡查与信息采集"
    if f.patrols is None:
        return Section(heading, ("巡查按地点记录，部门的工作总结不含巡查。",))
    p = f.patrols
    kinds = p.get("by_kind") or {}
    if not p.get("rounds"):
        return Section(heading, ("本期无巡查记录。",))
    order = [k for k in PATROL_KINDS if k in kinds] + sorted(k for k in kinds if k not in PATROL_KINDS)
    parts = [f"{PATROL_KINDS.get(k, k)}{kinds[k]['rounds']}次、{kinds[k]['points']}个点位" for k in order]
    findings = sum(int(kinds[k].get("findings") or 0) for k in order)
    text = (f"本期开展巡查{p['rounds']}次，检查点位{p['points']}个，发现问题{findings}个。"
            f"其中{'，'.join(parts)}。")
    rows = [(PATROL_KINDS.get(k, k), count(kinds[k]["rounds"]), count(kinds[k]["points"]),
             count(kinds[k].get("findings"))) for k in order]
    rows.append(("合计", count(p["rounds"]), count(p["points"]), str(findings)))
    return Section(heading, (text,), Table(("巡查类型", "次数", "点位", "发现问题"), tuple(rows)))


def case_sections(f: SummaryFigures) -> tuple[Section, ...]:
    """三、案件办理 with （一）总体情况 (P beside the previous period), （二）分类别 (and the largest
    changes), （三）分部门."""
    t, prev, u = f.total, f.previous, f.unit
    if not int(t.get("accepted") or 0) and not int(t.get("closed") or 0) and not int(t.get("in_progress") or 0):
        return (Section("三、案件办理", ("本期无案件办理数据。",)),)
    text = (f"本期受理{count(t.get('accepted'))}{u}，立案{count(t.get('filed'))}{u}，派遣{count(t.get('dispatched'))}{u}，"
            f"办结{count(t.get('closed'))}{u}（按期办结{count(t.get('closed_on_time'))}{u}），"
            f"办结率{rate(t.get('completion_rate'))}，按期办结率{rate(t.get('on_time_rate'))}；"
            f"转办{count(t.get('transferred'))}{u}，退回{count(t.get('returned'))}次，重办{count(t.get('reopened'))}次；"
            f"回访{count(t.get('callbacks'))}次，满意率{rate(t.get('satisfaction_rate'))}，"
            f"解决率{rate(t.get('resolution_rate'))}。")
    if t.get("escalated"):
        text += f"网格、社区处理不了逐级上报的案件{count(t.get('escalated'))}{u}，上报{count(t.get('escalations'))}次。"
    head = ("指标", "本期", f"上期（{f.previous_period}）" if f.previous_period else "上期", "增减")
    overall = Table(head, tuple((KPI_BY_NAME[n].zh, figure(n, t), figure(n, prev) if prev else "—", change(n, t, prev))
                                for n in CASE_FIGURES))
    out = [Section("三、案件办理", (text,), None), Section("（一）总体情况", (), overall, level=3)]
    def before(name: str) -> Mapping:  # a category without cases in the previous period had 0
        return f.previous_by_category.get(name) or {"accepted": 0}

    cat_rows = tuple((p.name, count(p.row.get("accepted")), count(p.row.get("closed")),
                      rate(p.row.get("completion_rate")),
                      count(before(p.name).get("accepted")) if prev else "—",
                      change("accepted", p.row, before(p.name)) if prev else "—")
                     for p in f.by_category)
    out.append(Section("（二）分类别", (changes_sentence(f),),
                       Table(("类别", "受理", "办结", "办结率", "上期受理", "受理增减"), cat_rows) if cat_rows else None,
                       level=3))
    dept_rows = tuple((p.name, count(p.row.get("accepted")), count(p.row.get("closed")), rate(p.row.get("completion_rate")),
                       count(p.row.get("overdue")), count(p.row.get("transfers_out")), count(p.row.get("returned")))
                      for p in f.by_department)
    out.append(Section("（三）分部门", () if dept_rows else ("本期无派遣到部门的案件。",),
                       Table(("部门", "受理", "办结", "办结率", "超期", "转出", "退回"), dept_rows) if dept_rows else None,
                       level=3))
    if f.hotspots:
        out.append(hotspot_section(f))
    return tuple(out)


def hotspot_section(f: SummaryFigures) -> Section:
    """（四）热点问题: the hottest issues of P (shared/domain/hotspots.py; docs/classifier.md §5)."""
    shown = list(f.hotspots)[:HOTSPOTS_SHOWN]
    first = shown[0]
    text = (f"本期群众集中反映的热点问题{len(shown)}个，最热的是{first.get('place_label') or first['place_code']}"
            f"的问题（{first['count']}件，{first['reporters']}人反映）。")
    rows = tuple((str(i + 1), str(h.get("place_label") or h["place_code"]), f"{h['heat']:.2f}", count(h["count"]),
                  count(h["reporters"]), f"{h['first_at'][:10]}至{h['last_at'][:10]}", str(h["sample"])[:60])
                 for i, h in enumerate(shown))
    return Section("（四）热点问题", (text,), Table(("序号", "地区", "热度", "件数", "反映人数", "时段", "问题描述"), rows),
                   level=3)


def largest_changes(f: SummaryFigures, k: int = 3) -> list[tuple[str, int, int]]:
    """The ``k`` categories whose 受理 changed most from the previous period (by size, then name):
    ``[(name, before, now), …]``, unchanged ones left out."""
    now = {p.name: int(p.row.get("accepted") or 0) for p in f.by_category}
    before = {name: int(row.get("accepted") or 0) for name, row in f.previous_by_category.items()}
    moved = [(n, before.get(n, 0), now.get(n, 0)) for n in set(now) | set(before) if now.get(n, 0) != before.get(n, 0)]
    return sorted(moved, key=lambda m: (-abs(m[2] - m[1]), m[0]))[:k]


def changes_sentence(f: SummaryFigures) -> str:
    """The largest changes from the previous period in one sentence (or that there is none)."""
    if not f.previous:
        return "无上期数据可比较。"
    moved = largest_changes(f)
    if not moved:
        return "与上期相比，各类别受理量无变化。"
    parts = [f"{n}{'增加' if b > a else '减少'}{abs(b - a)}{f.unit}（{a}→{b}）" for n, a, b in moved]
    return f"与上期相比，受理量变化最大的类别：{'，'.join(parts)}。"


def mediation_section(f: SummaryFigures) -> Section:
    """四、矛盾纠纷化解: mediation by rung (mediated, agreed, escalated, handed on)."""
    t = f.total
    heading = "四、矛盾纠纷化解"
    if not int(t.get("mediated") or 0):
        return Section(heading, ("本期无进入调解的矛盾纠纷。",))
    text = (f"本期调解矛盾纠纷{count(t.get('mediated'))}件，达成调解协议{count(t.get('mediation_agreements'))}件，"
            f"上报上一级调解{count(t.get('mediation_escalations'))}次，移交{count(t.get('mediation_handoffs'))}件，"
            f"调解成功率{rate(t.get('mediation_success_rate'))}。")
    rungs = [r for r in MEDIATION_LEVELS if int(t.get(f"mediated_{r}") or 0)]
    by_rung = "，".join(f"{MEDIATION_LEVEL_LABELS[r]}{count(t.get(f'mediated_{r}'))}件、"
                       f"成功{count(t.get(f'mediation_agreements_{r}'))}件" for r in rungs)
    rows = [(f"{MEDIATION_RUNG_NAMES[r][0]}（{MEDIATION_LEVEL_LABELS[r]}）", count(t.get(f"mediated_{r}")),
             count(t.get(f"mediation_agreements_{r}")), count(t.get(f"mediation_escalations_{r}")),
             count(t.get(f"mediation_handoffs_{r}")), rate(t.get(f"mediation_success_rate_{r}")))
            for r in MEDIATION_LEVELS]
    rows.append(("合计", count(t.get("mediated")), count(t.get("mediation_agreements")),
                 count(t.get("mediation_escalations")), count(t.get("mediation_handoffs")),
                 rate(t.get("mediation_success_rate"))))
    return Section(heading, (text, f"其中{by_rung}。"),
                   Table(("调解层级", "调解案件", "调解成功", "调解上报", "调解移交", "调解成功率"), tuple(rows)))


# --------------------------------------------------------------------------- shortfalls and plans


@dataclass(frozen=True)
class Shortfall:
    """One shortfall found in the data: what (``name``), the finding sentence, the figure it rests
    on, and the line of 六、下一步打算 that answers it."""

    name: str
    finding: str
    basis: str
    plan: str


def _hot(f: SummaryFigures) -> Part | None:
    accepted = int(f.total.get("accepted") or 0)
    top = max(f.by_category, key=lambda p: (int(p.row.get("accepted") or 0), p.name), default=None)
    if top is None or not accepted:
        return None
    n = int(top.row.get("accepted") or 0)
    return top if n >= HOT_MIN and n >= HOT_SHARE * accepted else None


def _rate_under(name: str, base: str) -> Callable[[SummaryFigures], bool]:
    return lambda f: bool(f.total.get(base)) and f.total.get(name) is not None and f.total[name] < LOW_RATE


#: The shortfall rules of 五, in order: name, test on the figures, finding, basis, plan (templates
#: over the total row ``t``, the unit ``u`` and the hot category ``hot``).
SHORTFALL_RULES: tuple[tuple[str, Callable[[SummaryFigures], bool], str, str, str], ...] = (
    ("超期", lambda f: bool(f.total.get("overdue")),
     "部分案件未按期办结：超期{overdue}{u}，其中超期未办结{overdue_open}{u}、超期办结{closed_late}{u}。",
     "超期率{overdue_rate}",
     "逐件清理超期案件，紧盯办理时限，提高按期办结率（本期{on_time_rate}）。"),
    ("满意率偏低", _rate_under("satisfaction_rate", "callbacks"),
     "群众满意度有待提高：回访{callbacks}次，满意及基本满意{callbacks_satisfied}次。",
     "满意率{satisfaction_rate}",
     "对回访不满意的案件逐件复核整改，提高群众满意率。"),
    ("解决率偏低", _rate_under("resolution_rate", "callbacks_rated"),
     "部分问题群众认为未解决：评价解决情况{callbacks_rated}次，认为已解决{callbacks_resolved}次。",
     "解决率{resolution_rate}",
     "对群众认为未解决的问题跟踪办理，确保问题真正解决。"),
    ("重办", lambda f: bool(f.total.get("reopened")),
     "部分案件办结后被重新办理：重办{reopened}次。",
     "重办率{reopen_rate}",
     "严把办结核查关，办结前与群众确认处理结果，减少重办。"),
    ("退回", lambda f: bool(f.total.get("returned")),
     "部分案件派遣不准被退回：退回{returned}次。",
     "准确派遣率{accurate_dispatch_rate}",
     "熟悉各部门职责清单，提高派遣准确率。"),
    ("热点问题", lambda f: _hot(f) is not None,
     "{hot}问题集中：受理{hot_accepted}{u}。",
     "占受理量{hot_share}",
     "针对{hot}问题开展专项整治，从源头减少同类问题。"),
)


def shortfalls(f: SummaryFigures) -> list[Shortfall]:
    """The shortfalls the figures show (:data:`SHORTFALL_RULES`), in rule order."""
    hot = _hot(f)
    values = {k.name: rate(f.total.get(k.name)) if k.unit == "rate" else count(f.total.get(k.name))
              for k in KPI_BY_NAME.values()}
    values.update(u=f.unit, hot=hot.name if hot else "", hot_accepted=count(hot.row.get("accepted")) if hot else "",
                  hot_share=rate(int(hot.row.get("accepted") or 0) / int(f.total["accepted"])) if hot else "")
    return [Shortfall(name, finding.format(**values), basis.format(**values), plan.format(**values))
            for name, test, finding, basis, plan in SHORTFALL_RULES if test(f)]


def shortfall_sections(f: SummaryFigures) -> tuple[Section, Section]:
    """五、存在的不足 and 六、下一步打算 (one line per shortfall)."""
    found = shortfalls(f)
    if not found:
        return (Section("五、存在的不足", ("本期数据未显示明显不足。",)),
                Section("六、下一步打算", ("本期数据未显示需要专项改进的问题，继续做好日常巡查、案件办理和矛盾纠纷化解。",)))
    lacks = Section("五、存在的不足", tuple(f"{i}. {s.finding}" for i, s in enumerate(found, 1)),
                    Table(("不足", "依据"), tuple((s.name, s.basis) for s in found)))
    plans = Section("六、下一步打算", tuple(f"{i}. {s.plan}" for i, s in enumerate(found, 1)),
                    Table(("序号", "打算", "针对"), tuple((str(i), s.plan, s.name) for i, s in enumerate(found, 1))))
    return lacks, plans


def build_document(f: SummaryFigures) -> Document:
    """The work summary of ``f``: title with the tenant, the place and the period, then the six sections."""
    period = f"（{f.period}）" if f.period else ""
    place = f.place_name if f.place_name != f.tenant_name else ""
    title = f"{f.tenant_name}{place}工作总结{period}"
    return Document(title, (basic_section(f), patrol_section(f), *case_sections(f), mediation_section(f),
                            *shortfall_sections(f)))


# --------------------------------------------------------------------------- Markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document) -> str:
    """The document as Markdown (UTF-8 text): ``#`` title, ``##`` / ``###`` headings, paragraphs,
    pipe tables."""
    lines = [f"# {doc.title}", ""]
    for s in doc.sections:
        lines += [f"{'#' * s.level} {s.heading}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        if s.table is not None:
            lines.append("| " + " | ".join(_cell(h) for h in s.table.header) + " |")
            lines.append("|" + "---|" * len(s.table.header))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in s.table.rows]
            lines.append("")
    return "\n".join(lines)
