"""Generate seed scenario A: the market-regulation bureau's campaign on illegal business.

Source of the facts: docs/seeds.md block A (a grid office's year-end work
summary, 工作总结): over three months of grid sweeps (排查梳理) the bureau found 5410 businesses;
3644 were closed (已办结), 627 are still being handled within the bureau's own remit (正在办理),
and 1139 needed a prior licence (前置审批) from another body and were transferred (转办).
3644 + 627 + 1139 = 5410; closure rate 3644 / 5410 = 67.36 %.

Output: JSONL in the project's own import format, one ``ReportIn`` object per line
(services/intake/schemas.py), tenant ``demo-market`` (deploy/tenants/demo-market.yaml, a fictional
district). Each line is a historical record (``history`` set) so that dispatch replays it:

- 3644 x ``500101`` 无照经营(店铺), department ``market_regulation``, closed a few days after the
  report (status 已办结).
- 627 x ``500101``, department ``market_regulation``, open (status 正在办理).
- 1139 x prior-licence trades ``8001nn``, department ``market_regulation`` and one
  ``RecordedTransfer`` to the trade's licensing department from the taxonomy (docs/domain.md §3(b)),
  after the report; not closed (status 已转办). Only trades licensed by ANOTHER body are used:
  the summary says these were transferred to other departments (转办卫生、环保等部门), so the
  trades the bureau licenses itself (catering 800101, pharmacies 800107) are left out.

Everything not stated by docs/seeds.md is a generator choice, not a fact: the split of the 1139
over the trades (the summary gives none: spread evenly), the report times
(weekdays 08:30-17:30 Asia/Shanghai from 2026-03-02 for 13 weeks), the closing delays (1-5 days)
and the grid of each business (round robin over all 36 grids in a shuffled order). The output is
deterministic: fixed random seed, no clock, no hash-order dependence.

Usage: ``gridcase seed-a --out seed_a.jsonl`` (stdout if ``--out`` is omitted), or
:func:`generate_seed_a` / :func:`write_seed_a`.

Also here: seed B's inspection rounds (:func:`generate_seed_b`, docs/seeds.md block B) and the live
cases of seeds C and D (:func:`seed_c_cases`, :func:`seed_d_cases`: reports and the actions taken on
them, acted out by gridcase/scenarios.py in ``gridcase demo``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.domain.taxonomy import Taxonomy, load_taxonomy
from shared.domain.tenants import TenantConfig, load_tenant

TENANT = "demo-market"
SOURCE = "seed-a"
SEED = 20260302  # fixed random seed (generator choice)
TZ = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 2)  # a Monday; the brief fixes the start date
WEEKS = 13  # "three months" of sweeps (docs/seeds.md block A: 排查梳理 over three months)
DEPARTMENT = "market_regulation"  # the reporting bureau: 市场监管 (docs/seeds.md block A title)
UNLICENSED_SHOP = "500101"  # 无照经营(店铺) -> 市场监管 (docs/domain.md §3(b))

# docs/seeds.md block A, verbatim figures:
TOTAL = 5410  # 排查梳理 5410 户
CLOSED = 3644  # 已办结 3644 户
OPEN = 627  # 属本部门职责范围内正在办理 627 户
TRANSFERRED = 1139  # 需提供前置审批, 转办卫生、环保等部门 1139 户
assert CLOSED + OPEN + TRANSFERRED == TOTAL  # the summary's own check

STATUS_CLOSED = "已办结"
STATUS_OPEN = "正在办理"
STATUS_TRANSFERRED = "已转办"

_SHOP_TEXTS = (
    "网格员排查：临街店铺未取得营业执照从事经营活动",
    "网格员排查：住宅底商无照经营，已登记",
    "网格员排查：店铺营业执照过期仍在经营",
    "网格员排查：市场内摊位无照经营",
)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _workdays() -> list[date]:
    """Monday-Friday dates of the sweep period (no holiday calendar; generator choice)."""
    days = (START + timedelta(days=i) for i in range(WEEKS * 7))
    return [d for d in days if d.weekday() < 5]


def _report_time(rng: random.Random, days: list[date]) -> datetime:
    day = rng.choice(days)
    minutes = rng.randint(0, 9 * 60)  # 08:30-17:30 local
    return datetime.combine(day, time(8, 30), TZ) + timedelta(minutes=minutes)


def generate_seed_a(taxonomy: Taxonomy | None = None, tenant: TenantConfig | None = None) -> Iterator[dict]:
    """Yield the 5410 records of scenario A as JSON-ready dicts, ordered by ``reported_at``.

    Each dict validates as ``services.intake.schemas.ReportIn``. ``taxonomy`` and ``tenant``
    default to the packaged taxonomy and ``deploy/tenants/demo-market.yaml``; the licensing
    departments come from the taxonomy's ``licence`` categories (docs/domain.md §3(b)), the grids from
    the tenant's ``grid`` places.

    Raises:
        TaxonomyError, TenantConfigError: the configuration files are invalid.
        RuntimeError: the taxonomy has no licence categories or the tenant no grids.
    """
    taxonomy = taxonomy or load_taxonomy()
    tenant = tenant or load_tenant(TENANT, taxonomy=taxonomy)
    trades = sorted(
        (c for c in taxonomy.categories_of_kind("licence") if c.department != DEPARTMENT), key=lambda c: c.code
    )
    grids = [p.code for p in tenant.places_at("grid")]
    shop = taxonomy.category(UNLICENSED_SHOP)
    if not trades or not grids or shop is None:
        raise RuntimeError("taxonomy lacks 8001nn/500101 categories or tenant has no grids")

    rng = random.Random(SEED)
    days = _workdays()
    last = days[-1]
    # Closed cases close within the period: report at least 7 days before its end.
    early_days = [d for d in days if d <= last - timedelta(days=7)]

    records: list[dict] = []
    for kind, count in (("closed", CLOSED), ("open", OPEN), ("transferred", TRANSFERRED)):
        for i in range(count):
            if kind == "closed":
                reported = _report_time(rng, early_days)
                closed_at = reported + timedelta(minutes=rng.randint(24 * 60, 5 * 24 * 60))
                category = shop
                text = rng.choice(_SHOP_TEXTS)
                history = {
                    "department": DEPARTMENT,
                    "status": STATUS_CLOSED,
                    "closed": True,
                    "closed_at": _iso(closed_at),
                    "transfers": [],
                }
            elif kind == "open":
                reported = _report_time(rng, days)
                category = shop
                text = rng.choice(_SHOP_TEXTS)
                history = {"department": DEPARTMENT, "status": STATUS_OPEN, "closed": False,
                           "closed_at": None, "transfers": []}
            else:
                category = trades[i % len(trades)]  # even spread (summary gives no breakdown)
                reported = _report_time(rng, early_days)
                moved = reported + timedelta(minutes=rng.randint(4 * 60, 3 * 24 * 60))
                licensing = taxonomy.department(category.department)
                text = (
                    f"网格员排查：{category.name_zh}经营户未取得前置审批，"
                    f"需由{licensing.name_zh if licensing else category.department}部门办理许可"
                )
                history = {
                    "department": DEPARTMENT,
                    "status": STATUS_TRANSFERRED,
                    "closed": False,
                    "closed_at": None,
                    "transfers": [{"to_department": category.department, "at": _iso(moved)}],
                }
            records.append(
                {
                    "tenant": TENANT,
                    "category_code": category.code,
                    "category_name": category.name_zh,
                    "place_code": "",  # set below
                    "description": text,
                    "channel": "grid_worker",
                    "request_type": "排查",
                    "urgency": "一般",
                    "reported_at": reported,
                    "source": SOURCE,
                    "source_id": "",  # set below, in time order
                    "history": history,
                }
            )

    # Spread over all grids: round robin over a shuffled order.
    order = list(range(len(records)))
    rng.shuffle(order)
    for n, index in enumerate(order):
        records[index]["place_code"] = grids[n % len(grids)]

    ranked = sorted(range(len(records)), key=lambda k: (records[k]["reported_at"], k))
    for seq, k in enumerate(ranked, start=1):
        record = records[k]
        record["source_id"] = f"A-{seq:05d}"
        record["reported_at"] = _iso(record["reported_at"])
        yield record


def write_seed_a(path: Path) -> int:
    """Write scenario A as JSONL (UTF-8) to ``path``; return the number of records written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for record in generate_seed_a():
            fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n


