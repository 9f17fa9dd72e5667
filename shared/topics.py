"""Kafka topic names, in one place.

Every event of a case is keyed by its ``case_id``. ``dlq(topic)`` names the dead-letter topic of a
topic (``<topic>.dlq``), where consumers put records they can never process, with the reason in
headers.
"""

TOPIC_REPORTED = "gridcase.case.reported"
"""CaseReported events, written by intake (through its outbox)."""

TOPIC_LIFECYCLE = "gridcase.case.lifecycle"
"""CaseDispatched / CaseTransferred / CaseClosed / CaseStatusRecorded, written by dispatch."""

TOPIC_ACTIONS = "gridcase.case.actions"
"""CaseActionRequested commands, written by intake (actor endpoints), read by dispatch."""

TOPIC_PATROLS = "gridcase.patrol.recorded"
"""PatrolRecorded events, written by intake, read by reporting."""

PARTITIONS = 6
"""Partitions per topic: room for up to 6 instances of a consumer group."""


def dlq(topic: str) -> str:
    """Return the dead-letter topic of ``topic`` (``"<topic>.dlq"``)."""
    return f"{topic}.dlq"


SOURCE_TOPICS: tuple[str, ...] = (TOPIC_REPORTED, TOPIC_LIFECYCLE, TOPIC_ACTIONS, TOPIC_PATROLS)
ALL_TOPICS: tuple[str, ...] = SOURCE_TOPICS + tuple(dlq(t) for t in SOURCE_TOPICS)
