"""Intake's Prometheus metrics (names are part of the operations contract: dashboards and alerts
use them). Built once per app on the app's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.intake.importers.formats import FORMATS

#: ``source`` values used as a metric label; anything else is counted as ``other`` (labels stay
#: bounded whatever a client sends).
KNOWN_SOURCES = frozenset(FORMATS) | {"api", "open311", "jsonl", "csv"}


def source_label(source: str) -> str:
    """The ``source`` label of a report: the source itself when known, else ``other``."""
    return source if source in KNOWN_SOURCES else "other"


@dataclass(frozen=True)
class IntakeMetrics:
    """The metrics intake updates: reports accepted and rejected (by tenant and source), the outbox
    relay's progress, and reporter records anonymised."""

    accepted: Counter
    rejected: Counter
    published: Counter
    relay_errors: Counter
    pending: Gauge
    anonymised: Counter

    @classmethod
    def on(cls, registry: CollectorRegistry) -> "IntakeMetrics":
        """Create the metrics on ``registry``."""
        return cls(
            accepted=Counter("intake_reports_accepted_total", "Reports accepted", ["tenant", "source"],
                             registry=registry),
            rejected=Counter("intake_reports_rejected_total", "Report rows rejected", ["tenant", "source"],
                             registry=registry),
            published=Counter("intake_outbox_published_total", "Outbox events published to Kafka", registry=registry),
            relay_errors=Counter("intake_outbox_publish_errors_total", "Failed outbox publish attempts",
                                 registry=registry),
            pending=Gauge("intake_outbox_pending_messages", "Outbox events not yet acknowledged by Kafka",
                          registry=registry),
            anonymised=Counter("intake_reporters_anonymised_total",
                               "Reports whose reporter data was erased after closure", registry=registry),
        )
