"""End to end: the work summary (工作总结, issue 19) of one community for a scripted month, read
from the running reporting service (``GET /v1/summary/document``, Markdown and .docx) with the
community's own API key, every figure checked against the hand calculation below.

The month is acted out as the events dispatch and intake publish (tests/casestory.py), folded by
reporting's own handler into the stack's database (the consumer's code path, without the broker,
so that the month can lie in the past: dispatch stamps live steps with its clock); the document is
then built by the service as a user gets it. Tenant demo-grid, 和平社区 (Heping, 990102001002);
P = November 2023 (Asia/Shanghai; no public holiday), compared with October 2023. No other test
writes cases or patrols in 2023, so the month is this test's alone.

The scripted month (times local; every deadline is 18:00 of its day):

Previous period, October 2023: Q1 garbage (垃圾扰民 100102) at grid 1, reported 10/16, dispatched to
城管 (deadline 10/20), closed 10/18; Q2 sewer (下水道堵塞 100401) at grid 2, reported 10/20, dispatched
to 城管 (deadline 10/27), closed 10/25. One routine patrol 10/30 (7 points): outside P.

November 2023:
- C1 sewer, grid 1, grid worker: reported 11/6 09:00, to 城管 10:00 (deadline 11/10), acknowledged,
  closed 11/8 (resolved); callback 11/9 satisfied, resident says resolved.
- C2 cooking fume (油烟扰民 100110), grid 1, phone: reported 11/7 10:00, accepted 10:30, to 生态环境
  11:00 (deadline 11/9), acknowledged, transferred to 城管 11/8 10:00, closed 11/13 (late);
  callback 11/14 dissatisfied, not resolved.
- C3 garbage, grid 2, grid worker: reported 11/14 09:00, to 住建 10:00, returned by 住建 (wrong
  dispatch) 11:00, to 城管 12:00 (deadline 11/24), closed 11/15; callback 11/16 satisfied, resolved;
  reopened 11/17, closed again 11/20; callback 11/21 basically satisfied, resolved.
- C4 garbage, grid 2, grid worker: reported 11/20, to 城管 (deadline 11/22), acknowledged, still open.
- M1 family dispute (家庭纠纷 300101), grid 3: reported 11/21, to mediation at the grid rung,
  agreement 11/23.
- M2 family dispute, grid 3: reported 11/22, mediation at the grid rung, failed → community rung
  11/24, agreement there 11/28.
- Outside the figures: X1 sewer in 幸福社区 (another community) 11/8; R1 a phone report in Heping
  11/9, rejected; O1 a Heping case reported 12/5 (after P).
- Patrols in Heping: routine 11/6 (10 points, 1 finding), 11/13 (12, 0), 11/20 (8, 2); night 11/15
  (6, 1); weekend duty Sat 11/18 (5, 0). Outside: a routine round in 幸福社区 on 11/6 (9 points).

Hand calculation (docs/kpis.md §3 definitions):
- 受理 6 (C1–C4, M1, M2); 立案 6 (all dispatched); 派遣 6 (first dispatched in P).
- 办结 5: C1 11/8, C2 11/13, C3 11/20 (final closure), M1 11/23, M2 11/28; C4 open.
- 按期办结 4: C1 (11/8 ≤ 11/10), C3 (11/20 ≤ 11/24), M1 and M2 (no deadline); C2 late (11/13 > 11/9).
- 应办结 6: the 5 closed + C4 (deadline 11/22 in P, open). 办结率 5/6 = 83.33 %; 按期办结率 4/6 = 66.67 %.
- 在办 1 (C4); 超期 2 = C4 open past its deadline + C2 closed late; 超期率 2/6 = 33.33 %.
- 转办 1 case (C2; transfers out 1, against 生态环境); 退回 1 (C3, against 住建); 重办 1 (C3) → 重办率
  1/5 = 20.00 %.
- 派遣次数 7 (C1, C2, C3 ×2, C4, M1, M2), of which 1 undone by the return → 准确派遣率 6/7 = 85.71 %.
- 回访 4 reached (C1, C2, C3 ×2), satisfied or basically satisfied 3 → 满意率 75.00 %; rated 4,
  resolved 3 → 解决率 75.00 %.
- 调解: 2 cases mediated (grid rung 2: M1, M2; community rung 1: M2); agreements 2 (grid 1: M1,
  community 1: M2); escalation 1 (M2, grid → community); hand-offs 0; 调解成功率 2/(2+0) = 100 %
  (grid 1/1, community 1/1).
- Previous period (October): 受理 2, 立案 2, 派遣 2, 办结 2, 按期办结 2, 办结率 and 按期办结率 2/2 =
  100 %, 在办 0, nothing else. 增减: 受理 +4, 办结 +3, 按期办结 +2, 办结率 83.33 − 100 = −16.67 个百分点,
  按期办结率 66.67 − 100 = −33.33 个百分点 (unrounded: −16.666…, −33.333…).
- By grid: grid 1 (C1, C2) 2 accepted / 2 closed / 0 open / 100 %; grid 2 (C3, C4) 2 / 1 / 1 /
  1 ÷ 2 = 50 %; grid 3 (M1, M2) 2 / 2 / 0 / 100 %.
- By category (受理, 办结, 应办结 → 办结率; October's 受理): 垃圾扰民 2, 1, 2 → 50 %, 1; 家庭纠纷 2, 2, 2 →
  100 %, 0; 油烟扰民 1, 1, 1, 0; 下水道堵塞 1, 1, 1, 1. Largest changes: 家庭纠纷 +2, then 垃圾扰民 and
  油烟扰民 +1 (by name: U+5783 垃 before U+6CB9 油); 下水道堵塞 unchanged.
- By department (the case's current department; returns and transfers against the department
  that made them): 城管 受理 4 (C1–C4), 办结 3, 应办结 4 → 75 %, 超期 2; 人民调解 (mediation) 2, 2,
  100 %; 生态环境 转出 1; 住建 退回 1.
- Patrols: 5 rounds, 41 points (10 + 12 + 8 + 6 + 5), 4 findings; routine 3 rounds 30 points 3
  findings, night 1 / 6 / 1, weekend duty 1 / 5 / 0.
- Shortfalls (docs/summary.md §5): 超期 (2), 满意率 75 % < 90 %, 解决率 75 % < 90 %, 重办 (1), 退回 (1);
  no hot issue (the largest category has 2 cases, fewer than 3).
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import docx
import httpx
import pytest

from shared.contract.events import PatrolRecorded
from tests.casestory import CaseStory
from tests.unit.test_summary_document import section

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
TENANT = "demo-grid"
HEPING = "990102001002"
G1, G2, G3 = (f"{HEPING}00{i}" for i in (1, 2, 3))
XINGFU_G1 = "990102001001001"
START, END = "2023-11-01T00:00:00+08:00", "2023-12-01T00:00:00+08:00"
PERIOD = "2023年11月1日至2023年11月30日"


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2023, month, day, hour, minute, tzinfo=TZ)


def deadline(month: int, day: int) -> datetime:
    return at(month, day, 18)


def month_events() -> list:
    """The events of the module docstring's month (case names unique to this test)."""
    run = uuid.uuid4().hex[:8]

    def story(name, reported_at, place, category, channel="grid_worker"):
        return CaseStory(TENANT, f"doc19-{run}-{name}", reported_at, channel=channel, category=category, place=place)

    def to_city(s, when, due):
        return s.dispatch(when, "urban_management", deadline=due).step("acknowledge", "acknowledged",
                                                                       when.replace(hour=when.hour + 1))

    q1 = to_city(story("Q1", at(10, 16, 9), G1, "100102").accept_and_file(at(10, 16, 9)), at(10, 16), deadline(10, 20))
    q1.close(at(10, 18))
    q2 = to_city(story("Q2", at(10, 20, 9), G2, "100401").accept_and_file(at(10, 20, 9)), at(10, 20), deadline(10, 27))
    q2.close(at(10, 25))
    c1 = to_city(story("C1", at(11, 6, 9), G1, "100401").accept_and_file(at(11, 6, 9)), at(11, 6), deadline(11, 10))
    c1.close(at(11, 8)).step("callback", "closed", at(11, 9), satisfaction="satisfied", resident_resolved=True)
    c2 = (story("C2", at(11, 7), G1, "100110", channel="phone").accept_and_file(at(11, 7, 10, 30))
          .dispatch(at(11, 7, 11), "ecology_environment", deadline=deadline(11, 9))
          .step("acknowledge", "acknowledged", at(11, 7, 12))
          .step("transfer", "dispatched", at(11, 8), department="urban_management")
          .step("acknowledge", "acknowledged", at(11, 8, 11)).close(at(11, 13))
          .step("callback", "closed", at(11, 14), satisfaction="dissatisfied", resident_resolved=False))
    c3 = (story("C3", at(11, 14, 9), G2, "100102").accept_and_file(at(11, 14, 9))
          .dispatch(at(11, 14), "housing")
          .step("return", "filed", at(11, 14, 11), department="triage", target_kind="triage"))
    c3 = to_city(c3, at(11, 14, 12), deadline(11, 24)).close(at(11, 15))
    c3.step("callback", "closed", at(11, 16), satisfaction="satisfied", resident_resolved=True)
    c3.step("reopen", "dispatched", at(11, 17), reason="垃圾又堆起来了").step("acknowledge", "acknowledged", at(11, 17, 11))
    c3.close(at(11, 20)).step("callback", "closed", at(11, 21), satisfaction="basically_satisfied",
                              resident_resolved=True)
    c4 = to_city(story("C4", at(11, 20, 9), G2, "100102").accept_and_file(at(11, 20, 9)), at(11, 20), deadline(11, 22))
    m1 = (story("M1", at(11, 21, 9), G3, "300101").accept_and_file(at(11, 21, 9))
          .dispatch(at(11, 21), "mediation", rung="grid")
          .step("mediation_agreement", "closed", at(11, 23), outcome="resolved"))
    m2 = (story("M2", at(11, 22, 9), G3, "300101").accept_and_file(at(11, 22, 9))
          .dispatch(at(11, 22), "mediation", rung="grid")
          .step("mediation_failed", "mediating", at(11, 24), rung="community")
          .step("mediation_agreement", "closed", at(11, 28), outcome="resolved"))
    x1 = to_city(story("X1", at(11, 8, 9), XINGFU_G1, "100401").accept_and_file(at(11, 8, 9)), at(11, 8), deadline(11, 10))
    x1.close(at(11, 9))
    r1 = story("R1", at(11, 9), G1, "100401", channel="phone").step("reject", "rejected", at(11, 9, 11),
                                                                    outcome="unfounded")
    o1 = to_city(story("O1", at(12, 5, 9), G1, "100401").accept_and_file(at(12, 5, 9)), at(12, 5), deadline(12, 8))
    events = [e for s in (q1, q2, c1, c2, c3, c4, m1, m2, x1, r1, o1) for e in s.events]

    def patrol(place, kind, when, points, findings):
        return PatrolRecorded(event_id=uuid.uuid4(), case_id=uuid.uuid4(), occurred_at=when, tenant=TENANT,
                              place_code=place, kind=kind, points=points, started_at=when,
                              findings=tuple(uuid.uuid4() for _ in range(findings)))

    return events + [
        patrol(G1, "routine", at(11, 6, 9), 10, 1), patrol(G2, "routine", at(11, 13, 9), 12, 0),
        patrol(G3, "routine", at(11, 20, 9), 8, 2), patrol(G1, "night", at(11, 15, 21), 6, 1),
        patrol(G2, "weekend_duty", at(11, 18), 5, 0),
        patrol(XINGFU_G1, "routine", at(11, 6, 9), 9, 0), patrol(G1, "routine", at(10, 30, 9), 7, 0),
    ]


