"""Dead letters: a transaction that failed for good after reading one of its Kafka records
back gets that record written again to its topic's dead-letter topic (``<topic>.DLT``), once.

Failed or timed out, not cancelled (an operator chose to end it). The record is the last one
the transaction consumed: the request record (hop 3) when it failed at the gRPC call or the
reply's publish, the reply record (hop 7) when it failed after. A transaction that failed
before reading any record back (hops 2 and 3) has no dead letter.

Called where a transaction's failure is seen in the worker, after whoever waits has been
answered (``relay_app/tasks.py``), and by the periodic sweep for what no task saw
(``dead_letters_sweep``). Once per transaction, however often it is called (a task
delivered again, two copies at once): one conditional write claims the dead letter first,
and only its winner reads the record and writes it, through the idempotent producer; then
the dead letter's place is recorded. If Kafka does not take it, the claim is given back and
the log says why, so a later call may write it.

A rerun of the transaction from the hop after the one that read the record is its redrive.
"""

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from .. import tracing
from ..errors import DependencyUnavailable, RelayError
from ..hops import Stage
from ..integrations.dead_letters import Failure, dead_letter_headers, failure_of
from ..integrations.kafka_records import (
    RecordCoordinates,
    dead_letter_topic,
    describe,
    get_kafka,
)
from ..metrics import DEAD_LETTERS
from ..models import Attempt, Transaction
from ..selectors import hop_last_consumed

logger = logging.getLogger(__name__)

#: The ends that get a dead letter: not ``cancelled``, which an operator chose.
DEAD_LETTERED = (Transaction.Status.FAILED, Transaction.Status.TIMED_OUT)


@dataclass(frozen=True)
class DeadLetter:
    """Where a transaction's dead letter went, and the hop whose rerun redrives it."""

    topic: str
    partition: int
    offset: int
    written_at: datetime
    read_by: Stage  # the hop that read the record back: 3 or 7
    redrive_from_hop: Stage

    def __str__(self) -> str:
        return describe(
            RecordCoordinates(topic=self.topic, partition=self.partition, offset=self.offset)
        )


def dead_letter_of(transaction: Transaction) -> DeadLetter | None:
    """The transaction's dead letter once Kafka has it, else ``None``. It copies the request
    record (read by hop 3) or the reply record (hop 7), as its topic says; a rerun from the
    hop after that one is its redrive."""
    if (
        transaction.dead_letter_partition is None
        or transaction.dead_letter_offset is None
        or transaction.dead_letter_at is None
    ):
        return None
    read_by = (
        Stage.KAFKA_CONSUME_REQUEST
        if transaction.dead_letter_topic == dead_letter_topic(settings.KAFKA_REQUEST_TOPIC)
        else Stage.KAFKA_CONSUME_REPLY
    )
    return DeadLetter(
        topic=transaction.dead_letter_topic,
        partition=transaction.dead_letter_partition,
        offset=transaction.dead_letter_offset,
        written_at=transaction.dead_letter_at,
        read_by=read_by,
        redrive_from_hop=Stage(read_by + 1),
    )


def dead_letter_write(
    *, transaction_id: str, error: BaseException | None = None, strict: bool = False
) -> RecordCoordinates | None:
    """Write the dead letter of the transaction if it is due and nobody has; return where
    it went, or ``None`` (not due, already claimed, or Kafka did not take it: logged).

    ``error``: the exception that failed it, for the exception headers; without one (the
    transaction was ended elsewhere: its deadline passed) they say what the record says.
    Raises for Kafka only if ``strict`` (the sweep stops then): the transaction's outcome
    is settled already.
    """
    transaction = (
        Transaction.objects.filter(id=transaction_id, status__in=DEAD_LETTERED)
        .only("id", "status", "error", "failed_stage", "dead_letter_topic")
        .first()
    )
    if transaction is None or transaction.dead_letter_topic:
        return None
    consumed = hop_last_consumed(transaction_id=transaction_id)
    if consumed is None:
        return None
    original = RecordCoordinates(
        topic=consumed.kafka_topic,
        partition=consumed.kafka_partition or 0,
        offset=consumed.kafka_offset or 0,
    )
    topic = dead_letter_topic(original["topic"])
    claimed = Transaction.objects.filter(
        id=transaction_id, status__in=DEAD_LETTERED, dead_letter_topic=""
    ).update(dead_letter_topic=topic)
    if not claimed:
        return None  # another call (a copy of the task) has it
    with tracing.dead_letter_span(transaction_id, topic) as span:
        try:
            written = _write(transaction, original, topic, _failure(transaction, error))
        except RelayError as exc:
            Transaction.objects.filter(id=transaction_id, dead_letter_offset__isnull=True).update(
                dead_letter_topic=""
            )
            DEAD_LETTERS.labels(topic, "not_written").inc()
            logger.warning(
                "transaction %s: its dead letter (%s) was not written: %s (%s)",
                transaction_id,
                describe(original),
                exc,
                exc.internal,
                extra={"transaction_id": transaction_id},
            )
            if strict:
                raise
            return None
        tracing.dead_letter_written(span, written["partition"], written["offset"])
    Transaction.objects.filter(id=transaction_id).update(
        dead_letter_partition=written["partition"],
        dead_letter_offset=written["offset"],
        dead_letter_at=timezone.now(),
    )
    DEAD_LETTERS.labels(topic, "written").inc()
    logger.info(
        "transaction %s: dead letter of %s written to %s",
        transaction_id,
        describe(original),
        describe(written),
        extra={"transaction_id": transaction_id},
    )
    return written


