"""Hops 2-7, each performed by one Celery task of the relay chain.

Every hop takes the ``Carry`` the previous one returned and returns the next. A hop that
fails settles the transaction (failed, or timed out at that stage) before raising, so the
record says why even when no client is waiting any more.

Every hop is idempotent: a task delivered again (acks are late, so a worker that dies
mid-task gets its task redelivered) finds its hop recorded and returns what it returned
the first time, without a second Kafka record, gRPC call or log line.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NotRequired, TypedDict

from django.conf import settings
from django.utils import timezone

from ..errors import DeadlineExceeded, DependencyUnavailable, RecordMismatch, RelayError
from ..hops import Stage
from ..integrations import grpc as grpc_client
from ..integrations.kafka import RecordCoordinates, get_kafka
from ..logging import log_hop
from ..models import Hop
from ..selectors import hop_find
from .transactions import HopRecord, hops_record, transaction_fail

logger = logging.getLogger(__name__)


class KafkaRecord(TypedDict):
    topic: str
    partition: int
    offset: int


class Carry(TypedDict):
    """What travels from task to task: JSON only, ids and strings."""

    transaction_id: str
    text: str
    deadline: float  # Unix time by which the whole transaction must be done
    record: NotRequired[KafkaRecord]  # set by a publish hop for the consume hop after it


def _remaining(carry: Carry, stage: Stage) -> float:
    remaining = carry["deadline"] - time.time()
    if remaining <= 0:
        raise DeadlineExceeded(stage)
    return remaining


def _kafka_wait(carry: Carry, stage: Stage) -> float:
    """How long a Kafka operation may take: what remains, but no more than Kafka's own limit."""
    limit: float = settings.KAFKA_TIMEOUT_SECONDS
    return min(_remaining(carry, stage), limit)


@contextmanager
def _settling(carry: Carry, stage: Stage) -> Iterator[None]:
    """Settle the transaction with the reason of a hop that fails, then re-raise."""
    try:
        yield
    except DependencyUnavailable as exc:
        if time.time() < carry["deadline"]:
            _fail(carry, stage, exc)
            raise
        # The wait ran into the deadline: that is what the client will see.
        timed_out = DeadlineExceeded(stage)
        timed_out.internal = f"{exc} ({exc.internal})" if exc.internal else str(exc)
        _fail(carry, stage, timed_out)
        raise timed_out from exc
    except RelayError as exc:
        _fail(carry, stage, exc)
        raise


def _fail(carry: Carry, stage: Stage, exc: RelayError) -> None:
    logger.warning(
        "transaction %s failed at %s: %s%s",
        carry["transaction_id"],
        stage.slug,
        exc,
        f" ({exc.internal})" if exc.internal else "",
    )
    transaction_fail(
        transaction_id=carry["transaction_id"],
        timed_out=isinstance(exc, DeadlineExceeded),
        stage=exc.stage if isinstance(exc, DeadlineExceeded) else stage,
        error=str(exc),
    )


def kafka_publish(carry: Carry, *, stage: Stage, topic: str) -> Carry:
    """Hops 2 and 6: append this hop's text and publish it to ``topic``."""
    if done := hop_find(transaction_id=carry["transaction_id"], stage=stage):
        return _with_record(carry, done.text, _recorded_coordinates(done))
    with _settling(carry, stage):
        started_at = timezone.now()
        text = stage.spec.apply(carry["text"])
        coordinates = get_kafka().publish(
            topic=topic,
            transaction_id=carry["transaction_id"],
            value=text,
            timeout=_kafka_wait(carry, stage),
        )
        hops_record(
            transaction_id=carry["transaction_id"],
            hops=[HopRecord(stage, text, started_at, timezone.now(), coordinates)],
        )
        log_hop(stage, text, transaction_id=carry["transaction_id"])
    return _with_record(carry, text, coordinates)


def _with_record(carry: Carry, text: str, coordinates: RecordCoordinates) -> Carry:
    record: KafkaRecord = {
        "topic": coordinates.topic,
        "partition": coordinates.partition,
        "offset": coordinates.offset,
    }
    return {**carry, "text": text, "record": record}


def _recorded_coordinates(hop: Hop) -> RecordCoordinates:
    if hop.kafka_partition is None or hop.kafka_offset is None:
        raise RuntimeError(f"hop {hop} was recorded without its Kafka coordinates")
    return RecordCoordinates(hop.kafka_topic, hop.kafka_partition, hop.kafka_offset)


def kafka_consume(carry: Carry, *, stage: Stage) -> Carry:
    """Hops 3 and 7: read back the very record the previous hop published, and append."""
    if done := hop_find(transaction_id=carry["transaction_id"], stage=stage):
        return _without_record(carry, done.text)
    with _settling(carry, stage):
        started_at = timezone.now()
        coordinates = RecordCoordinates(**carry["record"])
        wait = _kafka_wait(carry, stage)
        record = get_kafka().read(coordinates, timeout=wait)
        if record is None:
            raise DependencyUnavailable(
                "Kafka", f"the record at {coordinates} was not readable within {wait:.2g} s"
            )
        if carry["transaction_id"] not in (record.transaction_id, record.key):
            raise RecordMismatch(coordinates, owner=record.transaction_id)
        text = stage.spec.apply(record.value)
        hops_record(
            transaction_id=carry["transaction_id"],
            hops=[HopRecord(stage, text, started_at, timezone.now(), coordinates)],
        )
        log_hop(stage, text, transaction_id=carry["transaction_id"])
    return _without_record(carry, text)


def _without_record(carry: Carry, text: str) -> Carry:
    return {"transaction_id": carry["transaction_id"], "text": text, "deadline": carry["deadline"]}


def grpc_call(carry: Carry) -> Carry:
    """Hops 4 and 5: append the client's text, call the gRPC server, record both hops."""
    if done := hop_find(transaction_id=carry["transaction_id"], stage=Stage.GRPC_SERVER):
        return {**carry, "text": done.text}
    stage = Stage.GRPC_CLIENT
    with _settling(carry, stage):
        started_at = timezone.now()
        text = stage.spec.apply(carry["text"])
        # Hop 4 is the client's part before the call: recorded even if the server never answers.
        hops_record(
            transaction_id=carry["transaction_id"],
            hops=[HopRecord(stage, text, started_at, timezone.now())],
        )
        log_hop(stage, text, transaction_id=carry["transaction_id"])
        try:
            result = grpc_client.process(
                transaction_id=carry["transaction_id"],
                text=text,
                timeout=_remaining(carry, Stage.GRPC_SERVER),
                connect_timeout=settings.GRPC_CONNECT_TIMEOUT_SECONDS,
            )
        except grpc_client.GrpcDeadlineExceeded as exc:
            raise DeadlineExceeded(Stage.GRPC_SERVER) from exc
        hops_record(
            transaction_id=carry["transaction_id"],
            hops=[HopRecord(Stage.GRPC_SERVER, result.text, result.started_at, result.finished_at)],
        )
    return {**carry, "text": result.text}
