"""Intake's own Prometheus metrics (names are part of the operations contract: dashboards and
alerts use them). Built once per app on the service kit's registry; the outbox relay's
(``intake_outbox_*``), the case view's (``intake_view_*``) and the HTTP metrics are the kit's."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from services.intake.importers.formats import FORMATS

#: ``source`` values used as a metric label; anything else is counted as ``other`` (labels stay
#: bounded whatever a client sends).
KNOWN_SOURCES = frozenset(FORMATS) | {"api", "open311", "jsonl", "csv"}


def source_label(source: str) -> str:
    """The ``source`` label of a report: the source itself when known, else ``other``."""
    return source if source in KNOWN_SOURCES else "other"


@dataclass(frozen=True)
class IntakeMetrics:
    """The metrics intake updates: reports accepted and rejected (by tenant and source) and
    reporter records anonymised."""

    accepted: Counter
    rejected: Counter
    anonymised: Counter

    @classmethod
    def on(cls, registry: CollectorRegistry) -> IntakeMetrics:
        """Create the metrics on ``registry``."""
        return cls(
            accepted=Counter("intake_reports_accepted_total", "Reports accepted", ["tenant", "source"],
                             registry=registry),
            rejected=Counter("intake_reports_rejected_total", "Report rows rejected", ["tenant", "source"],
                             registry=registry),
            anonymised=Counter("intake_reporters_anonymised_total",
                               "Reports whose reporter data was erased after closure", registry=registry),
        )
