"""Reporting's event handler: the fold of every case and patrol event into
``reporting.case_facts``, ``reporting.case_steps`` and ``reporting.patrols`` (services/reporting/db.py).

The merge rules live in :mod:`shared.domain.casefacts` (shared with intake's case view); the
consumer (services/reporting/main.py) hands each batch to :data:`apply_events` in one
transaction, and ``gridcase reporting rebuild`` (gridcase/ops.py) folds the event log with it.
"""

from services.reporting.db import case_facts, case_steps, patrols
from shared.domain.casefacts import CaseFold

apply_events = CaseFold(case_facts, patrols, case_steps)
"""``await apply_events(conn, events)``: fold events in the caller's transaction."""
