"""Kafka clients for lambdalake (kafka-python): reachability, topics, producers."""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable, TopicAlreadyExistsError

from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError


def _unreachable(settings: Settings) -> LambdalakeError:
    return LambdalakeError(
        f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: start the local broker with "
        "`lambdalake kafka start`, or point LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS at your cluster"
    )


def admin_client(settings: Settings, timeout_s: float = 10.0) -> KafkaAdminClient:
    """An admin client, or a one-line error when no broker answers."""
    try:
        return KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers,
                                request_timeout_ms=int(timeout_s * 1000),
                                client_id="lambdalake-admin")
    except (NoBrokersAvailable, KafkaError, OSError, ValueError):
        raise _unreachable(settings) from None


def reachable(settings: Settings, timeout_s: float = 5.0) -> bool:
    """Whether a broker at the bootstrap servers answers within `timeout_s`."""
    try:
        admin_client(settings, timeout_s).close()
    except LambdalakeError:
        return False
    return True


def ensure_topics(settings: Settings, *topics: str) -> None:
    """Create the topics that do not exist yet (with the configured partition count)."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, settings.kafka.topic_partitions, 1) for t in topics if t not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def delete_topics(settings: Settings, *topics: str) -> None:
    """Delete the topics that exist (the demo and tests start from empty topics)."""
    admin = admin_client(settings)
    try:
        doomed = [t for t in topics if t in set(admin.list_topics())]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def producer(settings: Settings, **config: object) -> KafkaProducer:
    """A producer with acks=all and idempotence-friendly retries, or a one-line error."""
    options = {"acks": "all", "linger_ms": 5, "batch_size": 256 * 1024, "retries": 5, **config}
    try:
        return KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, **options)
    except (NoBrokersAvailable, KafkaError, OSError, ValueError):
        raise _unreachable(settings) from None


def offset_ranges(settings: Settings, topic: str, timeout_s: float = 10.0
                  ) -> dict[int, tuple[int, int]]:
    """(earliest, end) offset of each partition of `topic` ({} when the topic does not exist):
    earliest is the first record retention has kept, end the next offset to be written."""
    from kafka import KafkaConsumer, TopicPartition

    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers,
                                 enable_auto_commit=False,
                                 request_timeout_ms=int(timeout_s * 1000) + 1000,
                                 api_version_auto_timeout_ms=int(timeout_s * 1000))
    except (NoBrokersAvailable, KafkaError, OSError, ValueError):
        raise _unreachable(settings) from None
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return {}
        earliest = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        return {tp.partition: (earliest[tp], end[tp]) for tp in partitions}
    except KafkaError:
        raise _unreachable(settings) from None
    finally:
        consumer.close()


def published_keys(settings: Settings, topic: str, keys: set[bytes],
                   lookback: int = 10_000) -> set[bytes]:
    """Which of `keys` are among the last `lookback` records of each partition of `topic`."""
    from kafka import KafkaConsumer, TopicPartition

    if not keys:
        return set()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers,
                             enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return set()
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - lookback))
        found = set()
        for message in consumer:
            if message.key in keys:
                found.add(message.key)
            if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                break
        return found
    finally:
        consumer.close()
