"""Kafka for the relay: publish a record and read exactly that record back by its coordinates.

Each process has one producer, shared by its threads, and each thread its own consumer
per topic (kafka-python clients run threads, so they are created after a fork, never
inherited). Consumers never join a group: they ``assign`` the record's partition and
``seek`` to its offset, which avoids the seconds a group rebalance costs.
"""

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypedDict

from django.conf import settings
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.metrics.stats import Total
from kafka.producer.future import FutureRecordMetadata

from .. import tracing
from ..errors import DependencyUnavailable
from ..metrics import KAFKA_PRODUCER_RETRIES

logger = logging.getLogger(__name__)

TRANSACTION_HEADER = "transaction_id"


def client_options() -> dict[str, Any]:
    """What every Kafka client needs to reach the brokers: their addresses, and the
    transport security from settings (TLS with certificate verification; SCRAM credentials
    over SASL_SSL, or a client certificate over SSL). Tests and tools use it too."""
    s = settings
    options: dict[str, Any] = {
        "bootstrap_servers": s.KAFKA_ADDRESS,
        "security_protocol": s.KAFKA_SECURITY_PROTOCOL,
    }
    if s.KAFKA_SECURITY_PROTOCOL != "PLAINTEXT":
        options |= {
            "ssl_check_hostname": True,
            "ssl_cafile": s.KAFKA_TLS_CA_FILE or None,
            "ssl_certfile": s.KAFKA_TLS_CERT_FILE or None,
            "ssl_keyfile": s.KAFKA_TLS_KEY_FILE or None,
        }
    if s.KAFKA_SECURITY_PROTOCOL == "SASL_SSL":
        options |= {
            "sasl_mechanism": s.KAFKA_SASL_MECHANISM,
            "sasl_plain_username": s.KAFKA_SASL_USERNAME,
            "sasl_plain_password": s.KAFKA_SASL_PASSWORD,
        }
    return options


class RecordCoordinates(TypedDict):
    """Where a record sits in Kafka: what a publish returns, what a read asks for, and what
    the chain carries from one to the other (JSON, as it is)."""

    topic: str
    partition: int
    offset: int


def describe(coordinates: RecordCoordinates) -> str:
    """``CommunicationTopic[2]@17``: a record's place, for reasons and logs."""
    return f"{coordinates['topic']}[{coordinates['partition']}]@{coordinates['offset']}"


@dataclass(frozen=True)
class Record:
    """A record read back from Kafka: its place, key, ``transaction_id`` header and text,
    and what a dead letter copies of it: every header as written, and its timestamp (Unix
    milliseconds) with the timestamp's type (0: CreateTime, 1: LogAppendTime)."""

    coordinates: RecordCoordinates
    key: str
    transaction_id: str
    value: str
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = -1
    timestamp_type: int = 0

    @classmethod
    def of(cls, message: Any) -> "Record":
        """From what a kafka-python consumer returns."""
        headers = dict(message.headers or [])
        return cls(
            coordinates=RecordCoordinates(
                topic=message.topic, partition=message.partition, offset=message.offset
            ),
            key=(message.key or b"").decode(),
            transaction_id=headers.get(TRANSACTION_HEADER, b"").decode(),
            value=message.value.decode(),
            headers=tuple((name, value or b"") for name, value in message.headers or []),
            timestamp=message.timestamp,
            timestamp_type=message.timestamp_type,
        )