@pytest.fixture(scope="module")
def month(stack, infra) -> dict[str, str]:
    """The month folded into the stack's reporting database; API keys of Heping's community staff
    and of the other community. Its rows are deleted afterwards: they came from no outbox, so a
    later ``gridcase reporting rebuild`` (tests/e2e/test_rebuild.py) would not find them again and
    the tenant's figures would differ from before the rebuild."""
    from services.reporting.handlers import apply_events
    from shared.platform.authstore import issue
    from shared.platform.db import make_engine

    events = month_events()  # fresh ids each call: keep them for the clean-up

    async def main() -> dict[str, str]:
        engine = make_engine(infra.database_url)
        try:
            async with engine.begin() as conn:
                await apply_events(conn, events)
            keys = {}
            for name, scope in (("heping", HEPING), ("xingfu", "990102001001")):
                issued = await issue(engine, kind="api_key", tenant=TENANT, role="community_staff", scope=scope,
                                     department=None, label=f"summary document {name}")
                keys[name] = issued.secret
            return keys
        finally:
            await engine.dispose()

    async def forget() -> None:
        import sqlalchemy as sa

        from services.reporting.db import case_facts, case_steps, patrols
        from services.reporting.handlers import default_zones
        from services.reporting.kpis.cells import all_deltas
        from services.reporting.kpis.rollup_fold import apply_cell_deltas
        from services.reporting.step_rollup import StepFold

        ids = [ev.case_id for ev in events]
        engine = make_engine(infra.database_url)
        try:
            async with engine.begin() as conn:
                # the month's cases leave the rollups too, as the fold would take them out: the step
                # cells by their before/after (StepFold also locks the cases), the KPI cells by
                # retracting each case's contributions; else the live rollups would keep them and
                # differ from a rebuild's (tests/e2e/test_rebuild.py)
                steps = await StepFold.start(conn, events)
                rows = [dict(r._mapping) for r in await conn.execute(
                    sa.select(case_facts).where(case_facts.c.case_id.in_(ids)).with_for_update())]
                await apply_cell_deltas(conn, *all_deltas(((row, None) for row in rows), default_zones()))
                await conn.execute(case_steps.delete().where(case_steps.c.case_id.in_(ids)))
                await conn.execute(case_facts.delete().where(case_facts.c.case_id.in_(ids)))
                await conn.execute(patrols.delete().where(patrols.c.patrol_id.in_(ids)))
                await steps.finish(conn)
        finally:
            await engine.dispose()

    yield asyncio.run(main())
    asyncio.run(forget())


