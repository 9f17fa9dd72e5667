"""gridcase/seeds.py: scenario A facts (docs/seeds.md block A) in the ReportIn format."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gridcase.seeds import generate_seed_a
from services.intake.schemas import ReportIn
from shared.domain.taxonomy import load_taxonomy
from shared.domain.tenants import load_tenant

REPO = Path(__file__).resolve().parents[2]

# docs/seeds.md block A: 排查梳理 5410 户, 已办结 3644, 正在办理 627, 转办 1139.
TOTAL, CLOSED, OPEN, TRANSFERRED = 5410, 3644, 627, 1139


@pytest.fixture(scope="module")
def lines():
    return [json.dumps(r, ensure_ascii=False) for r in generate_seed_a()]


@pytest.fixture(scope="module")
def reports(lines):
    return [ReportIn.model_validate_json(line) for line in lines]


def test_yields_5410_valid_reports(lines, reports):
    assert len(lines) == TOTAL
    assert len(reports) == TOTAL
    assert {r.tenant for r in reports} == {"demo-market"}
    assert {r.channel for r in reports} == {"grid_worker"}
    assert {r.request_type for r in reports} == {"排查"}
    assert {r.source for r in reports} == {"seed-a"}
    assert [r.source_id for r in reports] == [f"A-{n:05d}" for n in range(1, TOTAL + 1)]
    assert all(r.reporter is None and r.history is not None for r in reports)


def test_counts_match_seed_figures(reports):
    closed = [r for r in reports if r.history.closed]
    transferred = [r for r in reports if r.history.transfers]
    open_in_remit = [r for r in reports if not r.history.closed and not r.history.transfers]
    assert (len(closed), len(open_in_remit), len(transferred)) == (CLOSED, OPEN, TRANSFERRED)
    assert len(closed) + len(open_in_remit) + len(transferred) == TOTAL
    assert round(100 * len(closed) / TOTAL, 1) == 67.4  # 办结率 67.4 % in the summary
    assert {r.history.status for r in open_in_remit} == {"正在办理"}
    assert all(r.history.department == "market_regulation" for r in reports)


def test_closed_and_open_cases_are_unlicensed_shops(reports):
    for r in reports:
        if not r.history.transfers:
            assert r.category_code == "500101"
            if r.history.closed:
                assert r.history.closed_at is not None
                assert r.history.closed_at > r.reported_at
                assert (r.history.closed_at - r.reported_at).days <= 5
            else:
                assert r.history.closed_at is None


def test_transfers_go_to_licensing_department(reports):
    taxonomy = load_taxonomy()
    trades = Counter()
    for r in reports:
        if not r.history.transfers:
            continue
        category = taxonomy.category(r.category_code)
        assert category is not None and category.kind == "licence"
        assert not r.history.closed
        (transfer,) = r.history.transfers
        assert transfer.to_department == category.department
        # 转办卫生、环保等部门: transferred to another body, never back to the bureau itself
        assert transfer.to_department != "market_regulation"
        assert transfer.at > r.reported_at
        trades[r.category_code] += 1
    assert set(trades) == {c.code for c in taxonomy.categories_of_kind("licence") if c.department != "market_regulation"}
    assert sum(trades.values()) == TRANSFERRED


def test_places_are_all_grids_of_demo_market(reports):
    tenant = load_tenant("demo-market", REPO / "deploy" / "tenants")
    grids = {p.code for p in tenant.places_at("grid")}
    used = Counter(r.place_code for r in reports)
    assert set(used) == grids
    assert max(used.values()) - min(used.values()) <= 1


def test_times_within_three_months_from_start(reports):
    first = min(r.reported_at for r in reports)
    last = max(r.reported_at for r in reports)
    assert first.date().isoformat() >= "2026-03-02"
    assert last.date().isoformat() < "2026-06-01"
    assert all(r.reported_at.utcoffset().total_seconds() == 8 * 3600 for r in reports)


def test_no_personal_data_in_descriptions(reports):
    for r in reports:
        assert r.description and len(r.description) < 80
        assert not any(ch.isdigit() for ch in r.description)


def test_deterministic_across_runs(lines):
    again = [json.dumps(r, ensure_ascii=False) for r in generate_seed_a()]
    assert again == lines


def test_cli_writes_jsonl(tmp_path, lines):
    out = tmp_path / "a.jsonl"
    subprocess.run([sys.executable, "-m", "gridcase.cli", "seed-a", "--out", str(out)], check=True, cwd=REPO)
    written = out.read_text(encoding="utf-8").splitlines()
    assert len(written) == TOTAL
    assert [json.loads(x) for x in written] == [json.loads(x) for x in lines]