# --- Seed scenario B: an environmental grid inspector's 78 days (docs/seeds.md block B) -------

SEED_B_TENANT = "demo-grid"
SEED_B_PLACE = "990102001"  # the inspector covers the whole (fictional) street of demo-grid
SEED_B_START = date(2026, 9, 1)
SEED_B_DAYS = 78  # "78 days in post"
# docs/seeds.md block B, verbatim: 865 points in all; night inspections 4 rounds, 36 points;
# heavy-pollution patrols 2 rounds, 66 points; weekend duty 4 days, 58 points.
SEED_B_TOTAL_POINTS = 865
SEED_B_SPECIAL = {"night": (4, 36), "heavy_pollution": (2, 66), "weekend_duty": (4, 58)}


def _split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole numbers (larger ones first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def generate_seed_b() -> Iterator[dict]:
    """Yield scenario B's inspection rounds as ``POST /v1/patrols`` bodies.

    The special rounds and all point totals are the summary's; the rest is a generator choice:
    routine rounds on every weekday of the 78 days share the remaining points evenly; night rounds
    at 21:00, heavy-pollution patrols and weekend duty on the first suitable days.
    """
    days = [SEED_B_START + timedelta(days=i) for i in range(SEED_B_DAYS)]
    weekdays = [d for d in days if d.weekday() < 5]
    weekends = [d for d in days if d.weekday() >= 5]
    special_points = sum(points for _, points in SEED_B_SPECIAL.values())
    routine = _split(SEED_B_TOTAL_POINTS - special_points, len(weekdays))
    rounds: list[tuple[str, datetime, int]] = [
        ("routine", datetime.combine(d, time(9, 0), TZ), p) for d, p in zip(weekdays, routine, strict=True)
    ]
    n, pts = SEED_B_SPECIAL["night"]
    rounds += [("night", datetime.combine(weekdays[7 * i + 2], time(21, 0), TZ), p) for i, p in enumerate(_split(pts, n))]
    n, pts = SEED_B_SPECIAL["heavy_pollution"]
    rounds += [("heavy_pollution", datetime.combine(weekdays[20 + 2 * i], time(14, 0), TZ), p) for i, p in enumerate(_split(pts, n))]
    n, pts = SEED_B_SPECIAL["weekend_duty"]
    rounds += [("weekend_duty", datetime.combine(weekends[i], time(10, 0), TZ), p) for i, p in enumerate(_split(pts, n))]
    for k, (kind, started, points) in enumerate(sorted(rounds, key=lambda r: (r[1], r[0]))):
        yield {
            "tenant": SEED_B_TENANT,
            "place_code": SEED_B_PLACE,
            "kind": kind,
            "points": points,
            "started_at": started.isoformat(),
            "ended_at": (started + timedelta(hours=2)).isoformat(),
            "worker_ref": "inspector-b",
            "source_id": f"B-{k + 1:04d}",
        }


# --- Seeds C and D: live cases acted out through the services (docs/seeds.md blocks C, D) ------


@dataclass(frozen=True)
class ScriptedCase:
    """One live case of a scenario: its report (a ``POST /v1/reports`` body without
    ``reported_at``, which is the moment it is sent), the state dispatch leaves it in by itself
    (``settles_in``), then the actions taken on it, each ``(action, actor_role, fields, state
    after)``, sent to ``POST /v1/cases/{id}/actions``."""

    name: str
    report: dict
    settles_in: str
    actions: tuple[tuple[str, str, dict, str], ...] = ()


SEED_C_TENANT = SEED_D_TENANT = "demo-grid"
#: "Grid no. 5" of the summary: demo-grid has three grids per community, so 幸福社区第2网格 stands
#: for it (generator choice).
SEED_C_GRID = "990102001001002"
#: The women's-federation officer's community (generator choice): 和平社区 and its three grids.
SEED_D_COMMUNITY = "990102001002"

_EVIDENCE = {"evidence": ["现场照片 photo on site"]}


def _report(tenant: str, category: str, place: str, channel: str, text: str, source_id: str) -> dict:
    return {"tenant": tenant, "category_code": category, "place_code": place, "channel": channel,
            "description": text, "source": "seed", "source_id": source_id}


def seed_c_cases(run: str = "") -> list[ScriptedCase]:
    """Scenario C (docs/seeds.md block C), a grid worker's half year in :data:`SEED_C_GRID`: the
    sewer case that crossed into the neighbouring village, reported on the contradiction-resolution
    platform (channel ``platform``), accepted at the grid and reported up level by level (逐级上报:
    grid → community → street), filed by the street and dispatched to 城管, who repair it, checked by
    the street; a cooking-fume and a garbage nuisance the grid worker settles himself (自行处置, with
    a photo); a family dispute settled by the grid's mediation (院落/网格调解). Which matters, and
    that the sewer case went beyond the grid, are the summary's; one case of each kind, the
    channels and the roles that act are generator choices. ``run`` makes the source ids unique."""
    t, g = SEED_C_TENANT, SEED_C_GRID
    sewer = ScriptedCase("C-下水道堵塞", _report(t, "100401", g, "platform", "下水道堵塞，管线与邻村交界，上报矛盾化解平台",
                                              f"C{run}-1"), "reported", (
        ("accept", "grid_worker", {}, "accepted"),
        ("escalate", "grid_worker", {}, "accepted"),  # grid → community (网格处理不了)
        ("escalate", "community_staff", {}, "accepted"),  # community → street
        ("file", "street_staff", {"target_department": "urban_management"}, "dispatched"),
        ("acknowledge", "department_staff", {}, "acknowledged"),
        ("start", "department_staff", {}, "in_progress"),
        ("resolve", "department_staff", {"outcome": "resolved"}, "checking"),
        ("verify_pass", "street_staff", {}, "closed"),
    ))
    own = [ScriptedCase(f"C-{name}", _report(t, code, g, "phone", text, f"C{run}-{k}"), "reported", (
        ("accept", "grid_worker", {}, "accepted"),
        ("self_handle", "grid_worker", _EVIDENCE, "closed"),
    )) for k, (code, name, text) in enumerate((("100110", "油烟扰民", "楼下餐馆油烟扰民"),
                                               ("100102", "垃圾扰民", "楼道堆放垃圾扰民")), start=2)]
    dispute = ScriptedCase("C-家庭纠纷", _report(t, "300101", g, "grid_worker", "家庭纠纷，网格员上门调解", f"C{run}-4"),
                           "mediating", (("mediation_agreement", "mediator", {}, "closed"),))
    return [sewer, *own, dispute]


#: docs/seeds.md block D, verbatim: family disputes mediated (调解家庭纠纷) 4.
SEED_D_DISPUTES = 4


def seed_d_cases(run: str = "") -> list[ScriptedCase]:
    """Scenario D (docs/seeds.md block D), a community women's-federation officer's year in
    :data:`SEED_D_COMMUNITY`: the 4 family disputes mediated (the summary's figure), reported by the
    grid workers of the community's grids in turn and mediated at the grid; the fourth fails there
    and is settled by the community's mediation committee (the ladder of block E). The places and
    the one failure are generator choices; the trainings, lectures, screenings, consultations and
    visits are not cases and are not modelled."""
    out = []
    for k in range(1, SEED_D_DISPUTES + 1):
        grid = f"{SEED_D_COMMUNITY}{(k - 1) % 3 + 1:03d}"
        steps: tuple = (("mediation_agreement", "mediator", {}, "closed"),)
        if k == SEED_D_DISPUTES:
            steps = (("mediation_failed", "mediator", {}, "mediating"), *steps)
        out.append(ScriptedCase(f"D-家庭纠纷{k}", _report(SEED_D_TENANT, "300101", grid, "grid_worker",
                                                      "家庭纠纷，妇联参与调解", f"D{run}-{k}"), "mediating", steps))
    return out
