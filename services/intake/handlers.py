"""The case-view consumer's batch handler (consumer group ``gridcase-intake-view``): dispatch's
lifecycle events keep ``intake.case_view`` / ``intake.case_events`` and the audit trail up to date,
so intake can show a case's state and history and check actions without calling dispatch.

:func:`apply_lifecycle` (subscribed by services/intake/main.py through the service kit) runs inside
the batch's transaction (shared/platform/consumer.py ``BatchProcessor`` dedupes redeliveries
first); it is a plain function of a connection and the events, testable without a broker or an app.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import db
from services.intake.store import keep_lifecycle_events
from shared.contract.topics import TOPIC_LIFECYCLE
from shared.domain.casefacts import CaseFold

#: The view's consumer: its group, the topics it reads, its name in metrics and dead letters.
GROUP_ID = "gridcase-intake-view"
TOPICS = (TOPIC_LIFECYCLE,)
CONSUMER = "intake-view"

_fold = CaseFold(db.case_view)


async def apply_lifecycle(conn: AsyncConnection, events) -> None:
    """Fold lifecycle events into the view and keep them as the case's history and audit."""
    await _fold(conn, events)
    await keep_lifecycle_events(conn, events)
