"""Reporting's fold: events into ``reporting.case_facts`` and ``reporting.patrols``.

The merge rules live in :mod:`shared.domain.casefacts` (shared with intake's case view).
"""

from services.reporting.db import case_facts, patrols
from shared.domain.casefacts import CaseFold, fact_values

apply_events = CaseFold(case_facts, patrols)
"""``await apply_events(conn, events)``: fold events in the caller's transaction."""

__all__ = ["apply_events", "fact_values"]
