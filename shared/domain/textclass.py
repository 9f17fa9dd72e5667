"""Pure rules of text classification (issue 15): what a label is, how training texts are chosen,
how a prediction becomes a decision, and the nearest valid codes of an unknown one.

- A **label** is the category code an importer assigns to a record
  (services/intake/importers/codes.py ``category_code``): for the Teddy Cup formats the
  first-level class name itself (``城乡建设`` …, data README "teddycup2020c_fj2full…"), for the US
  formats the source's complaint type, for the JSON API a taxonomy code (``shared/data/taxonomy.yaml``).
- :func:`first_level` maps a label to its first-level label: a path label written
  ``一级/二级/三级`` (or with ``>``) keeps its first part (附件1's three-level shape, data README
  "teddycup2020c_fj1_label_taxonomy.csv"); any other label is already first-level.
- :func:`decide`: the top class is taken (``predicted``) when its probability reaches the tenant's
  threshold, else the report goes to triage (``unclassified``) with the top three suggestions.

Nothing here imports scikit-learn: the model lives in shared/platform/textmodel.py.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: How the case's category came about (intake ``category_source``; docs/classifier.md §3).
CATEGORY_SOURCES = ("reported", "predicted", "unclassified", "corrected")

#: Suggestions given with a prediction below the threshold (issue 15: "the top three suggestions").
TOP_SUGGESTIONS = 3

#: Default confidence threshold of a tenant (``classifier.threshold`` in deploy/tenants/<t>.yaml).
DEFAULT_THRESHOLD = 0.5

_PATH_SPLIT = re.compile(r"\s*[/>＞]\s*")
_SPACE = re.compile(r"\s+")
#: Characters compared at the end of a text to find the same message twice (see :func:`text_key`).
KEY_TAIL = 60


def first_level(label: str) -> str:
    """The first-level label of ``label`` (``"城乡建设/市政管理/道路"`` -> ``"城乡建设"``)."""
    label = label.strip()
    head = _PATH_SPLIT.split(label, maxsplit=1)[0]
    return head or label


def text_key(text: str) -> str:
    """The key under which two training texts are the same message: the last :data:`KEY_TAIL`
    non-space characters. 附件2's ``teddycup_messages`` description is title + body while
    ``teddycup_labelled`` holds the body alone (whitespace stripped by its author, data README),
    so the same message in both files ends alike; keeping one copy stops a message from sitting
    in a training fold and a test fold at once."""
    return _SPACE.sub("", text)[-KEY_TAIL:]


def dedupe(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(text, label)`` pairs with the first of every :func:`text_key` kept and empty texts dropped."""
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for text, label in pairs:
        key = text_key(text)
        if not key or key in seen:
            continue
        seen.add(key)
        kept.append((text, label))
    return kept


@dataclass(frozen=True)
class Suggestion:
    category_code: str
    confidence: float


@dataclass(frozen=True)
class Decision:
    """What intake does with a report that came without ``category_code``."""

    category_source: str  # "predicted" or "unclassified"
    category_code: str | None  # the predicted code, None when below the threshold
    confidence: float
    suggestions: tuple[Suggestion, ...] = field(default_factory=tuple)


def ranked(probabilities: Mapping[str, float], k: int = TOP_SUGGESTIONS) -> tuple[Suggestion, ...]:
    """The ``k`` most probable classes, most probable first (ties by code, so the order is stable)."""
    order = sorted(probabilities.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(Suggestion(code, round(float(p), 4)) for code, p in order[:k])


def decide(probabilities: Mapping[str, float], threshold: float) -> Decision:
    """The top class when its probability is at least ``threshold``; else triage with the top
    :data:`TOP_SUGGESTIONS`. An empty distribution (no model) is ``unclassified`` at 0."""
    top = ranked(probabilities)
    if not top:
        return Decision("unclassified", None, 0.0, ())
    best = top[0]
    if best.confidence >= threshold:
        return Decision("predicted", best.category_code, best.confidence, top)
    return Decision("unclassified", None, best.confidence, top)


def nearest_codes(code: str, known: Mapping[str, str] | Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` valid codes closest to an unknown ``code``: by the code's spelling
    (``100103`` -> ``100102``), then by the names (``known`` may map code -> name, so ``垃圾``
    finds 垃圾扰民). difflib ratio, cutoff 0.4; codes first, names fill the rest."""
    names = dict(known) if isinstance(known, Mapping) else {c: "" for c in known}
    out = difflib.get_close_matches(code, list(names), n=n, cutoff=0.4)
    if len(out) < n:
        by_name = {name: c for c, name in names.items() if name}
        for name in difflib.get_close_matches(code, list(by_name), n=n, cutoff=0.4):
            if by_name[name] not in out:
                out.append(by_name[name])
        # a name containing the code (垃圾 in 垃圾扰民) is near even when short
        for c, name in sorted(names.items()):
            if len(out) >= n:
                break
            if name and code in name and c not in out:
                out.append(c)
    return out[:n]


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in ``truth`` or ``predicted``
    (scikit-learn ``f1_score(average="macro")``); used by tests and the docs' hand checks."""
    classes = sorted(set(truth) | set(predicted))
    scores = []
    for c in classes:
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(truth, predicted, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t == c and p != c)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


#: The category of a record that has none (importers/mappings/teddycup_replies.yaml) and of a
#: report the model could not place above the threshold: not a label, never trained on.
UNCLASSIFIED = "未分类"
