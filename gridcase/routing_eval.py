"""Routing against history (issue 3 item 8): route every imported record anew and compare.

For each record of an import file that carries a recorded department (``history.department``:
NYC ``Agency``, SF ``Responsible.Agency``, Baltimore ``Agency``, Boston ``SUBJECT``, as department
codes), :func:`services.dispatch.domain.routing.route` routes the record with the tenant's rules
(``deploy/tenants/<tenant>.yaml``) as if it had just been reported (category, place, and its
report time for ``hours`` rules). The share of records whose routed department equals the
recorded one is the accuracy (准确派遣率). A record routed to triage or mediation counts as
routed to ``triage`` / ``mediation`` and is wrong unless that is what the source recorded.

Records without a recorded department (Teddy Cup, Fuzhou) are counted as ``unrecorded`` and left
out of the accuracy; rejected rows are counted as ``rejected``.

With a text model (``gridcase import --route --model MODEL``, issue 15; docs/classifier.md §3), a
record the rules send to triage (``triage:…``: its category is one no rule names) is classified
from its description; when the prediction reaches ``threshold`` and the predicted category routes
to a department, that department is taken and the record counted in ``by_model``.

Pure: reads the file and the tenant, no network, no database. Memory is constant in the number
of rows apart from one counter per distinct (recorded, routed) pair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from services.dispatch.domain.routing import route
from services.intake.importers.formats import iter_records
from services.intake.schemas import ReportIn, RowError
from shared.domain.taxonomy import Taxonomy, load_taxonomy
from shared.domain.tenants import TenantConfig, load_tenant
from shared.domain.textclass import decide


@dataclass(frozen=True)
class RoutingEvaluation:
    """Outcome of routing a file's records anew.

    - ``rows``: records read (accepted and rejected).
    - ``rejected``: rows the importer rejected (not routed).
    - ``unrecorded``: accepted records without a recorded department (not compared).
    - ``evaluated``: records compared (accepted, with a recorded department).
    - ``correct``: of those, routed to the recorded department.
    - ``confusions``: ``(recorded, routed, count)`` for every disagreeing pair, most frequent
      first (ties by recorded, then routed department); at most ``top`` entries.
    - ``by_rule``: ``(rule, count)`` of the rules that decided the evaluated records, most used
      first (e.g. ``triage:unknown-category`` counts records whose category no rule names).
    """

    rows: int
    rejected: int
    unrecorded: int
    evaluated: int
    correct: int
    confusions: tuple[tuple[str, str, int], ...]
    by_rule: tuple[tuple[str, int], ...]
    by_model: int = 0

    @property
    def accuracy(self) -> float | None:
        """``correct / evaluated`` (0..1), or ``None`` when nothing was evaluated."""
        return self.correct / self.evaluated if self.evaluated else None


def evaluate_records(
    records: Iterable[ReportIn | RowError],
    tenant: TenantConfig,
    taxonomy: Taxonomy | None = None,
    top: int = 10,
    model: Any = None,
    threshold: float | None = None,
) -> RoutingEvaluation:
    """Route ``records`` with ``tenant``'s rules and compare with their recorded departments.

    Args:
        records: import results (a :class:`RowError` counts as rejected).
        tenant: the tenant whose rules route (its ``routing.rules``, then taxonomy defaults).
        taxonomy: default handlers (default: the packaged taxonomy).
        top: how many confusions to keep (``>= 0``).
        model: a text model (shared/platform/textmodel.py ``TextModel``) to fall back on for
            records the rules send to triage; ``threshold``: its confidence threshold (default
            the tenant's ``text.threshold``).

    Returns:
        A :class:`RoutingEvaluation`.
    """
    taxonomy = taxonomy if taxonomy is not None else load_taxonomy()
    rows = rejected = unrecorded = evaluated = correct = 0
    wrong: Counter[tuple[str, str]] = Counter()
    rules: Counter[str] = Counter()
    by_model = 0
    threshold = tenant.text.threshold if threshold is None else threshold
    for record in records:
        rows += 1
        if isinstance(record, RowError):
            rejected += 1
            continue
        recorded = record.history.department if record.history is not None else None
        if not recorded:
            unrecorded += 1
            continue
        decision = route(record.category_code, record.place_code, tenant, taxonomy, at=record.reported_at)
        if model is not None and decision.department == "triage" and record.description.strip():
            guess = decide(model.probabilities(record.description), threshold)
            if guess.category_code is not None:
                fallback = route(guess.category_code, record.place_code, tenant, taxonomy, at=record.reported_at)
                if fallback.department != "triage":
                    decision = replace(fallback, rule=f"model:{fallback.rule}")
                    by_model += 1
        evaluated += 1
        rules[decision.rule] += 1
        if decision.department == recorded:
            correct += 1
        else:
            wrong[(recorded, decision.department)] += 1
    confusions = sorted(wrong.items(), key=lambda kv: (-kv[1], kv[0]))[: max(top, 0)]
    return RoutingEvaluation(
        rows=rows,
        rejected=rejected,
        unrecorded=unrecorded,
        evaluated=evaluated,
        correct=correct,
        confusions=tuple((r, d, n) for (r, d), n in confusions),
        by_rule=tuple(sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_model=by_model,
    )


def evaluate_file(
    path: str | Path,
    fmt: str,
    tenant: str | TenantConfig,
    *,
    tz: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    tenants_dir: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
    top: int = 10,
    model: Any = None,
) -> RoutingEvaluation:
    """Read an import file locally (:func:`services.intake.importers.formats.iter_records`) and evaluate
    its routing with :func:`evaluate_records`.

    Args:
        path: the import file (UTF-8; a BOM is ignored).
        fmt: an import format (``importers.FORMATS``).
        tenant: a tenant name (loaded from ``tenants_dir``, default ``deploy/tenants``) or config.
        tz: zone of naive source times; default the tenant's timezone (as intake does).
        mapping: the column mapping for ``fmt="csv"``.

    Raises:
        TenantConfigError: the tenant cannot be loaded.
        ValueError / UnknownFormat / OSError: as :func:`iter_records` and :func:`open`.
    """
    taxonomy = taxonomy if taxonomy is not None else load_taxonomy()
    config = tenant if isinstance(tenant, TenantConfig) else load_tenant(tenant, tenants_dir, taxonomy)
    with open(path, encoding="utf-8-sig", newline="") as stream:
        records = (row for _, row in iter_records(fmt, stream, config.tenant, tz or config.timezone, mapping=mapping))
        return evaluate_records(records, config, taxonomy, top, model=model)


def format_evaluation(ev: RoutingEvaluation, tenant: TenantConfig | None = None) -> str:
    """A short text report: accuracy (准确派遣率), counts, and the confusions as
    ``recorded -> routed  count`` (department labels from ``tenant`` when given)."""

    def label(code: str) -> str:
        local = tenant.department(code) if tenant is not None else None
        return f"{code} ({local.label})" if local is not None and local.label != code else code

    if ev.accuracy is None:
        head = "准确派遣率 routing accuracy: n/a (no record has a recorded department to compare with)"
    else:
        head = (f"准确派遣率 routing accuracy: {ev.accuracy:.2%} "
                f"({ev.correct} of {ev.evaluated} records with a recorded department)")
    lines = [
        head,
        f"rows read {ev.rows}, rejected {ev.rejected}, without recorded department {ev.unrecorded}",
    ]
    if ev.by_model:
        lines.append(f"routed by the text model (the rules did not know their category): {ev.by_model}")
    if ev.confusions:
        lines.append(f"top {len(ev.confusions)} confusions (recorded -> routed: count):")
        lines += [f"  {label(r)} -> {label(d)}: {n}" for r, d, n in ev.confusions]
    return "\n".join(lines)
