"""services/reporting/kpis/document.py and kpis/docx.py: the work summary's templates, shortfall
rules, period comparison and rendering, over hand-made KPI rows. Every expected text and figure is
worked out by hand from the templates and definitions in docs/summary.md, not taken from a run."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import docx
import pytest

from services.reporting.kpis.document import (
    Part,
    SummaryFigures,
    build_document,
    change,
    largest_changes,
    previous_period,
    shortfalls,
    to_markdown,
)
from services.reporting.kpis.docx import to_docx
from services.reporting.kpis.formulas import derive
from shared.domain.tenants import AssessmentWeights

TZ = ZoneInfo("Asia/Shanghai")


def row(**raw) -> dict:
    """A KPI row as the query answers it: raw counts through the catalogue's formulas."""
    return derive(raw, AssessmentWeights())


def figures(total: dict | None = None, **kw) -> SummaryFigures:
    base = {
        "tenant_name": "示范街道(网格演示)", "place_name": "幸福社区", "period": "2026年3月1日至2026年3月31日",
        "previous_period": "2026年2月1日至2026年2月28日", "unit": "件", "paragraph": "（统计段落）",
        "total": total if total is not None else row(), "previous": {}, "parts_level": "网格", "parts": [],
        "by_category": [], "by_department": [], "previous_by_category": {}, "patrols": {"rounds": 0, "points": 0,
                                                                                   "by_kind": {}},
    }
    base.update(kw)
    return SummaryFigures(**base)


def section(md: str, heading: str) -> str:
    """The Markdown between ``heading`` and the next heading of the same or a higher level."""
    start = md.index(heading)
    rest = md[start + len(heading):]
    ends = [i for i in (rest.find("\n## "), rest.find("\n### ")) if i >= 0]
    return rest[:min(ends)] if ends else rest


# --------------------------------------------------------------------------- periods and changes


@pytest.mark.parametrize(("start", "end", "before"), [
    # March → February (whole months: the calendar month before, 28 days in 2026)
    ((2026, 3, 1), (2026, 4, 1), ((2026, 2, 1), (2026, 3, 1))),
    # January → December of the year before
    ((2026, 1, 1), (2026, 2, 1), ((2025, 12, 1), (2026, 1, 1))),
    # a half year (Jan–Jun) → Jul–Dec of the year before
    ((2026, 1, 1), (2026, 7, 1), ((2025, 7, 1), (2026, 1, 1))),
    # not whole months (10th to 20th): the same 10 days just before
    ((2026, 3, 10), (2026, 3, 20), ((2026, 2, 28), (2026, 3, 10))),
])
def test_previous_period(start, end, before):
    s, e = datetime(*start, tzinfo=TZ), datetime(*end, tzinfo=TZ)
    ps, pe = previous_period(s, e, TZ)
    assert (ps, pe) == (datetime(*before[0], tzinfo=TZ), datetime(*before[1], tzinfo=TZ))


def test_previous_period_in_utc_of_a_local_month():
    # March in Shanghai given in UTC: 2026-02-28T16:00Z .. 2026-03-31T16:00Z is whole local months
    s = datetime(2026, 3, 1, tzinfo=TZ).astimezone(ZoneInfo("UTC"))
    e = s + timedelta(days=31)
    ps, pe = previous_period(s, e, TZ)
    assert (ps, pe) == (datetime(2026, 2, 1, tzinfo=TZ), datetime(2026, 3, 1, tzinfo=TZ))


def test_change_of_counts_and_rates():
    now, before = {"accepted": 7, "satisfaction_rate": 0.75}, {"accepted": 10, "satisfaction_rate": 0.5}
    assert change("accepted", now, before) == "-3"  # 7 − 10
    assert change("accepted", before, before) == "0"
    assert change("satisfaction_rate", now, before) == "+25.00个百分点"  # (0.75 − 0.5) × 100
    assert change("satisfaction_rate", now, {"accepted": 1, "satisfaction_rate": None}) == "—"
    assert change("accepted", now, {}) == "—"  # no previous period


def test_largest_changes_by_size_then_name():
    f = figures(row(accepted=8, due=8), by_category=[Part("下水道堵塞", {"accepted": 5}), Part("油烟扰民", {"accepted": 1}),
                             Part("垃圾扰民", {"accepted": 2})],
                previous_by_category={"下水道堵塞": {"accepted": 1}, "垃圾扰民": {"accepted": 2},
                                      "家庭纠纷": {"accepted": 3}},
                previous={"accepted": 6})
    # 下水道 1→5 (+4), 家庭纠纷 3→0 (−3), 油烟 0→1 (+1); 垃圾 2→2 unchanged, left out
    assert largest_changes(f) == [("下水道堵塞", 1, 5), ("家庭纠纷", 3, 0), ("油烟扰民", 0, 1)]
    md = to_markdown(build_document(f))
    assert "与上期相比，受理量变化最大的类别：下水道堵塞增加4件（1→5），家庭纠纷减少3件（3→0），油烟扰民增加1件（0→1）。" in md


