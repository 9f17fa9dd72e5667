"""Intake's prediction (services/intake/classify.py ``Classifiers.classify``) reads the masked
description only, whether the caller masked it already (``POST /v1/reports`` masks once for the model
and the duplicate probe, services/intake/api/reports.py) or not (imports: ``Intake.store`` classifies
rows without a masked text), and both give the same category (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.intake.classify import Classifiers
from services.intake.schemas import ReportIn
from shared.domain.pii import mask_text
from shared.domain.tenants import load_tenant
from shared.platform import textmodel
from tests.textcorpus import corpus

PHONE, ID_NUMBER = "13912345678", "110101199003074514"
TEXT = f"楼下下水道堵塞，污水外溢到路面，电话{PHONE}，身份证{ID_NUMBER}"


class Spy(textmodel.TextModel):
    """The model, recording every text it is asked about."""

    def __init__(self, model: textmodel.TextModel):
        super().__init__(model.pipeline, model.info)
        self.seen: list[str] = []

    def masked_probabilities(self, masked: str) -> dict[str, float]:
        self.seen.append(masked)
        return super().masked_probabilities(masked)


def test_the_model_reads_the_masked_text_with_or_without_the_caller_s_masking():
    texts, labels = corpus(15, seed=3)
    spy = Spy(textmodel.train(texts, labels, folds=None))
    classifiers = Classifiers({"demo-grid": spy})
    config = load_tenant("demo-grid")
    report = ReportIn(tenant="demo-grid", place_code="990102001002001", description=TEXT,
                      reported_at=datetime(2026, 11, 29, 1, tzinfo=UTC))
    imported, how_imported = classifiers.classify(report, config)  # an import: no masked text given
    posted, how_posted = classifiers.classify(report, config, mask_text(report.description))  # the POST
    assert len(spy.seen) == 2 and spy.seen[0] == spy.seen[1] == mask_text(TEXT)
    assert not any(secret in text for text in spy.seen for secret in (PHONE, ID_NUMBER, PHONE[-8:]))
    # the sewer words (下水道, 堵塞, 污水, 外溢) are the 100401 topic's (tests/textcorpus.py)
    assert imported.category_code == posted.category_code == "100401"
    assert how_imported == how_posted and how_posted.category_source == "predicted"
    assert report.description == TEXT  # the report itself is not changed: intake's store masks it
