"""Kafka helpers at the edge: explicit topic creation and producer/consumer settings.

Settings follow docs/architecture.md §3: topics are created explicitly (partition count matters; older
Tansu builds do not auto-create), consumers start at ``earliest`` with short session timeouts, and
producers do not ask for idempotence (Tansu's memory engine cannot serve InitProducerId; exactly-once
effects come from the outbox and idempotent consumers instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.contract.topics import ALL_TOPICS
from shared.platform.settings import ServiceSettings

log = logging.getLogger(__name__)


def configured_partitions() -> int:
    """Partitions of a topic gridcase creates: the deployment setting ``KAFKA_TOPIC_PARTITIONS``
    (:class:`~shared.platform.settings.ServiceSettings`, docs/operations.md "Scaling"), 4 by default."""
    return ServiceSettings().kafka_topic_partitions


async def ensure_topics(
    bootstrap: str,
    topics: tuple[str, ...] = ALL_TOPICS,
    partitions: int | None = None,
    replication_factor: int = 1,
    timeout_s: float = 60.0,
) -> list[str]:
    """Create ``topics`` that do not exist yet (``partitions`` each, default
    :func:`configured_partitions`); return the names created. An existing topic keeps its count.

    Retries while the broker is not reachable, up to ``timeout_s`` seconds (then raises the last
    ``KafkaError``). A production Kafka wants ``replication_factor=3`` (README, "Production Kafka").
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(t, num_partitions=partitions or configured_partitions(),
                                  replication_factor=replication_factor) for t in missing]
                    )
            return missing
        except (KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("broker not ready (%s), retrying", exc)
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """A producer for the relays: ``acks='all'`` (a production cluster with ``min.insync.replicas=2``
    then keeps an acked record through one broker loss), no idempotence (see module docstring)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )
