"""Categories from text at intake (issue 15; docs/classifier.md §3).

- A report without ``category_code`` (or with the importers' ``未分类``) gets the tenant's model's
  prediction: ``predicted`` when the top probability reaches the tenant's ``text.threshold``, else
  ``未分类`` (no routing rule names it: dispatch sends it to triage) with ``unclassified`` and the
  top three suggestions (shared/domain/textclass.py ``decide``).
- A report with a code checks it: a taxonomy code, a category one of the tenant's routing rules
  names, or a label of the tenant's model; otherwise :func:`unknown_category` answers 422 with the
  nearest valid codes.

Models come from ``INTAKE_CLASSIFIER_MODELS`` (``tenant=path;tenant=path``), loaded once at start;
a tenant without a model keeps today's behaviour (its reports without a code stay unclassified).
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from services.intake.domain.taxonomy import taxonomy
from services.intake.schemas import ReportIn
from shared.domain.pii import mask_text
from shared.domain.tenants import TenantConfig
from shared.domain.textclass import UNCLASSIFIED, decide, nearest_codes

if TYPE_CHECKING:
    from shared.platform import textmodel

log = logging.getLogger(__name__)


class ClassifierSettingError(ValueError):
    """``INTAKE_CLASSIFIER_MODELS`` is malformed or names a file that is not a model."""


@dataclass(frozen=True)
class Classified:
    """How a report's category came about (stored beside it: intake.reports ``category_source`` …)."""

    category_source: str
    model_version: str | None = None
    confidence: float | None = None
    suggestions: tuple[dict, ...] = ()

    def columns(self) -> dict:
        return {"category_source": self.category_source, "model_version": self.model_version,
                "category_confidence": self.confidence,
                "category_suggestions": list(self.suggestions) if self.suggestions else None}

    def answer(self) -> dict:
        """The fields of the POST answer."""
        return {"category_source": self.category_source, "model_version": self.model_version,
                "confidence": self.confidence, "suggestions": list(self.suggestions)}


REPORTED = Classified("reported")


def parse_models(spec: str) -> dict[str, Path]:
    """``"teddycup=/m/teddy.joblib;nyc=/m/nyc.joblib"`` -> ``{tenant: path}``."""
    out: dict[str, Path] = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        tenant, sep, path = part.partition("=")
        if not sep or not tenant.strip() or not path.strip():
            raise ClassifierSettingError(f"INTAKE_CLASSIFIER_MODELS: {part!r} is not tenant=path")
        out[tenant.strip()] = Path(path.strip())
    return out


class Classifiers:
    """The tenants' text models, loaded at start."""

    def __init__(self, models: dict[str, textmodel.TextModel] | None = None):
        self.models = dict(models or {})

    @classmethod
    def from_setting(cls, spec: str) -> Classifiers:
        """Load the models ``spec`` names. scikit-learn, SciPy and jieba are imported only when
        there is one: an intake without models stays about 100 MB smaller (issue 13, --soak)."""
        models = {}
        for tenant, path in parse_models(spec).items():
            from shared.platform import textmodel

            try:
                model = textmodel.load(path)
            except (OSError, textmodel.ModelFileError, EOFError, ValueError) as exc:
                raise ClassifierSettingError(f"INTAKE_CLASSIFIER_MODELS: {tenant}: {exc}") from None
            model.probabilities("预热 warm-up")  # jieba loads its dictionary at first use
            log.info("text model %s for tenant %s (n=%s, macro_f1=%s)", model.version, tenant, model.info.n,
                     model.info.macro_f1)
            models[tenant] = model
        if models:
            # A model is ~100,000 long-lived objects (vocabularies, jieba's dictionary): a full
            # collection of the cyclic GC took 45 ms with one loaded, 5 ms without. They live as
            # long as the process, so they are moved out of the collector's sight (gc.freeze).
            gc.collect()
            gc.freeze()
        return cls(models)

    def valid_codes(self, config: TenantConfig) -> dict[str, str]:
        """code -> name of the categories a report of ``config``'s tenant may name."""
        codes = {c.code: c.name_zh for c in taxonomy().categories}
        codes |= {r.category: r.category for r in config.routing.rules if r.category}
        model = self.models.get(config.tenant)
        if model is not None:
            codes |= {label: label for label in model.info.labels}
        return codes

    def classify(self, report: ReportIn, config: TenantConfig, masked: str | None = None) -> tuple[ReportIn, Classified]:
        """The report with its category filled in when it had none (see the module docstring);
        ``masked``: ``mask_text(report.description)``, if the caller has it already."""
        if report.category_code not in (None, UNCLASSIFIED):
            return report, REPORTED
        model = self.models.get(report.tenant)
        if model is None or not report.description.strip():
            return report.model_copy(update={"category_code": UNCLASSIFIED}), Classified("unclassified")
        text = masked if masked is not None else mask_text(report.description)
        decision = decide(model.masked_probabilities(text), config.text.threshold)
        suggestions = tuple({"category_code": s.category_code, "confidence": s.confidence}
                            for s in decision.suggestions)
        code = decision.category_code or UNCLASSIFIED
        return (report.model_copy(update={"category_code": code}),
                Classified(decision.category_source, model.version, decision.confidence, suggestions))


def unknown_category(classifiers: Classifiers, report: ReportIn, config: TenantConfig) -> list[str] | None:
    """The nearest valid codes when ``report.category_code`` is not a valid code of the tenant,
    else ``None`` (also for a report without a code, and for a historical record: ``history``)."""
    code = report.category_code
    if code in (None, UNCLASSIFIED) or report.history is not None:  # history keeps its source's own (issue 16)
        return None
    valid = classifiers.valid_codes(config)
    if code in valid:
        return None
    return nearest_codes(code, valid)
