"""The case-view consumer's batch handler (consumer group ``gridcase-intake-view``): dispatch's
lifecycle events keep ``intake.case_view`` (shared/domain/casefacts.py's fold with the closed-loop
rules, as reporting's ``case_facts``, and the rung of services/intake/caseview.py) /
``intake.case_events``, the audit trail, the status of requested actions (``intake.case_actions``)
and the corrected category on the stored report (``intake.reports.category_corrected``, for
possible duplicates) up to date, so intake can show a case's state and history, and tell a
requester what dispatch decided, without calling dispatch.

:func:`apply_lifecycle` (subscribed by services/intake/main.py through the service kit) runs inside
the batch's transaction (shared/platform/consumer.py ``BatchProcessor`` dedupes redeliveries
first); it is a plain function of a connection and the events, testable without a broker or an app.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import db
from services.intake.caseview import fold_view
from services.intake.store import decide_actions, keep_lifecycle_events
from services.intake.textstore import keep_corrected_categories
from shared.contract.topics import TOPIC_LIFECYCLE
from shared.domain.casefacts import CaseFold

#: The view's consumer: its group, the topics it reads, its name in metrics and dead letters.
GROUP_ID = "gridcase-intake-view"
TOPICS = (TOPIC_LIFECYCLE,)
CONSUMER = "intake-view"

_fold = CaseFold(db.case_view)


async def apply_lifecycle(conn: AsyncConnection, events) -> None:
    """Fold lifecycle events into the view, copy a corrected category onto the stored report, keep
    the events as the case's history and audit, and mark the requested actions they answer applied
    or refused."""
    await _fold(conn, events)
    await fold_view(conn, events)
    await keep_corrected_categories(conn, events)
    await keep_lifecycle_events(conn, events)
    await decide_actions(conn, events)
