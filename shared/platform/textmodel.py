"""The text classifier (issue 15; docs/classifier.md §1): a scikit-learn pipeline, CPU only,
nothing downloaded at run time.

Features (``FeatureUnion``): TF-IDF over character 1–2-grams (Chinese words are one to a few
characters; n-grams need no dictionary) and TF-IDF over jieba word tokens, cut by rjieba (jieba-rs,
jieba's algorithm and dictionary in Rust, the dictionary inside the package: format 2). Python
jieba's cut was two thirds of a prediction's CPU (1.1 of 2.2 ms on the Teddy Cup messages);
rjieba's takes 0.05 ms and gives the same tokens for 93 % of those messages (others differ in
number and punctuation runs, ``3-7`` whole), at the same cross-validated macro-F1 (0.8641 against
0.8635, docs/classifier.md §2). Both ``sublinear_tf`` and ``min_df=2``. Classifier: a linear SVM
(``LinearSVC``, balanced class weights) wrapped in ``CalibratedClassifierCV`` (sigmoid, 3 folds)
so that every class gets a probability (the confidence intake compares with the tenant's threshold).

Personal data: texts are masked with ``shared.domain.pii.mask_text`` before they reach the
pipeline; ``min_df=2`` keeps any term seen in a single message (a name, an address) out of the
vocabulary, and the vectorizers' ``stop_words_`` (the terms cut, which scikit-learn keeps "only
for introspection" and documents as safe to delete) are deleted before saving. The saved file holds
term statistics and weights, plus :class:`ModelInfo` (figures, label set, date), never a text.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from pathlib import Path

import joblib
import numpy as np
import rjieba
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from shared.domain.pii import mask_text

#: Format of the saved file; a loader refuses another. 2: word tokens by rjieba (1: Python jieba,
#: whose tokens differ for some texts: retrain with ``gridcase model train``).
FORMAT_VERSION = 2
MIN_DF = 2
CV_FOLDS = 5
CV_SEED = 20261206


def words(text: str) -> list[str]:
    """jieba's tokens of ``text`` (rjieba, HMM for unknown words as jieba's default) without
    blanks (module level: the pipeline is pickled)."""
    return [w for w in rjieba.cut(text) if w.strip()]


def build_pipeline() -> Pipeline:
    """A fresh, unfitted pipeline (see the module docstring)."""
    return Pipeline([
        ("features", FeatureUnion([
            ("chars", TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=MIN_DF, sublinear_tf=True)),
            ("words", TfidfVectorizer(tokenizer=words, token_pattern=None, lowercase=False, min_df=MIN_DF,
                                      sublinear_tf=True)),
        ])),
        ("classifier", CalibratedClassifierCV(LinearSVC(C=1.0, class_weight="balanced"), cv=3)),
    ])


@dataclass(frozen=True)
class Figures:
    """Cross-validated (or held-out) figures of a model on labelled texts."""

    macro_f1: float
    accuracy: float
    n: int
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: truth, columns: prediction, in ``labels`` order

    def line(self) -> str:
        return f"macro_f1={self.macro_f1:.4f} accuracy={self.accuracy:.4f} n={self.n}"

    def table(self) -> str:
        """The confusion table as text: one row per true label, one column per predicted label."""
        width = max([len(str(v)) for row in self.confusion for v in row] + [5])
        head = "truth \\ predicted".ljust(18) + " ".join(f"c{i}".rjust(width) for i in range(len(self.labels)))
        rows = [head]
        for i, (label, row) in enumerate(zip(self.labels, self.confusion, strict=True)):
            rows.append(f"c{i} {label}"[:18].ljust(18) + " ".join(str(v).rjust(width) for v in row))
        return "\n".join(rows)


def figures(truth: Sequence[str], predicted: Sequence[str]) -> Figures:
    labels = tuple(sorted(set(truth) | set(predicted)))
    cm = confusion_matrix(list(truth), list(predicted), labels=list(labels))
    return Figures(
        macro_f1=round(float(f1_score(truth, predicted, average="macro", labels=list(labels), zero_division=0)), 4),
        accuracy=round(float(accuracy_score(truth, predicted)), 4),
        n=len(truth),
        labels=labels,
        confusion=tuple(tuple(int(v) for v in row) for row in cm),
    )


def cross_validate(texts: Sequence[str], labels: Sequence[str], folds: int = CV_FOLDS) -> Figures:
    """Stratified ``folds``-fold cross-validated figures of :func:`build_pipeline` on the masked texts."""
    masked = [mask_text(t) for t in texts]
    y = np.asarray(labels)
    folds = max(2, min(folds, int(min(np.unique(y, return_counts=True)[1]))))
    predicted = cross_val_predict(build_pipeline(), masked, y,
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=CV_SEED))
    return figures(list(labels), [str(p) for p in predicted])


@dataclass
class ModelInfo:
    """What the saved file says about itself (docs/classifier.md §1)."""

    version: str
    trained_at: str
    n: int
    labels: list[str]
    sources: list[str]
    train_seconds: float
    macro_f1: float | None = None  # cross-validated, when trained with folds
    accuracy: float | None = None
    cv_folds: int | None = None
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)


#: scikit-learn's whitespace rule for character n-grams (``_VectorizerMixin._white_spaces``).
_WHITE_SPACES = re.compile(r"\s\s+")
_SHIFT = 21  # every code point is below 2**21: a bigram (a, b) is the key (a + 1) << 21 | b


class _CharGrams:
    """A fitted ``analyzer="char"``, ``ngram_range=(1, 2)`` vocabulary, counted without Python per
    character: the text's code points as a NumPy array, each unigram its code point, each bigram
    ``(a + 1) << 21 | b`` (so never equal to a unigram), counted by ``np.unique`` and looked up by
    ``np.searchsorted`` in the vocabulary's sorted keys. The same terms and counts as the
    vectorizer's own analyzer followed by a count (lowercase, runs of whitespace made one space,
    sklearn ``_char_ngrams``); tests/unit/test_textmodel.py compares the two. 0.14 → 0.03 ms for
    a 400-character message."""

    def __init__(self, vocabulary: dict[str, int], lowercase: bool):
        keys = np.fromiter((self._key(term) for term in vocabulary), dtype=np.int64, count=len(vocabulary))
        columns = np.fromiter(vocabulary.values(), dtype=np.intp, count=len(vocabulary))
        order = np.argsort(keys)
        self.keys, self.columns, self.lowercase = keys[order], columns[order], lowercase

    @staticmethod
    def _key(term: str) -> int:
        if len(term) == 1:
            return ord(term)
        return (ord(term[0]) + 1) << _SHIFT | ord(term[1])

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer) -> _CharGrams | None:
        """The fast form of ``vectorizer``, or ``None`` when it is not a plain char (1, 2) one."""
        plain = (vectorizer.analyzer == "char" and tuple(vectorizer.ngram_range) == (1, 2)
                 and vectorizer.preprocessor is None and vectorizer.strip_accents is None
                 and vectorizer.input == "content" and len(vectorizer.vocabulary_) > 0)
        return cls(vectorizer.vocabulary_, vectorizer.lowercase) if plain else None

    def counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and counts of the text's known n-grams."""
        if self.lowercase:
            text = text.lower()
        points = np.frombuffer(_WHITE_SPACES.sub(" ", text).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        terms, counts = np.unique(np.concatenate([points, (points[:-1] + 1) << _SHIFT | points[1:]]),
                                  return_counts=True)
        at = np.minimum(np.searchsorted(self.keys, terms), len(self.keys) - 1)
        known = self.keys[at] == terms
        return self.columns[at[known]], counts[known]


def _term_counts(analyzer, vocabulary: dict[str, int], text: str) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and counts of the known terms ``analyzer`` finds in ``text`` (counted and
    looked up in C loops: Counter, map, fromiter, no bytecode per term)."""
    counts = Counter(analyzer(text))
    idx = np.fromiter(map(vocabulary.get, counts, repeat(-1)), dtype=np.intp, count=len(counts))
    known = idx >= 0
    return idx[known], np.fromiter(counts.values(), dtype=np.int64, count=len(counts))[known]


class _LinearForm:
    """The fitted calibrated ensemble as one matrix product, for one report at a time.

    scikit-learn's ``predict_proba`` and even ``TfidfVectorizer.transform`` validate their input
    at every layer: most of a 2–6 ms prediction on this machine. The arithmetic is small and done
    here per text: each vectorizer's own analyzer gives the terms, their counts in the vocabulary
    become ``1 + log(count)`` (``sublinear_tf``), times ``idf_``, L2-normalised per vectorizer
    (sklearn ``TfidfTransformer``); for each ensemble member, scores ``x·W + c``, sigmoid
    calibration ``1 / (1 + exp(a·s + b))`` per class, normalised; the members averaged
    (sklearn.calibration ``_CalibratedClassifier`` and ``_SigmoidCalibration``, method
    ``sigmoid``). tests/unit/test_textmodel.py checks it equals ``predict_proba``.
    """

    @staticmethod
    def fits(pipeline: Pipeline) -> bool:
        """Whether the arithmetic above is the pipeline's: build_pipeline's shape — TF-IDF
        vectorizers with idf, counts not made binary, L2 or no norm, unweighted in the union, and a
        sigmoid-calibrated linear classifier. Another (a pipeline built by hand) is answered by
        ``predict_proba`` itself (:class:`TextModel`)."""
        features, calibrated = pipeline.named_steps.get("features"), pipeline.named_steps.get("classifier")
        if not isinstance(features, FeatureUnion) or features.transformer_weights is not None:
            return False
        if not isinstance(calibrated, CalibratedClassifierCV) or calibrated.method != "sigmoid":
            return False
        return (all(isinstance(v, TfidfVectorizer) and v.use_idf and not v.binary and v.norm in (None, "l2")
                    for _, v in features.transformer_list)
                and all(hasattr(m.estimator, "coef_") for m in calibrated.calibrated_classifiers_))

    def __init__(self, pipeline: Pipeline):
        self.parts = []  # (term counter, idf, column offset, sublinear, l2)
        offset = 0
        for _, v in pipeline.named_steps["features"].transformer_list:
            grams = _CharGrams.of(v)
            count = grams.counts if grams else partial(_term_counts, v.build_analyzer(), v.vocabulary_)
            self.parts.append((count, v.idf_, offset, v.sublinear_tf, v.norm == "l2"))
            offset += len(v.vocabulary_)
        calibrated = pipeline.named_steps["classifier"]
        self.classes = calibrated.classes_
        # the members' weights side by side: one gather of the text's rows and one product for all
        weights, intercepts, a, b, self.members, start = [], [], [], [], [], 0
        for member in calibrated.calibrated_classifiers_:
            estimator = member.estimator
            weights.append(estimator.coef_.T)
            intercepts.append(estimator.intercept_)
            a.append([c.a_ for c in member.calibrators])
            b.append([c.b_ for c in member.calibrators])
            width = estimator.coef_.shape[0]
            self.members.append((slice(start, start + width), np.searchsorted(self.classes, estimator.classes_)))
            start += width
        self.weights = np.ascontiguousarray(np.hstack(weights))
        self.intercepts, self.a, self.b = np.concatenate(intercepts), np.concatenate(a), np.concatenate(b)

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and TF-IDF values of one text (the union's row, without scipy)."""
        columns, values = [], []
        for count, idf, offset, sublinear, l2 in self.parts:
            idx, tf = count(text)
            if not len(idx):
                continue
            vals = (1.0 + np.log(tf) if sublinear else tf.astype(np.float64)) * idf[idx]
            if l2:
                vals /= np.sqrt(np.dot(vals, vals))
            columns.append(idx + offset)
            values.append(vals)
        if not columns:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        return np.concatenate(columns), np.concatenate(values)

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        k = len(self.classes)
        total = np.zeros((len(texts), k))
        rows = [self.features(text) for text in texts]
        scores = np.vstack([vals @ self.weights[idx] for idx, vals in rows]) + self.intercepts
        calibrated = 1.0 / (1.0 + np.exp(self.a * scores + self.b))
        for columns, index in self.members:
            p = calibrated[:, columns]
            proba = np.zeros_like(total)
            if k == 2:
                proba[:, 1] = p[:, 0]
                proba[:, 0] = 1.0 - proba[:, 1]
            else:
                proba[:, index] = p
                sums = proba.sum(axis=1, keepdims=True)
                proba = np.divide(proba, sums, out=np.full_like(proba, 1 / k), where=sums != 0)
            total += proba
        return total / len(self.members)


class TextModel:
    """A fitted pipeline and its :class:`ModelInfo`."""

    def __init__(self, pipeline: Pipeline, info: ModelInfo):
        self.pipeline = pipeline
        self.info = info
        self._linear = _LinearForm(pipeline) if _LinearForm.fits(pipeline) else None

    @property
    def version(self) -> str:
        return self.info.version

    def probabilities(self, text: str) -> dict[str, float]:
        """Class -> probability for one (unmasked or masked) text."""
        return self.masked_probabilities(mask_text(text))

    def masked_probabilities(self, masked: str) -> dict[str, float]:
        """Class -> probability for a text masked already (``mask_text``: what the model learnt from)."""
        if self._linear is None:
            proba, classes = self.pipeline.predict_proba([masked])[0], self.pipeline.classes_
        else:
            proba, classes = self._linear.proba([masked])[0], self._linear.classes
        return {str(c): float(p) for c, p in zip(classes, proba, strict=True)}

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(p) for p in self.pipeline.predict([mask_text(t) for t in texts])]

    def save(self, path: str | Path) -> None:
        """Write the model (joblib, uncompressed so that its bytes can be inspected)."""
        joblib.dump({"info": asdict(self.info), "pipeline": self.pipeline}, Path(path), compress=0)


