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

PARTITIONS = 4
"""Partitions per topic: room for up to 4 instances of a consumer group. Four is also the count the
embedded Tansu broker gives a topic it creates by itself (it cannot be told not to, and has no
CreatePartitions to grow one): after Tansu restarts empty, a consumer that reconnects before
``shared.platform.kafka.ensure_topics`` runs creates the topic with 4 partitions, and with any other count
here the relays' producers, which keep the old layout, would write to partitions the consumers are
never assigned (seen in chaos scenario b). Production Kafka has topic auto-creation off
(docker-compose.yml ``KAFKA_AUTO_CREATE_TOPICS_ENABLE``)."""


def dlq(topic: str) -> str:
    """Return the dead-letter topic of ``topic`` (``"<topic>.dlq"``)."""
    return f"{topic}.dlq"


SOURCE_TOPICS: tuple[str, ...] = (TOPIC_REPORTED, TOPIC_LIFECYCLE, TOPIC_ACTIONS, TOPIC_PATROLS)
ALL_TOPICS: tuple[str, ...] = SOURCE_TOPICS + tuple(dlq(t) for t in SOURCE_TOPICS)
