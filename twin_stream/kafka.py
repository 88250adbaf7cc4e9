"""Kafka for the bridge, the worker and the sink: topic names, topic creation, client factories.

Every topic is keyed by ``device_id``, so one device's events stay in order on one partition and
one worker owns the device. The names are defined, pure, in :mod:`twin_stream.domain.topics` and
re-exported here, next to the clients that use them.

Two client libraries, each where it fits (docs/design.md, "Libraries, and why each is there"):

* confluent-kafka (librdkafka, in C) for the one hot path, the bridge's uplink producer
  (:func:`make_librdkafka_producer`): ~2 us per record on the caller's side instead of
  kafka-python's ~200, delivery reports through callbacks served by ``poll()``;
* kafka-python for topic creation and the low-rate consumers (the bridge's downlink, the sink),
  with the ``crc32c`` package installed so that it does not checksum record batches in pure
  Python.

Each client's security options (SASL, TLS) are made in :mod:`twin_stream.kafka_security`.

This is both libraries' edge: what they raise while topics are created or a client is made
comes out as :class:`~twin_stream.errors.KafkaUnavailable` (no broker answered in time),
:class:`~twin_stream.errors.KafkaError` (the broker refused) or
:class:`~twin_stream.errors.ConfigError` (options the client does not take), naming the
bootstrap servers and what was being done. A client whose constructor failed is closed: kafka-
python would leave its IO thread running, librdkafka its native threads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

import confluent_kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from twin_stream.domain.retention import Retention
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
    "close_librdkafka_producer",
    "ensure_topics",
    "is_transient",
    "kafka_topics",
    "read_to_end",
    "librdkafka_edge",
    "librdkafka_error",
    "make_consumer",
    "make_librdkafka_producer",
    "make_producer",
    "make_reader",
]

log = logging.getLogger(__name__)

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
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    retention: Retention | None = None,
) -> None:
    """Create every topic that does not exist yet (keyed topics need a fixed partition count),
    with ``replication_factor`` copies of which ``min_insync_replicas`` must have each write
    (with ``acks=all``): 1 and 1 on the local stack, 3 and 2 in production; each kept as long as
    ``retention`` says (default: :class:`~twin_stream.domain.retention.Retention`'s defaults),
    which is also set on the topics that exist already, so a changed setting takes effect."""
    if not 1 <= min_insync_replicas <= replication_factor:
        raise ConfigError(
            f"TWIN_KAFKA__MIN_INSYNC_REPLICAS ({min_insync_replicas}) must be between 1 and "
            f"TWIN_KAFKA__REPLICATION_FACTOR ({replication_factor})"
        )
    durable = {"min.insync.replicas": str(min_insync_replicas)}
    kept = (retention or Retention()).topic_configs()
    with _constructing(KafkaAdminClient, "creating topics", bootstrap, options) as configs:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **configs)
        try:
            existing = set(admin.list_topics())
            missing = [
                NewTopic(
                    t,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs={**durable, **kept.get(kind, {})},
                )
                for kind, t in topics.items()
                if t not in existing
            ]
            if missing:
                try:
                    admin.create_topics(missing)
                except kafka_errors.TopicAlreadyExistsError:  # another bridge created them first
                    pass
            align = [
                ConfigResource(ConfigResourceType.TOPIC, t, dict(kept[kind]))
                for kind, t in topics.items()
                if t in existing and kind in kept
            ]
            if align:
                _check_altered(admin.alter_configs(align, incremental=True))
        finally:
            admin.close()


def _check_altered(result: dict[str, dict[str, str]]) -> None:
    """Raise :class:`ConfigError` for a topic whose configs Kafka refused to set
    (kafka-python's ``alter_configs`` answers ``'OK'`` or the error, by type and name)."""
    refused = {name: said for by_name in result.values() for name, said in by_name.items()}
    refused = {name: said for name, said in refused.items() if said != "OK"}
    if refused:
        raise ConfigError(f"Kafka refused the retention of {refused}")


def is_transient(error: kafka_errors.KafkaError) -> bool:
    """Whether a kafka-python error means "not now" (a broker down or unreachable, a
    timeout), which a consumer waits out, rather than a refusal.

    >>> is_transient(kafka_errors.KafkaConnectionError("111 ECONNREFUSED"))
    True
    >>> is_transient(kafka_errors.CommitFailedError())
    False
    """
    return bool(getattr(error, "retriable", False)) or isinstance(
        error, (kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError)
    )


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


def make_reader(bootstrap: str, options: dict[str, object]) -> KafkaConsumer:
    """A consumer outside any group, for tools that read a topic and commit nothing (``twin-
    stream dlq``): the caller assigns partitions and seeks."""
    with _constructing(KafkaConsumer, "making a reader", bootstrap, options) as c:
        return KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **c
        )


def read_to_end(
    reader: KafkaConsumer, topic: str, partitions: list[int], since: datetime | None = None
) -> Iterator[tuple[int, Any]]:
    """(partition, record) of every record on ``partitions`` of ``topic``, oldest first per
    partition, from ``since`` (record time; None: the start) up to the end each partition had
    when reading began: a :func:`make_reader`'s whole read (``twin-stream dlq``, ``privacy
    scan``)."""
    assigned = [TopicPartition(topic, p) for p in partitions]
    reader.assign(assigned)
    ends = reader.end_offsets(assigned)
    if since is not None:
        starts = reader.offsets_for_times(dict.fromkeys(assigned, int(since.timestamp() * 1000)))
        for tp in assigned:
            found = starts.get(tp)
            reader.seek(tp, found.offset if found is not None else ends[tp])
    else:
        reader.seek_to_beginning(*assigned)
    left = {tp for tp in assigned if reader.position(tp) < ends[tp]}
    while left:
        for tp, batch in reader.poll(timeout_ms=1000).items():
            for record in batch:
                if record.offset < ends[tp]:
                    yield tp.partition, record
        left = {tp for tp in left if reader.position(tp) < ends[tp]}


# --- confluent-kafka (librdkafka): the bridge's uplink producer ---------------------------------

#: librdkafka's errors (by name: its local ones begin with "_") for "no broker answered": down,
#: unreachable, not resolved, timed out.
_UNREACHABLE: Final = frozenset(
    {
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "_RESOLVE",
        "_TIMED_OUT",
        "_TIMED_OUT_QUEUE",
        "_MSG_TIMED_OUT",
        "_WAIT_COORD",
    }
)

#: ... and for options it does not take (an unknown name, a bad value or type).
_BAD_OPTION: Final = frozenset({"_INVALID_ARG", "_INVALID_TYPE"})


def librdkafka_error(error: confluent_kafka.KafkaError | None) -> type[TwinStreamError]:
    """The class of the tree for one librdkafka error. confluent-kafka raises one exception
    class, ``KafkaException``, for all of them: what it is depends on the error's code."""
    if error is None:
        return KafkaError
    if error.name() in _BAD_OPTION:
        return ConfigError
    if error.name() in _UNREACHABLE or (error.retriable() and not error.fatal()):
        return KafkaUnavailable
    return KafkaError


@contextmanager
def librdkafka_edge(context: str) -> Iterator[None]:
    """confluent-kafka's edge, drawn as :func:`~twin_stream.errors.map_exceptions` draws the
    others: a ``KafkaException`` comes out as the class :func:`librdkafka_error` picks for the
    error it carries, ``f"{context}: {what librdkafka said} [{its error's name}]"``, from the
    original; an argument of the wrong type (``TypeError``) as a ConfigError."""
    try:
        yield
    except confluent_kafka.KafkaException as exc:
        carried = exc.args[0] if exc.args else None
        if not isinstance(carried, confluent_kafka.KafkaError):
            with map_exceptions({confluent_kafka.KafkaException: KafkaError}, context):
                raise
        said = " ".join(carried.str().split())
        raise librdkafka_error(carried)(f"{context}: {said} [{carried.name()}]") from exc
    except TypeError:
        with map_exceptions({TypeError: ConfigError}, context):
            raise


_librdkafka_log = logging.getLogger("twin_stream.kafka.librdkafka")


def _log_librdkafka_error(error: confluent_kafka.KafkaError) -> None:
    """librdkafka's error callback: it goes on by itself (reconnects, retries), so this only
    says so; a fatal error also fails every queued record, which the uplink sees."""
    level = logging.ERROR if error.fatal() else logging.WARNING
    _librdkafka_log.log(level, "librdkafka: %s", error)


def make_librdkafka_producer(
    bootstrap: str,
    options: Mapping[str, object],
    *,
    connect_timeout_s: float = 10.0,
) -> confluent_kafka.Producer:
    """The bridge's uplink producer (confluent-kafka): idempotent, waits for every in-sync
    replica, and never gives up on a record (``message.timeout.ms=0``): while Kafka is down its
    records wait in librdkafka's queue, in order, and go out when it is back.

    ``options`` are librdkafka's (:func:`~twin_stream.kafka_security.librdkafka_options`). Made
    once the cluster answered its metadata request within ``connect_timeout_s``: no broker is
    :class:`KafkaUnavailable`, an option it does not take a :class:`ConfigError`. Its delivery
    reports (and librdkafka's log lines) are served by ``poll()``/``flush()`` on the caller's
    thread. Close it with :func:`close_librdkafka_producer`."""
    config: dict[str, Any] = {
        "linger.ms": 5,  # batch what arrives within 5 ms: a backlog goes out in full batches
        "batch.num.messages": 10_000,
        # The uplink holds at most max_unacked records; this is only a ceiling behind it.
        "queue.buffering.max.messages": 100_000,
        "message.timeout.ms": 0,  # never fail a record for being late: hold it until Kafka is back
        **options,
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,  # in order, no duplicates from retries
        "acks": "all",
        # Kafka's own partitioner (murmur2), as the Java clients, kafka-python and aiokafka use:
        # a device's telemetry lands on the partition Faust's router and tables expect for its
        # key. librdkafka's default (consistent_random, CRC32) would put it elsewhere.
        "partitioner": "murmur2_random",
        "error_cb": _log_librdkafka_error,
        "logger": _librdkafka_log,
    }
    context = f"kafka {bootstrap}: making the bridge's producer"
    with librdkafka_edge(context):
        producer = confluent_kafka.Producer(config)
    try:
        with librdkafka_edge(context):
            producer.list_topics(timeout=connect_timeout_s)
    except BaseException:
        close_librdkafka_producer(producer, timeout=0)
        raise
    return producer


def close_librdkafka_producer(producer: confluent_kafka.Producer, timeout: float = 10.0) -> int:
    """Give the records in flight ``timeout`` seconds to land, drop the rest (their MQTT
    messages were not acked, so the broker delivers them again) and stop librdkafka's threads.
    Returns how many records were dropped. (``Producer.close()`` alone would wait for every
    record, forever while Kafka is down.)"""
    left = producer.flush(timeout)
    if left:
        producer.purge()
        producer.flush(0)  # serves the purged records' delivery reports
        log.warning("closed the producer with %d records not delivered", left)
    producer.close()
    return left