class KafkaGateway:
    """The process's Kafka clients: one producer, and point-reading consumers per thread.

    The producer is thread-safe and is shared: one sender thread for the whole pool, and
    records from concurrent tasks travel together in one request to the broker. A consumer
    is not thread-safe, so each thread reads with its own, one per topic.
    """

    def __init__(self, bootstrap_servers: str, *, connect_timeout: float) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._connect_timeout_ms = int(connect_timeout * 1000)
        self._producer: KafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._retries_counted = 0.0
        self._local = threading.local()

    @property
    def _consumers(self) -> dict[str, KafkaConsumer]:
        consumers: dict[str, KafkaConsumer] | None = getattr(self._local, "consumers", None)
        if consumers is None:
            consumers = self._local.consumers = {}
        return consumers

    def _common(self) -> dict[str, Any]:
        return {
            **client_options(),
            "bootstrap_servers": self._bootstrap_servers,
            "bootstrap_timeout_ms": self._connect_timeout_ms,
            "request_timeout_ms": 10_000,
            "reconnect_backoff_max_ms": 1000,
        }

    def producer(self) -> KafkaProducer:
        with self._producer_lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    **self._common(),
                    acks="all",  # acknowledged means written to every in-sync replica
                    enable_idempotence=True,  # producer retries never write a record twice
                    linger_ms=0,  # a hop waits for its record: send now, batch only what queues
                    max_block_ms=self._connect_timeout_ms,
                )
            return self._producer

    def consumer(self, topic: str) -> KafkaConsumer:
        consumer = self._consumers.get(topic)
        if consumer is None:
            consumer = KafkaConsumer(
                **self._common(),
                group_id=None,  # no group: records are read by coordinates, not subscription
                enable_auto_commit=False,
                # The record is there before we ask for it; never let the broker sit on a fetch.
                fetch_max_wait_ms=10,
                max_poll_records=1,
            )
            self._consumers[topic] = consumer
        return consumer

    def publish(
        self, *, topic: str, transaction_id: str, value: str, timeout: float
    ) -> RecordCoordinates:
        """Write one record keyed and headed by the transaction id; wait for the broker's ack."""
        return PendingRecord(self, topic, transaction_id, value).acknowledged(timeout=timeout)

    def send(self, *, topic: str, transaction_id: str, value: str) -> FutureRecordMetadata:
        """Hand one record to the producer; its acknowledgement is the future's.

        ``DependencyUnavailable`` of kind ``not_queued`` if the producer did not take it (no
        leader of the topic's partitions known within the connect timeout, say): nothing
        was written, so another attempt may send it again.
        """
        key = transaction_id.encode()
        return self._handed(
            topic,
            lambda producer: producer.send(
                topic, key=key, value=value.encode(), headers=[(TRANSACTION_HEADER, key)]
            ),
        )

    def _handed(
        self, topic: str, send: Callable[[KafkaProducer], FutureRecordMetadata]
    ) -> FutureRecordMetadata:
        """``send(producer)``, or ``DependencyUnavailable`` of kind ``not_queued`` if the
        producer did not take the record."""
        try:
            return send(self.producer())
        except KafkaError as exc:
            raise DependencyUnavailable(
                "Kafka",
                f"publishing to {topic} failed ({type(exc).__name__})",
                internal=repr(exc),
                kind="not_queued",
            ) from exc

    def acknowledgement(
        self, future: FutureRecordMetadata, *, topic: str, timeout: float
    ) -> RecordCoordinates:
        """Where the record of ``future`` was written, once the broker acknowledges it.

        ``DependencyUnavailable`` of kind ``unacknowledged`` if no answer came within
        ``timeout`` (the producer still holds the record: wait again for the same one, never
        send it anew), or ``failed`` if the producer gave up on it, after its own retries,
        which idempotence keeps from writing it twice (counted in
        ``relay_kafka_producer_retries``): it may have been written, so it is final.
        """
        try:
            metadata = future.get(timeout=max(timeout, 0.001))
        except KafkaTimeoutError as exc:
            raise DependencyUnavailable(
                "Kafka",
                f"publishing to {topic} was not acknowledged within {timeout:.2g} s",
                internal=repr(exc),
                kind="unacknowledged",
            ) from exc
        except KafkaError as exc:
            raise DependencyUnavailable(
                "Kafka",
                f"publishing to {topic} failed ({type(exc).__name__})",
                internal=repr(exc),
                kind="failed",
            ) from exc
        finally:
            self._count_producer_retries()
        return RecordCoordinates(topic=topic, partition=metadata.partition, offset=metadata.offset)

    def _count_producer_retries(self) -> None:
        """Add the records the producer sent again since the last look to the process's
        ``relay_kafka_producer_retries`` (kafka-python keeps only a rate: a total of ours is
        added to its sensor)."""
        total = self._producer_retry_total()
        if total is None:
            return
        with self._producer_lock:
            new, self._retries_counted = total - self._retries_counted, total
        if new > 0:
            KAFKA_PRODUCER_RETRIES.inc(new)

    def _producer_retry_total(self) -> float | None:
        metrics = getattr(self._producer, "_metrics", None)  # kafka-python's own registry
        if metrics is None:
            return None
        name = metrics.metric_name("record-retry-total", "producer-metrics")
        metric = metrics.metrics.get(name)
        if metric is None:
            sensor = metrics.get_sensor("record-retries")
            if sensor is None:
                return None
            sensor.add(name, Total())
            metric = metrics.metrics.get(name)
        return float(metric.value()) if metric is not None else None

    def write(
        self,
        *,
        topic: str,
        partition: int | None,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        timeout: float,
    ) -> RecordCoordinates:
        """Write one record as given (on ``partition`` if the topic has it, else where the
        producer's partitioner puts it) and wait for the broker's ack: dead letters.

        ``DependencyUnavailable`` if the producer did not take it or no ack came in time.
        """

        def send(producer: KafkaProducer) -> FutureRecordMetadata:
            known = producer.partitions_for(topic) or ()
            return producer.send(
                topic,
                key=key,
                value=value,
                headers=list(headers),
                partition=partition if partition in known else None,
            )

        future = self._handed(topic, send)
        return self.acknowledgement(future, topic=topic, timeout=timeout)

    def read(self, coordinates: RecordCoordinates, *, timeout: float) -> Record | None:
        """Read the record at ``coordinates``; ``None`` if it did not arrive within ``timeout``."""
        partition = TopicPartition(coordinates["topic"], coordinates["partition"])
        with tracing.kafka_read_span(**coordinates) as span:
            try:
                consumer = self.consumer(coordinates["topic"])
                if consumer.assignment() != {partition}:
                    consumer.assign([partition])
                consumer.seek(partition, coordinates["offset"])
                batches = consumer.poll(timeout_ms=max(int(timeout * 1000), 1), max_records=1)
            except KafkaError as exc:
                raise DependencyUnavailable(
                    "Kafka",
                    f"reading {describe(coordinates)} failed ({type(exc).__name__})",
                    internal=repr(exc),
                    kind="broker_error",
                ) from exc
            for message in batches.get(partition, []):
                if message.offset == coordinates["offset"]:
                    tracing.record_read(span, message.headers or [])
                    return Record.of(message)
        return None

    def close(self) -> None:
        """Close the producer and this thread's consumers (a process done with Kafka)."""
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close(timeout=1)
                self._producer = None
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()

    def connect(self, topics: list[str]) -> None:
        """Connect the producer, and this thread's consumer of each topic to its partitions'
        leader, now rather than in the first hops (a first transaction took 0.6 s)."""
        try:
            producer = self.producer()
            for topic in topics:
                producer.partitions_for(topic)  # the topic's metadata, which a first send awaits
                partition = TopicPartition(topic, 0)
                consumer = self.consumer(topic)
                consumer.assign([partition])
                consumer.seek_to_end(partition)
                consumer.position(partition, timeout_ms=self._connect_timeout_ms)
        except KafkaError as exc:
            raise DependencyUnavailable(
                "Kafka", f"connecting failed ({type(exc).__name__})", internal=repr(exc)
            ) from exc

    def ensure_topics(
        self, topics: list[str], *, partitions: int, replication: int, min_insync: int
    ) -> list[str]:
        """Create the topics that do not exist yet; return the names created.

        Each has ``replication`` copies, and a write is acknowledged (acks=all) once at least
        ``min_insync`` of them have it; with fewer in sync, the broker refuses the write rather
        than keep it on too few. Unclean leader election stays off (Kafka's default): a replica
        that missed acknowledged records never becomes leader.
        """
        try:
            admin = KafkaAdminClient(**self._common())
        except KafkaError as exc:
            raise DependencyUnavailable(
                "Kafka",
                f"connecting the admin client failed ({type(exc).__name__})",
                internal=repr(exc),
            ) from exc
        try:
            missing = [t for t in topics if t not in set(admin.list_topics())]
            created = []
            for topic in missing:
                try:
                    config = {"min.insync.replicas": str(min_insync)}
                    admin.create_topics(
                        [NewTopic(topic, partitions, replication, topic_configs=config)]
                    )
                    created.append(topic)
                except TopicAlreadyExistsError:
                    pass  # another process created it first
            return created
        except KafkaError as exc:  # too few brokers yet, a timeout, ...
            raise DependencyUnavailable(
                "Kafka", f"creating the topics failed ({type(exc).__name__})", internal=repr(exc)
            ) from exc
        finally:
            admin.close()


