"""Kafka for the bridge, the worker and the sink: topic names, topic creation, client factories.

Every topic is keyed by ``device_id``, so one device's events stay in order on one partition and
one worker owns the device. The names are defined, pure, in :mod:`twin_stream.domain.topics` and
re-exported here, next to the clients that use them.

This is kafka-python's edge: what it raises while topics are created or a client is made comes
out as :class:`~twin_stream.errors.KafkaUnavailable` (no broker answered in time),
:class:`~twin_stream.errors.KafkaError` (the broker refused) or
:class:`~twin_stream.errors.ConfigError` (options the client does not take), naming the
bootstrap servers and what was being done. A client whose constructor failed is closed: kafka-
python would leave its IO thread running.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from kafka import KafkaConsumer, KafkaProducer
from kafka import errors as kafka_errors
from kafka.admin import KafkaAdminClient, NewTopic

from twin_stream.domain.topics import KAFKA_TOPICS, kafka_topics
from twin_stream.errors import (
    ConfigError,
    KafkaError,
    KafkaUnavailable,
    TwinStreamError,
    map_exceptions,
)

__all__ = [
    "KAFKA_ERRORS",
    "KAFKA_TOPICS",
    "ensure_topics",
    "kafka_topics",
    "make_consumer",
    "make_producer",
]

#: kafka-python's errors in the tree (first match wins). A retriable error (a timeout: "Unable
#: to bootstrap", a broker not ready, no leader yet) means Kafka is not there for now;
#: kafka-python < 3 says so with NoBrokersAvailable.
KAFKA_ERRORS: Final[Mapping[type[BaseException], type[TwinStreamError]]] = {
    kafka_errors.KafkaConfigurationError: ConfigError,
    getattr(kafka_errors, "NoBrokersAvailable", kafka_errors.KafkaTimeoutError): KafkaUnavailable,
    kafka_errors.RetriableError: KafkaUnavailable,
    kafka_errors.KafkaError: KafkaError,
}

#: A client's constructor also rejects options it does not know with ValueError.
_CONSTRUCTOR_ERRORS: Final[Mapping[type[BaseException], type[TwinStreamError]]] = {
    **KAFKA_ERRORS,
    ValueError: ConfigError,
}


@contextmanager
def _constructing(
    client: type[Any], doing: str, bootstrap: str, options: Mapping[str, object]
) -> Iterator[dict[str, object]]:
    """The options to make one kafka-python client with, and the edge around making it: its
    errors become the tree's, and the network client it made is closed if it failed."""
    made: list[Any] = []
    network: Any = options.get("kafka_client") or client.DEFAULT_CONFIG["kafka_client"]

    def recording(**configs: Any) -> Any:
        made.append(network(**configs))
        return made[-1]

    try:
        with map_exceptions(_CONSTRUCTOR_ERRORS, f"kafka {bootstrap}: {doing}"):
            yield {**options, "kafka_client": recording}
    except BaseException:
        for net in made:
            net.close()
        raise


def ensure_topics(
    bootstrap: str,
    partitions: int,
    options: dict[str, object],
    topics: dict[str, str] = KAFKA_TOPICS,
) -> None:
    """Create every topic that does not exist yet (keyed topics need a fixed partition count)."""
    with _constructing(KafkaAdminClient, "creating topics", bootstrap, options) as configs:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **configs)
        try:
            existing = set(admin.list_topics())
            missing = [
                NewTopic(t, num_partitions=partitions, replication_factor=1)
                for t in topics.values()
                if t not in existing
            ]
            if missing:
                try:
                    admin.create_topics(missing)
                except kafka_errors.TopicAlreadyExistsError:  # another bridge created them first
                    pass
        finally:
            admin.close()


def make_producer(bootstrap: str, options: dict[str, object]) -> KafkaProducer:
    """An idempotent producer that waits for every in-sync replica."""
    with _constructing(KafkaProducer, "making a producer", bootstrap, options) as configs:
        return KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_block_ms=1000,  # never stall the bridge loop for long when Kafka is away
            **configs,
        )


def make_consumer(
    bootstrap: str, *topics: str, group_id: str, options: dict[str, object]
) -> KafkaConsumer:
    """A consumer of ``topics`` in ``group_id`` that commits only when told to (after what it
    read was handled) and starts a new group from the earliest offset."""
    with _constructing(KafkaConsumer, f"making a consumer of {group_id}", bootstrap, options) as c:
        return KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **c,
        )
