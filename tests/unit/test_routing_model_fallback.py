"""``gridcase import --route --model``: records whose category no rule names are classified from
their text and routed by the predicted category (gridcase/routing_eval.py, docs/classifier.md §3).
Expected departments from shared/data/taxonomy.yaml: 100401 下水道堵塞 -> housing, 100102 垃圾扰民
-> urban_management; ``未分类`` is in no rule, so the rules alone send it to triage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gridcase.routing_eval import evaluate_records, format_evaluation
from services.intake.schemas import ReportIn
from shared.domain.tenants import load_tenant
from shared.platform import textmodel
from tests.textcorpus import corpus

GRID = "990102001001001"
AT = datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(scope="module")
def model():
    texts, labels = corpus(20)
    return textmodel.train(texts, labels, folds=None)


def record(category: str, text: str, department: str) -> ReportIn:
    return ReportIn(tenant="demo-grid", category_code=category, place_code=GRID, description=text,
                    reported_at=AT, history={"department": department})


def test_the_model_routes_what_the_rules_send_to_triage(model):
    records = [record("未分类", "小区下水道堵塞，污水外溢，井盖冒水", "housing"),
               record("未分类", "垃圾桶满溢，垃圾堆放没有清运", "urban_management"),
               record("100102", "下水道堵塞", "urban_management")]  # a known category: the rules decide
    config = load_tenant("demo-grid")
    without = evaluate_records(records, config)
    assert (without.correct, without.by_model) == (1, 0)
    with_model = evaluate_records(records, config, model=model)
    assert (with_model.correct, with_model.by_model) == (3, 2)
    assert "routed by the text model" in format_evaluation(with_model, config)


def test_below_the_threshold_stays_in_triage(model):
    records = [record("未分类", "小区下水道堵塞，污水外溢", "housing")]
    result = evaluate_records(records, load_tenant("demo-grid"), model=model, threshold=1.01)
    assert (result.correct, result.by_model) == (0, 0)
