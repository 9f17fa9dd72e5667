"""The seed scenarios' work summaries (工作总结) in ``gridcase demo``: one document per seed block of
docs/seeds.md (A–D), written as .docx and .md by ``GET /v1/summary/document`` beside the demo's
tables, with the lines that carry each block's figures printed.

- A: seed A (imported by the demo, :func:`gridcase.seeds.write_seed_a`), tenant demo-market, over
  the campaign's three months: 5410 / 3644 / 627 / 1139, 办结率 67.36 %.
- B: the environmental inspector's rounds (:func:`gridcase.seeds.generate_seed_b`, ``POST
  /v1/patrols``), demo-grid's street over the 78 days: 865 points = 36 + 66 + 58 + routine.
- C: a grid worker's half year (:func:`gridcase.seeds.seed_c_cases`), acted out live through
  intake and dispatch: the sewer case reported up grid → community → street and closed by 城管,
  beside the fume, garbage and family-dispute cases settled in the grid. P: the half year that
  holds the run (the live cases are stamped with the time they happen).
- D: a women's-federation officer's year (:func:`gridcase.seeds.seed_d_cases`): 4 family disputes
  mediated; P: the year that holds the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from gridcase.client import (
    act,
    auth_headers,
    case_state,
    get_summary_document,
    post_json,
    wait_until_counted,
)
from gridcase.seeds import (
    SEED_B_DAYS,
    SEED_B_PLACE,
    SEED_B_START,
    SEED_B_TENANT,
    SEED_C_GRID,
    SEED_C_TENANT,
    SEED_D_COMMUNITY,
    SEED_D_TENANT,
    ScriptedCase,
    generate_seed_b,
    seed_c_cases,
    seed_d_cases,
)

TZ = ZoneInfo("Asia/Shanghai")  # the demo tenants' zone (deploy/tenants/demo-*.yaml)


@dataclass(frozen=True)
class SummaryScenario:
    """One document of the demo: seed ``block``, tenant, place (``None``: the whole tenant), P =
    [start, end) as ISO 8601, the sections whose paragraphs the demo prints and the table rows
    (by their first cell) it prints."""

    block: str
    tenant: str
    place: str | None
    start: str
    end: str
    sections: tuple[str, ...]
    rows: tuple[str, ...] = ()


def half_year(now: datetime) -> tuple[datetime, datetime]:
    """The half year (January–June or July–December, local) that holds ``now``."""
    local = now.astimezone(TZ)
    first = 1 if local.month <= 6 else 7
    start = datetime(local.year, first, 1, tzinfo=TZ)
    end = datetime(local.year + (first == 7), 7 if first == 1 else 1, 1, tzinfo=TZ)
    return start, end


def year(now: datetime) -> tuple[datetime, datetime]:
    """The calendar year (local) that holds ``now``."""
    y = now.astimezone(TZ).year
    return datetime(y, 1, 1, tzinfo=TZ), datetime(y + 1, 1, 1, tzinfo=TZ)


def scenarios(now: datetime) -> list[SummaryScenario]:
    """The four documents (module docstring)."""
    b_start = datetime(SEED_B_START.year, SEED_B_START.month, SEED_B_START.day, tzinfo=TZ)
    b_end = b_start + timedelta(days=SEED_B_DAYS)
    c, d = half_year(now), year(now)
    return [
        SummaryScenario("A", "demo-market", None, "2026-03-02T00:00:00+08:00", "2026-06-01T00:00:00+08:00",
                        ("## 一、基本情况",), ("受理量", "办结量", "在办（含转办）", "转办案件", "办结率")),
        SummaryScenario("B", SEED_B_TENANT, SEED_B_PLACE, b_start.isoformat(), b_end.isoformat(),
                        ("## 二、巡查与信息采集",)),
        SummaryScenario("C", SEED_C_TENANT, SEED_C_GRID, c[0].isoformat(), c[1].isoformat(),
                        ("## 三、案件办理", "## 四、矛盾纠纷化解"), ("城管",)),
        SummaryScenario("D", SEED_D_TENANT, SEED_D_COMMUNITY, d[0].isoformat(), d[1].isoformat(),
                        ("## 四、矛盾纠纷化解",)),
    ]


def act_out(intake_url: str, cases: Iterable[ScriptedCase], timeout_s: float = 60) -> list[str]:
    """Report each case now, wait until dispatch has settled it (``settles_in``), then take its
    actions, each waiting for dispatch's decision. Returns the case ids.

    Raises:
        RuntimeError: dispatch refused an action or left the case in another state.
        TimeoutError: a case did not settle within ``timeout_s``.
    """
    ids = []
    for case in cases:
        body = {**case.report, "reported_at": datetime.now(UTC).isoformat()}
        case_id = post_json(f"{intake_url}/v1/reports", body)["case_id"]
        deadline = time.monotonic() + timeout_s
        while case_state(intake_url, case_id) != case.settles_in:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{case.name}: not {case.settles_in} after {timeout_s:.0f}s")
            time.sleep(0.2)
        for action, role, fields, state in case.actions:
            decision = act(intake_url, case_id, action, role, **fields)
            if (decision.get("status"), decision.get("state")) != ("applied", state):
                raise RuntimeError(f"{case.name}: {action} → {decision}")
        ids.append(case_id)
    return ids


def post_patrols(intake_url: str, reporting_url: str, bodies: list[dict], start: str, end: str,
                 timeout_s: float = 120) -> None:
    """Record inspection rounds (``POST /v1/patrols``) and wait until reporting counts them in
    [start, end) of their tenant and place."""
    for body in bodies:
        post_json(f"{intake_url}/v1/patrols", body)
    tenant, place = bodies[0]["tenant"], bodies[0]["place_code"]
    deadline = time.monotonic() + timeout_s
    while True:
        resp = httpx.get(f"{reporting_url}/v1/patrols", timeout=10, headers=auth_headers(),
                         params={"tenant": tenant, "place_prefix": place, "start": start, "end": end})
        if resp.status_code == 200 and resp.json()["rounds"] >= len(bodies):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"patrols of {tenant} not counted after {timeout_s:.0f}s")
        time.sleep(0.5)


def paragraphs(md: str, heading: str) -> list[str]:
    """The paragraphs right after ``heading`` in a Markdown document, up to its table or the next
    heading (``[]`` when the heading is not there)."""
    if heading not in md:
        return []
    out = []
    for block in md.split(heading, 1)[1].strip().split("\n\n"):
        if block.startswith(("#", "|")):
            break
        out.append(block.strip())
    return out


def table_rows(md: str, firsts: tuple[str, ...]) -> list[str]:
    """The first table row of the document whose first cell is each of ``firsts``, as written."""
    lines = md.splitlines()
    return [next((line for line in lines if line.startswith(f"| {first} |")), "") for first in firsts]


def write_documents(reporting_url: str, todo: list[SummaryScenario], out_dir: Path) -> list[str]:
    """Fetch each scenario's document as .md and .docx into ``out_dir``; the lines the demo prints."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["", "══ 工作总结 work summaries of the seed scenarios (GET /v1/summary/document) ══"]
    for s in todo:
        stem = out_dir / f"seed_{s.block.lower()}_summary"
        md = get_summary_document(reporting_url, s.tenant, s.start, s.end, "md", place=s.place).decode("utf-8")
        stem.with_suffix(".md").write_text(md, encoding="utf-8")
        stem.with_suffix(".docx").write_bytes(
            get_summary_document(reporting_url, s.tenant, s.start, s.end, "docx", place=s.place))
        lines.append(f"  ── 种子{s.block} seed {s.block}: {md.splitlines()[0].lstrip('# ')}")
        lines.append(f"     {stem}.docx · {stem.name}.md")
        for heading in s.sections:
            lines += [f"     {heading.lstrip('# ')}: {text}" for text in paragraphs(md, heading)]
        lines += [f"     {row}" for row in table_rows(md, s.rows) if row]
    return lines


def run_scenarios(intake_url: str, dispatch_url: str, reporting_url: str, out_dir: Path,
                  progress: Callable[[str], None] = print, now: datetime | None = None) -> list[str]:
    """Act out seeds B, C and D on the running stack (A is imported by the demo before), wait until
    reporting has counted them, write the four documents into ``out_dir``; the lines to print."""
    todo = scenarios(now or datetime.now(UTC))
    b = todo[1]
    progress(f"巡查 patrols of seed B → tenant {SEED_B_TENANT} …")
    post_patrols(intake_url, reporting_url, list(generate_seed_b()), b.start, b.end)
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    cases = [*seed_c_cases(run), *seed_d_cases(run)]
    progress(f"种子C/D seeds C and D: {len(cases)} live cases → tenant {SEED_C_TENANT} …")
    act_out(intake_url, cases)
    wait_until_counted(dispatch_url, reporting_url, SEED_C_TENANT, len(cases), progress=progress)
    progress(f"工作总结 writing the work summaries into {out_dir} …")
    return write_documents(reporting_url, todo, out_dir)