def dead_letters_sweep(*, grace_seconds: float, within: timedelta = timedelta(hours=1)) -> int:
    """Write the dead letters that are due and were not written; return how many now.

    Those of transactions ended where none of their tasks saw it (a blocking relay's task
    that expired in the queue once the waiting view had timed it out; the stale sweep), and
    those Kafka did not take (its outage failed the transaction: the failing task leaves its
    dead letter to this sweep). Only transactions ended ``grace_seconds`` ago or more (the
    failing task writes its own first, naming its error), and within ``within``, a bound on
    the work after a long outage, newest first. Stops after ``_SWEEP_FAILURES`` that Kafka
    did not take (it is down still; or their records are gone, which must not hold up the
    others for good).
    """
    now = timezone.now()
    due = (
        Transaction.objects.filter(
            status__in=DEAD_LETTERED,
            dead_letter_topic="",
            finished_at__lt=now - timedelta(seconds=grace_seconds),
            finished_at__gte=now - within,
            hops__stage__in=(Stage.KAFKA_CONSUME_REQUEST, Stage.KAFKA_CONSUME_REPLY),
        )
        .order_by("-finished_at")
        .values_list("id", flat=True)
        .distinct()[:_SWEEP_BATCH]
    )
    written = failures = 0
    for transaction_id in list(due):
        try:
            dead = dead_letter_write(transaction_id=str(transaction_id), strict=True)
        except RelayError:
            failures += 1
            if failures >= _SWEEP_FAILURES:
                break  # the next sweep goes on
        else:
            written += dead is not None
    return written


#: At most this many dead letters in one sweep (one worker's slot, a few ms each), and at
#: most this many failures (each may wait Kafka's timeout twice).
_SWEEP_BATCH = 200
_SWEEP_FAILURES = 3


def _write(
    transaction: Transaction, original: RecordCoordinates, topic: str, failure: Failure
) -> RecordCoordinates:
    """Read the original record back and write it, with the dead-letter headers, to
    ``topic`` on its own partition (as Spring Kafka does)."""
    kafka = get_kafka()
    wait: float = settings.KAFKA_TIMEOUT_SECONDS
    record = kafka.read(original, timeout=wait)
    if record is None:
        raise DependencyUnavailable(
            "Kafka", f"the record at {describe(original)} was not readable within {wait:.2g} s"
        )
    headers = dead_letter_headers(record, failure=failure, attempts=_attempts(str(transaction.id)))
    return kafka.write(
        topic=topic,
        partition=original["partition"],
        key=str(transaction.id).encode(),
        value=record.value.encode(),
        headers=headers,
        timeout=wait,
    )


def _failure(transaction: Transaction, error: BaseException | None) -> Failure:
    if error is not None:
        return failure_of(error, "".join(traceback.format_exception(error)))
    # Ended elsewhere: by its deadline (the waiting view, an expired task) or a hop that broke.
    kind = (
        "relay_app.errors.DeadlineExceeded"
        if transaction.status == Transaction.Status.TIMED_OUT
        else "relay_app.errors.RelayError"
    )
    return Failure(fqcn=kind, message=transaction.error, stacktrace=f"{kind}: {transaction.error}")


def _attempts(transaction_id: str) -> list[dict[str, Any]]:
    """Every attempt of the transaction that did not succeed, as the ``relay_attempts``
    header carries them."""
    return [
        {
            "position": attempt.stage,
            "stage": Stage(attempt.stage).slug,
            "number": attempt.number,
            "started_at": attempt.started_at.isoformat(),
            "duration_ms": round(attempt.duration.total_seconds() * 1000, 3),
            "outcome": attempt.outcome,
            "kind": attempt.kind,
            "error": attempt.error,
            "retried": attempt.retried,
        }
        for attempt in Attempt.objects.filter(transaction_id=transaction_id).order_by(
            "stage", "number"
        )
    ]