def _scrub(pipeline: Pipeline) -> None:
    """Delete the vectorizers' ``stop_words_`` (every term cut by ``min_df``: the rare ones,
    where names and addresses are)."""
    for _, vectorizer in pipeline.named_steps["features"].transformer_list:
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_


def train(texts: Sequence[str], labels: Sequence[str], *, sources: Sequence[str] = (),
          folds: int | None = CV_FOLDS) -> TextModel:
    """Fit on masked ``texts``; with ``folds`` also cross-validate first and keep the figures."""
    if len(texts) != len(labels) or not texts:
        raise ValueError("need as many labels as texts, and at least one")
    if len(set(labels)) < 2:
        raise ValueError("need at least two distinct labels")
    cv = cross_validate(texts, labels, folds) if folds else None
    started = time.perf_counter()
    pipeline = build_pipeline()
    pipeline.fit([mask_text(t) for t in texts], list(labels))
    _scrub(pipeline)
    seconds = round(time.perf_counter() - started, 2)
    now = datetime.now(UTC)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer, compress=0)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:8]
    info = ModelInfo(
        version=f"{now:%Y%m%d%H%M%S}-{digest}",
        trained_at=now.isoformat(timespec="seconds"),
        n=len(texts),
        labels=sorted(str(c) for c in pipeline.classes_),
        sources=list(sources),
        train_seconds=seconds,
        macro_f1=cv.macro_f1 if cv else None,
        accuracy=cv.accuracy if cv else None,
        cv_folds=folds if cv else None,
    )
    return TextModel(pipeline, info)


class ModelFileError(ValueError):
    """The file is not a gridcase text model of this format."""


def load(path: str | Path) -> TextModel:
    """Read a model written by :meth:`TextModel.save`."""
    blob = joblib.load(Path(path))
    if not isinstance(blob, dict) or "pipeline" not in blob or "info" not in blob:
        raise ModelFileError(f"{path}: not a gridcase text model")
    info = ModelInfo(**blob["info"])
    if info.format_version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format {info.format_version}, expected {FORMAT_VERSION}")
    return TextModel(blob["pipeline"], info)