def document(stack, key: str, fmt: str = "md", **params) -> httpx.Response:
    q = {"tenant": TENANT, "start": START, "end": END, "format": fmt, **params}
    return httpx.get(f"{stack.url('reporting')}/v1/summary/document", params=q, timeout=120,
                     headers={"Authorization": f"Bearer {key}"})


def md_tables(md: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text, each a list of rows of cells (header first, the rule left out)."""
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([c.strip().replace("\\|", "|") for c in line.strip()[1:-1].split(" | ")])
        elif current:
            tables.append(current)
            current = []
    return tables


#: The tables of the document, in order, as worked out in the module docstring.
EXPECTED_TABLES = [
    [["网格", "受理", "办结", "在办（含转办）", "办结率"],
     ["和平社区第1网格", "2", "2", "0", "100.00%"],
     ["和平社区第2网格", "2", "1", "1", "50.00%"],
     ["和平社区第3网格", "2", "2", "0", "100.00%"]],
    [["巡查类型", "次数", "点位", "发现问题"],
     ["日常巡查", "3", "30", "3"], ["夜查", "1", "6", "1"], ["周末值班", "1", "5", "0"], ["合计", "5", "41", "4"]],
    [["指标", "本期", "上期（2023年10月1日至2023年10月31日）", "增减"],
     ["受理量", "6", "2", "+4"], ["立案数", "6", "2", "+4"], ["派遣案件", "6", "2", "+4"], ["办结量", "5", "2", "+3"],
     ["按期办结", "4", "2", "+2"], ["办结率", "83.33%", "100.00%", "-16.67个百分点"],
     ["按期办结率", "66.67%", "100.00%", "-33.33个百分点"], ["在办（含转办）", "1", "0", "+1"], ["转办案件", "1", "0", "+1"],
     ["逐级上报案件", "0", "0", "0"], ["退回次数", "1", "0", "+1"], ["重办", "1", "0", "+1"], ["超期", "2", "0", "+2"], ["回访量", "4", "0", "+4"],
     ["满意率", "75.00%", "—", "—"], ["解决率", "75.00%", "—", "—"]],
    [["类别", "受理", "办结", "办结率", "上期受理", "受理增减"],
     ["垃圾扰民", "2", "1", "50.00%", "1", "+1"], ["家庭纠纷", "2", "2", "100.00%", "0", "+2"],
     ["油烟扰民", "1", "1", "100.00%", "0", "+1"], ["下水道堵塞", "1", "1", "100.00%", "1", "0"]],
    [["部门", "受理", "办结", "办结率", "超期", "转出", "退回"],
     ["城管", "4", "3", "75.00%", "2", "0", "0"], ["人民调解", "2", "2", "100.00%", "0", "0", "0"],
     ["生态环境", "0", "0", "—", "0", "1", "0"], ["住建", "0", "0", "—", "0", "0", "1"]],
    [["调解层级", "调解案件", "调解成功", "调解上报", "调解移交", "调解成功率"],
     ["网格（院落/网格调解）", "2", "1", "1", "0", "100.00%"], ["社区（社区调委会）", "1", "1", "0", "0", "100.00%"],
     ["街道（街道调解中心）", "0", "0", "0", "0", "—"], ["联动（联动调解）", "0", "0", "0", "0", "—"],
     ["合计", "2", "2", "1", "0", "100.00%"]],
    [["不足", "依据"], ["超期", "超期率33.33%"], ["满意率偏低", "满意率75.00%"], ["解决率偏低", "解决率75.00%"],
     ["重办", "重办率20.00%"], ["退回", "准确派遣率85.71%"]],
]


def test_community_month_document(stack, month):
    resp = document(stack, month["heping"])  # no place asked: the key's own community
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/markdown")
    md = resp.text
    assert md.startswith(f"# 示范街道(网格演示)和平社区工作总结（{PERIOD}）\n")
    basic = section(md, "## 一、基本情况")
    assert f"本报告期为{PERIOD}。和平社区下辖网格3个：和平社区第1网格、和平社区第2网格、和平社区第3网格。" in basic
    # the statistics paragraph of /v1/summary: 受理 6, 办结 5, 在办 (not transferred) 1, 办结率 5/6 → 83.3 %
    assert f"{PERIOD}，和平社区共受理案件6件，已办结5件，正在办理1件，办结率83.3%。" in basic
    assert ("本期开展巡查5次，检查点位41个，发现问题4个。其中日常巡查3次、30个点位，夜查1次、6个点位，"
            "周末值班1次、5个点位。") in md
    assert ("本期受理6件，立案6件，派遣6件，办结5件（按期办结4件），办结率83.33%，按期办结率66.67%；"
            "转办1件，退回1次，重办1次；回访4次，满意率75.00%，解决率75.00%。") in md
    assert "与上期相比，受理量变化最大的类别：家庭纠纷增加2件（0→2），垃圾扰民增加1件（1→2），油烟扰民增加1件（0→1）。" in md
    assert "本期调解矛盾纠纷2件，达成调解协议2件，上报上一级调解1次，移交0件，调解成功率100.00%。" in md
    assert "其中院落/网格调解2件、成功1件，社区调委会1件、成功1件。" in md
    lacks = section(md, "## 五、存在的不足")
    for line in ("1. 部分案件未按期办结：超期2件，其中超期未办结1件、超期办结1件。",
                 "2. 群众满意度有待提高：回访4次，满意及基本满意3次。",
                 "3. 部分问题群众认为未解决：评价解决情况4次，认为已解决3次。",
                 "4. 部分案件办结后被重新办理：重办1次。",
                 "5. 部分案件派遣不准被退回：退回1次。"):
        assert line in lacks
    plans = section(md, "## 六、下一步打算")
    assert "1. 逐件清理超期案件，紧盯办理时限，提高按期办结率（本期66.67%）。" in plans
    assert plans.count("\n| ") == 6  # header + one line per shortfall (5)
    tables = md_tables(md)
    assert tables[:len(EXPECTED_TABLES)] == EXPECTED_TABLES
    assert len(tables) == len(EXPECTED_TABLES) + 1  # and 六's plan table

    # The same figures as the KPI API for the same scope and P (one source).
    kpis = httpx.get(f"{stack.url('reporting')}/v1/kpis", params={"tenant": TENANT, "start": START, "end": END},
                     headers={"Authorization": f"Bearer {month['heping']}"}, timeout=60).json()["total"]
    assert (kpis["accepted"], kpis["closed"], kpis["due"], kpis["overdue"], kpis["callbacks"]) == (6, 5, 6, 2, 4)


def test_docx_holds_the_same_document(stack, month):
    md = document(stack, month["heping"], place=HEPING).text
    resp = document(stack, month["heping"], "docx", place=HEPING)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument")
    d = docx.Document(io.BytesIO(resp.content))
    title = f"示范街道(网格演示)和平社区工作总结（{PERIOD}）"
    assert d.paragraphs[0].text == title and d.core_properties.title == title
    texts = [p.text for p in d.paragraphs]
    for heading in ("一、基本情况", "二、巡查与信息采集", "三、案件办理", "（一）总体情况", "（二）分类别", "（三）分部门",
                    "四、矛盾纠纷化解", "五、存在的不足", "六、下一步打算"):
        assert heading in texts
    assert [[[c.text for c in r.cells] for r in t.rows] for t in d.tables] == md_tables(md)
    assert [[[c.text for c in r.cells] for r in t.rows] for t in d.tables][:len(EXPECTED_TABLES)] == EXPECTED_TABLES


def test_a_community_sees_its_own_document_only(stack, month):
    assert document(stack, month["heping"], place="990102001001").status_code == 404  # another community
    assert document(stack, month["xingfu"], place=HEPING).status_code == 404
    # a grid of its own community is within scope
    grid = document(stack, month["heping"], place=G3)
    assert grid.status_code == 200
    assert grid.text.startswith(f"# 示范街道(网格演示)和平社区第3网格工作总结（{PERIOD}）")
    # a department's document within the community: the cases with 城管 now (C1–C4: 受理 4, 办结 3, 应办结 4)
    dept = document(stack, month["heping"], department="urban_management")
    assert dept.status_code == 200
    assert dept.text.startswith(f"# 示范街道(网格演示)和平社区城管工作总结（{PERIOD}）")
    assert "巡查按地点记录，部门的工作总结不含巡查。" in dept.text
    overall = md_tables(section(dept.text, "### （一）总体情况"))[0]
    assert overall[1][:2] == ["受理量", "4"] and overall[4][:2] == ["办结量", "3"] and overall[6][:2] == ["办结率", "75.00%"]
    bad = document(stack, month["heping"], place=f"{HEPING}999")  # not in the tenant file
    assert bad.status_code == 404 and (bad.json()["error"], bad.json()["field"]) == ("not_found", "place")
    assert document(stack, month["heping"], "pdf").status_code == 422
    no_end = httpx.get(f"{stack.url('reporting')}/v1/summary/document",
                       params={"tenant": TENANT, "start": START}, timeout=30,
                       headers={"Authorization": f"Bearer {month['heping']}"})
    assert no_end.status_code == 422


def test_cli_writes_the_document(stack, month, tmp_path):
    """``gridcase summary`` with dates (local midnights of the tenant's zone) writes the same document."""
    import subprocess
    import sys

    env = {**os.environ, "GRIDCASE_API_KEY": month["heping"], "GRIDCASE_REPORTING_URL": stack.url("reporting")}
    outs = {}
    for suffix in (".md", ".docx"):
        out = tmp_path / f"heping-2023-11{suffix}"
        run = subprocess.run([sys.executable, "-m", "gridcase.cli", "summary", "--tenant", TENANT, "--place", HEPING,
                              "--start", "2023-11-01", "--end", "2023-12-01", "--out", str(out)],
                             capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        outs[suffix] = out
    md = outs[".md"].read_text(encoding="utf-8")
    assert md == document(stack, month["heping"], place=HEPING).text
    d = docx.Document(str(outs[".docx"]))
    assert [[[c.text for c in r.cells] for r in t.rows] for t in d.tables] == md_tables(md)
    # outside the key's scope: the CLI says why and exits 1
    run = subprocess.run([sys.executable, "-m", "gridcase.cli", "summary", "--tenant", TENANT, "--place", "990102001001",
                          "--start", "2023-11-01", "--end", "2023-12-01", "--out", str(tmp_path / "x.md")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 1 and "404" in run.stdout


def test_seeds_c_and_d_acted_out_live(stack):
    """Seeds C and D as ``gridcase demo`` acts them out (gridcase/scenarios.py), at a building code of
    their own under each seed's grid so that the figures are theirs alone; read with ``/v1/kpis``.

    C (docs/seeds.md block C): 4 cases accepted and closed; the sewer case reported up twice
    (grid → community → street: 逐级上报次数 2, 逐级上报案件 1) and closed by 城管 (urban_management
    办结 1); fume and garbage closed by the grid worker (no department); the family dispute mediated
    at the grid (调解案件 1, 调解成功 1). D (block D): 4 family disputes mediated, all settled (调解成功
    4: 3 at the grid, 1 at the community after one escalation, 调解上报 1)."""
    import dataclasses

    from gridcase.scenarios import act_out
    from gridcase.seeds import SEED_C_GRID, SEED_D_COMMUNITY, seed_c_cases, seed_d_cases
    from tests.api import ADMIN_KEY

    def under(cases, place):
        return [dataclasses.replace(c, report={**c.report, "place_code": place}) for c in cases]

    run = uuid.uuid4().hex[:8]
    c_place, d_place = f"{SEED_C_GRID}{run[:6]}", f"{SEED_D_COMMUNITY}001{run[2:8]}"
    old = os.environ.get("GRIDCASE_API_KEY")
    os.environ["GRIDCASE_API_KEY"] = ADMIN_KEY  # gridcase.client's credential
    try:
        act_out(stack.url("intake"), under(seed_c_cases(run), c_place) + under(seed_d_cases(run), d_place))
    finally:
        if old is None:
            os.environ.pop("GRIDCASE_API_KEY", None)
        else:
            os.environ["GRIDCASE_API_KEY"] = old

    def kpis(place, group_by=None):
        params = {"tenant": TENANT, "place_prefix": place, **({"group_by": group_by} if group_by else {})}
        return httpx.get(f"{stack.url('reporting')}/v1/kpis", params=params, timeout=60,
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()

    def settled(place, want):
        deadline = time.monotonic() + 90
        while True:
            t = kpis(place)["total"]
            got = {k: t[k] for k in want}
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.5)

    c = {"accepted": 4, "closed": 4, "escalations": 2, "escalated": 1, "mediated": 1, "mediation_agreements": 1,
         "mediated_grid": 1}
    assert settled(c_place, c) == c
    by_dept = {r["key"]: r["closed"] for r in kpis(c_place, "department")["rows"]}
    assert by_dept == {"urban_management": 1, "mediation": 1, None: 2}
    d = {"accepted": 4, "closed": 4, "mediated": 4, "mediation_agreements": 4, "mediation_escalations": 1,
         "mediation_agreements_grid": 3, "mediation_agreements_community": 1}
    assert settled(d_place, d) == d
