"""Dispatch's own Prometheus metrics. The service kit (shared/platform/kit.py) adds the outbox,
consumer, lag and HTTP metrics; names carry the ``dispatch_`` prefix (README, monitoring)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class DispatchMetrics:
    """``dispatch_cases_dispatched_total{tenant,target_kind}`` and ``dispatch_supervisions_total``."""

    dispatched: Counter
    supervised: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> DispatchMetrics:
        """Create the metrics in ``registry`` (once per registry)."""
        return cls(
            dispatched=Counter("dispatch_cases_dispatched_total", "Cases dispatched", ["tenant", "target_kind"],
                               registry=registry),
            supervised=Counter("dispatch_supervisions_total", "Deadline alerts fired (督办 and warnings)",
                               registry=registry),
        )