# --------------------------------------------------------------------------- empty sections


def test_empty_period_says_so_in_every_section():
    md = to_markdown(build_document(figures()))
    assert md.startswith("# 示范街道(网格演示)幸福社区工作总结（2026年3月1日至2026年3月31日）\n")
    assert "本期无受理或办结的案件。" in section(md, "## 一、基本情况")
    assert section(md, "## 二、巡查与信息采集").strip() == "本期无巡查记录。"
    assert section(md, "## 三、案件办理").strip() == "本期无案件办理数据。"
    assert section(md, "## 四、矛盾纠纷化解").strip() == "本期无进入调解的矛盾纠纷。"
    assert section(md, "## 五、存在的不足").strip() == "本期数据未显示明显不足。"
    assert "|" not in md  # no table without data (parts empty too)


def test_department_summary_has_no_patrols():
    md = to_markdown(build_document(figures(patrols=None, place_name="幸福社区城管")))
    assert section(md, "## 二、巡查与信息采集").strip() == "巡查按地点记录，部门的工作总结不含巡查。"


# --------------------------------------------------------------------------- patrols (seed B)


def test_patrol_section_seed_b():
    # docs/seeds.md block B: 865 points = night 36 (4 rounds) + heavy pollution 66 (2) + weekend 58 (4)
    # + routine 865 − 160 = 705 (56 weekday rounds in 78 days from 2026-09-01, gridcase/seeds.py)
    kinds = {"routine": {"rounds": 56, "points": 705, "findings": 0}, "night": {"rounds": 4, "points": 36, "findings": 1},
             "heavy_pollution": {"rounds": 2, "points": 66, "findings": 0},
             "weekend_duty": {"rounds": 4, "points": 58, "findings": 0}}
    md = to_markdown(build_document(figures(patrols={"rounds": 66, "points": 865, "by_kind": kinds})))
    s = section(md, "## 二、巡查与信息采集")
    assert ("本期开展巡查66次，检查点位865个，发现问题1个。其中日常巡查56次、705个点位，夜查4次、36个点位，"
            "重污染巡查2次、66个点位，周末值班4次、58个点位。") in s
    assert "| 合计 | 66 | 865 | 1 |" in s
    assert "| 夜查 | 4 | 36 | 1 |" in s


# --------------------------------------------------------------------------- cases, mediation, shortfalls


def test_case_section_and_comparison():
    # P: 10 accepted, 8 due, 6 closed (5 on time); previous: 4 accepted, 4 due, 4 closed
    t = row(accepted=10, filed=9, dispatched=8, closed=6, due=8, closed_on_time=5, transferred=1, returned=2,
            reopened=0, callbacks=5, callbacks_satisfied=5, callbacks_rated=4, callbacks_resolved=4)
    prev = row(accepted=4, due=4, closed=4, closed_on_time=4)
    md = to_markdown(build_document(figures(t, previous=prev)))
    s = section(md, "## 三、案件办理")
    # 办结率 6/8 = 75.00 %, 按期办结率 5/8 = 62.50 %, 满意率 5/5, 解决率 4/4
    assert ("本期受理10件，立案9件，派遣8件，办结6件（按期办结5件），办结率75.00%，按期办结率62.50%；"
            "转办1件，退回2次，重办0次；回访5次，满意率100.00%，解决率100.00%。") in s
    assert "逐级上报" not in s  # the sentence only when something was escalated
    climbed = section(to_markdown(build_document(figures(row(accepted=1, due=1, escalations=2, escalated=1)))),
                      "## 三、案件办理")
    assert "网格、社区处理不了逐级上报的案件1件，上报2次。" in climbed  # seed C: grid → community → street
    table = section(md, "### （一）总体情况")
    assert "| 受理量 | 10 | 4 | +6 |" in table
    assert "| 办结率 | 75.00% | 100.00% | -25.00个百分点 |" in table  # 75 − 100
    assert "| 按期办结率 | 62.50% | 100.00% | -37.50个百分点 |" in table


def test_mediation_section():
    t = row(accepted=3, due=3, mediated=3, mediation_agreements=2, mediation_escalations=1, mediation_handoffs=1,
            mediated_grid=2, mediation_agreements_grid=1, mediation_escalations_grid=1,
            mediated_community=1, mediation_agreements_community=1, mediation_handoffs_grid=1)
    s = section(to_markdown(build_document(figures(t))), "## 四、矛盾纠纷化解")
    # 调解成功率 = agreements ÷ (agreements + hand-offs): total 2/3 = 66.67 %; grid 1/2 = 50 %; community 1/1
    assert "本期调解矛盾纠纷3件，达成调解协议2件，上报上一级调解1次，移交1件，调解成功率66.67%。" in s
    assert "其中院落/网格调解2件、成功1件，社区调委会1件、成功1件。" in s
    assert "| 网格（院落/网格调解） | 2 | 1 | 1 | 1 | 50.00% |" in s
    assert "| 社区（社区调委会） | 1 | 1 | 0 | 0 | 100.00% |" in s
    assert "| 合计 | 3 | 2 | 1 | 1 | 66.67% |" in s