class PendingRecord:
    """One record a publish hop writes, over its attempts: sent again only if the producer
    never took it; otherwise each attempt waits again for the same record's acknowledgement.
    So a retried publish never leaves a second record with the transaction's key."""

    def __init__(self, gateway: KafkaGateway, topic: str, transaction_id: str, value: str) -> None:
        self._gateway, self._topic = gateway, topic
        self._transaction_id, self._value = transaction_id, value
        self._future: FutureRecordMetadata | None = None

    def acknowledged(self, *, timeout: float) -> RecordCoordinates:
        """Send the record if it is not with the producer yet, then wait for its ack."""
        if self._future is None:
            self._future = self._gateway.send(
                topic=self._topic, transaction_id=self._transaction_id, value=self._value
            )
        return self._gateway.acknowledgement(self._future, topic=self._topic, timeout=timeout)


@cache
def _gateway_for(pid: int) -> KafkaGateway:
    return KafkaGateway(settings.KAFKA_ADDRESS, connect_timeout=settings.KAFKA_TIMEOUT_SECONDS)


def get_kafka() -> KafkaGateway:
    """This process's gateway: a forked child makes its own rather than inherit threads."""
    return _gateway_for(os.getpid())


def close_kafka() -> None:
    """Close this process's gateway, if it made one; the next ``get_kafka`` makes another."""
    if _gateway_for.cache_info().currsize:
        get_kafka().close()
        _gateway_for.cache_clear()


#: What a topic's dead-letter topic is named after it (Spring Kafka's default suffix).
DEAD_LETTER_SUFFIX = ".DLT"


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: ``CommunicationTopic.DLT``."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


def _relay_topics() -> list[str]:
    return [settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC]


def relay_topics() -> list[str]:
    """Every topic the relay writes: the request and reply topics, and their dead-letter
    topics, all made alike (``ensure_relay_topics``) and granted alike (the secure profile)."""
    topics = _relay_topics()
    return [*topics, *(dead_letter_topic(topic) for topic in topics)]


def ensure_relay_topics() -> list[str]:
    """Create the request and reply topics and their dead-letter topics if missing
    (partitions from settings: a dead letter keeps its record's partition, as Spring
    Kafka's recoverer does)."""
    return get_kafka().ensure_topics(
        relay_topics(),
        partitions=settings.KAFKA_TOPIC_PARTITIONS,
        replication=settings.KAFKA_TOPIC_REPLICATION,
        min_insync=settings.KAFKA_MIN_INSYNC_REPLICAS,
    )


def connect_relay_topics() -> None:
    """Connect this process's Kafka clients for the request and reply topics."""
    get_kafka().connect(_relay_topics())