@pytest.mark.parametrize(("satisfied", "short"), [(9, False), (8, True)])
def test_satisfaction_threshold(satisfied, short):
    # 10 callbacks: 9 satisfied = 90 % is not under 90 %; 8 = 80 % is
    t = row(accepted=10, due=10, closed=10, closed_on_time=10, callbacks=10, callbacks_satisfied=satisfied)
    assert ("满意率偏低" in [s.name for s in shortfalls(figures(t))]) is short


def test_hot_issue_threshold():
    t = row(accepted=10, due=10, closed=10, closed_on_time=10)
    # 3 of 10 = 30 % and 3 cases: a hot issue; 2 of 10 is not (fewer than 3 cases)
    hot = figures(t, by_category=[Part("油烟扰民", {"accepted": 3}), Part("垃圾扰民", {"accepted": 2})])
    assert [(s.name, s.finding, s.basis) for s in shortfalls(hot)] == [("热点问题", "油烟扰民问题集中：受理3件。", "占受理量30.00%")]
    cold = figures(t, by_category=[Part("垃圾扰民", {"accepted": 2})])
    assert shortfalls(cold) == []


def test_every_shortfall_has_its_plan_line():
    # overdue 2 (1 open + 1 late) of 8 due = 25 %; 1 reopen; 1 return; satisfaction 1/2; resolution 1/2
    t = row(accepted=8, due=8, closed=6, closed_on_time=5, overdue_open=1, closed_late=1, reopened=1, returned=1,
            dispatches=4, inaccurate_dispatches=1, callbacks=2, callbacks_satisfied=1, callbacks_rated=2, callbacks_resolved=1)
    found = shortfalls(figures(t))
    assert [s.name for s in found] == ["超期", "满意率偏低", "解决率偏低", "重办", "退回"]
    assert found[0].finding == "部分案件未按期办结：超期2件，其中超期未办结1件、超期办结1件。"
    assert found[0].basis == "超期率25.00%"
    assert found[4].basis == "准确派遣率75.00%"  # (4 dispatches − 1 inaccurate: the return) ÷ 4
    md = to_markdown(build_document(figures(t)))
    plans = section(md, "## 六、下一步打算")
    for i, s in enumerate(found, 1):
        assert f"{i}. {s.plan}" in plans
        assert f"| {i} | {s.plan} | {s.name} |" in plans


# --------------------------------------------------------------------------- rendering


def test_markdown_escapes_table_cells():
    md = to_markdown(build_document(figures(parts=[Part("A|B", {})])))
    assert "| A\\|B | 0 | 0 | 0 | — |" in md


def test_docx_holds_title_headings_and_tables():
    t = row(accepted=10, due=8, closed=6, closed_on_time=5)
    data = to_docx(build_document(figures(t, parts=[Part("幸福社区第1网格", t)])))
    d = docx.Document(io.BytesIO(data))
    texts = [p.text for p in d.paragraphs]
    assert texts[0] == "示范街道(网格演示)幸福社区工作总结（2026年3月1日至2026年3月31日）"
    assert d.core_properties.title == texts[0]
    for heading in ("一、基本情况", "二、巡查与信息采集", "三、案件办理", "（一）总体情况", "四、矛盾纠纷化解",
                    "五、存在的不足", "六、下一步打算"):
        assert heading in texts
    first = d.tables[0]
    assert [c.text for c in first.rows[0].cells] == ["网格", "受理", "办结", "在办（含转办）", "办结率"]
    assert [c.text for c in first.rows[1].cells] == ["幸福社区第1网格", "10", "6", "0", "75.00%"]  # 6 ÷ 8


def test_hot_issues_in_the_case_section():
    """Issue 15 item 4: the top five hot issues (GET /v1/hotspots) are named under 三、案件办理."""
    hot = [{"place_code": f"99010200100{i}", "place_label": f"社区{i}", "heat": 10.0 - i, "count": 7 - i,
            "reporters": 5 - (i % 2), "first_at": "2026-03-02T09:00:00+08:00", "last_at": "2026-03-05T09:00:00+08:00",
            "sample": f"垃圾堆积问题{i}"} for i in range(6)]
    md = to_markdown(build_document(figures(row(accepted=10, due=10), hotspots=hot)))
    part = section(md, "（四）热点问题")
    assert "热点问题5个" in part and "社区0的问题（7件，5人反映）" in part
    assert "社区4" in part and "社区5" not in part  # five, hottest first
    assert "2026-03-02至2026-03-05" in part
    assert "（四）热点问题" not in to_markdown(build_document(figures(row(accepted=10, due=10))))
