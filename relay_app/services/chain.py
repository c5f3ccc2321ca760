"""Hops 2-7, each performed by one Celery task of the relay chain, and hop 8.

Hop 8 (``rest_respond``) is the web server's while a client waits for the answer; for an
asynchronous request (``Prefer: respond-async``) nobody waits, so a last task does it. It
reads the transaction's own records, never what a message says: a transaction succeeds only
once hops 1-7 are recorded, with hop 7's recorded text.

Every hop takes the ``ChainPayload`` the previous one returned and returns the next. Between
tasks a payload crosses Redis sealed for the one task it is addressed to (``payload_seal``,
``payload_open``), so a message that anyone else wrote there is refused unopened. A hop that
fails settles the transaction (failed, or timed out at that stage) before raising, so the
record says why even when no client is waiting any more.

Every hop is idempotent: a task delivered again (acks are late, so a worker that dies
mid-task gets its task redelivered) finds its hop recorded and returns what it returned
the first time, without a second Kafka record, gRPC call or log line.

A hop that talks to another server makes its attempts under its retry policy
(``services/attempts.py``). Each hop first reads its transaction's state with its own record:
one that ended (cancelled, timed out, failed) raises ``TransactionEnded``, and the chain stops
there; hops are recorded only while the transaction is pending, so none follows a
cancellation, and a gRPC call in progress is cancelled once its transaction ends.
"""

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NotRequired, TypedDict

from django.conf import settings
from django.utils import timezone

from .. import signing, tracing
from ..errors import (
    DeadlineExceeded,
    DependencyUnavailable,
    RecordMismatch,
    RelayError,
    TransactionEnded,
)
from ..hops import Stage, final_message
from ..integrations import relay_rpc
from ..integrations.kafka_records import (
    PendingRecord,
    Record,
    RecordCoordinates,
    describe,
    get_kafka,
)
from ..metrics import count_dependency_error
from ..models import Hop, Transaction
from ..original_log import log_end, log_hop
from ..selectors import hop_chain_end, hop_progress, transaction_lineage, transaction_status
from .attempts import attempts_run
from .transactions import (
    HopRecord,
    hops_record,
    transaction_abandon,
    transaction_fail,
    transaction_succeed,
)

logger = logging.getLogger(__name__)


class ChainPayload(TypedDict):
    """What each task of the chain passes to the next: JSON only, ids and strings."""

    transaction_id: str
    text: str
    deadline: float  # Unix time by which the whole transaction must be done
    record: NotRequired[RecordCoordinates]  # set by a publish hop for the consume hop after it


class SealedPayload(ChainPayload):
    """A ``ChainPayload`` as it crosses Redis: sealed for the one task it is addressed to."""

    seal: str


_KEY = "RELAY_CHAIN_SIGNING_KEY"


def _sealed_fields(payload: Mapping[str, Any], task: str) -> list[object]:
    return [
        "relay.chain",
        task,
        payload.get("transaction_id"),
        payload.get("text"),
        payload.get("deadline"),
        payload.get("record"),
    ]


def payload_seal(payload: ChainPayload, *, to: str) -> SealedPayload:
    """``payload`` sealed for the task named ``to``: that task alone opens it."""
    return {**payload, "seal": signing.seal(_KEY, _sealed_fields(payload, to))}


def payload_open(message: object, *, at: str) -> ChainPayload:
    """The payload of ``message``, a ``SealedPayload`` addressed to the task named ``at``.

    Raises ``signing.Refused`` if it is not one the relay sealed for that task: no seal, a
    field changed, addressed to another task, or sealed with another key.
    """
    if not isinstance(message, dict) or not _well_formed(message):
        raise signing.Refused("it is not a chain payload")
    signing.check(_KEY, _sealed_fields(message, at), message.get("seal"))
    payload: ChainPayload = {
        "transaction_id": message["transaction_id"],
        "text": message["text"],
        "deadline": message["deadline"],
    }
    if message.get("record") is not None:
        payload["record"] = message["record"]
    return payload


def _well_formed(message: dict[Any, Any]) -> bool:
    """Whether the fields have the payload's types (and the record is flat), so sealing them
    again cannot fail, whatever was written to Redis."""
    record = message.get("record")
    return (
        isinstance(message.get("transaction_id"), str)
        and isinstance(message.get("text"), str)
        and type(message.get("deadline")) in (int, float)
        and (
            record is None
            or (
                isinstance(record, dict)
                and all(type(value) in (str, int) for value in record.values())
            )
        )
    )


def time_left(payload: ChainPayload, stage: Stage) -> float:
    """Seconds left of the transaction's budget; ``DeadlineExceeded`` at ``stage`` if none."""
    remaining = payload["deadline"] - time.time()
    if remaining <= 0:
        raise DeadlineExceeded(stage)
    return remaining


def kafka_wait(payload: ChainPayload, stage: Stage) -> float:
    """How long a Kafka operation may take: what remains, but no more than Kafka's own limit."""
    limit: float = settings.KAFKA_TIMEOUT_SECONDS
    return min(time_left(payload, stage), limit)


@contextmanager
def _performing(payload: ChainPayload, stage: Stage) -> Iterator[None]:
    """The hop's span; a hop that fails settles the transaction with its reason, then
    re-raises (its span records the error)."""
    with tracing.hop_span(stage, payload["transaction_id"]):
        try:
            yield
        except DependencyUnavailable as exc:
            count_dependency_error(exc.dependency, exc)
            if time.time() < payload["deadline"]:
                _fail(payload, stage, exc)
                raise
            # The wait ran into the deadline: that is what the client will see, with what the
            # hop was still trying.
            timed_out = DeadlineExceeded(stage)
            timed_out.note = str(exc)
            timed_out.internal = exc.internal
            _fail(payload, stage, timed_out)
            raise timed_out from exc
        except RelayError as exc:
            if isinstance(exc, RecordMismatch):
                count_dependency_error("Kafka", exc)
            _fail(payload, stage, exc)
            raise


@contextmanager
def settled_if_broken(payload: ChainPayload) -> Iterator[None]:
    """A hop that breaks in a way it did not foresee still settles its transaction (failed at
    the hop it was waiting on) before the error goes on: whoever waits learns the outcome
    from the record, never from the chain's result. A ``RelayError`` is the hop's own, which
    it settled with its reason, and ``TransactionEnded`` one that had nothing to do. The
    client reads the kind of error; the log has the rest."""
    try:
        yield
    except (RelayError, TransactionEnded):
        raise
    except Exception as exc:
        transaction_id = payload["transaction_id"]
        reason = f"the relay failed inside a hop ({type(exc).__name__})"
        if transaction_abandon(
            transaction_id=transaction_id, timed_out=False, describe=lambda _: reason
        ):
            logger.error(
                "transaction %s: a hop broke: %r",
                transaction_id,
                exc,
                extra={"transaction_id": transaction_id},
            )
        raise


def _fail(payload: ChainPayload, stage: Stage, exc: RelayError) -> None:
    logger.warning(
        "transaction %s failed at %s: %s%s",
        payload["transaction_id"],
        stage.slug,
        exc,
        f" ({exc.internal})" if exc.internal else "",
        extra={"transaction_id": payload["transaction_id"], "stage": stage.slug},
    )
    transaction_fail(
        transaction_id=payload["transaction_id"],
        timed_out=isinstance(exc, DeadlineExceeded),
        stage=exc.stage if isinstance(exc, DeadlineExceeded) else stage,
        error=str(exc),
    )


def _hop_to_do(payload: ChainPayload, stage: Stage) -> Hop | None:
    """The hop already recorded for ``stage`` (a task delivered again), or ``None``: it is
    to be done. ``TransactionEnded`` if it is not done and the transaction has ended."""
    status, done = hop_progress(transaction_id=payload["transaction_id"], stage=stage)
    if done is None and status != Transaction.Status.PENDING:
        raise TransactionEnded(payload["transaction_id"], str(status))
    return done


def _record(payload: ChainPayload, hop: HopRecord) -> None:
    """Record ``hop`` and log its original example's line; ``TransactionEnded`` if the transaction
    ended meanwhile (then nothing is recorded: nothing happens to a transaction after its end)."""
    transaction_id = payload["transaction_id"]
    if hops_record(transaction_id=transaction_id, hops=[hop]):
        log_hop(hop.stage, hop.text, transaction_id=transaction_id, duration_ms=hop.ms)
        return
    status = transaction_status(transaction_id=transaction_id)
    if status != Transaction.Status.PENDING:
        raise TransactionEnded(transaction_id, status)
    # Pending: the same hop was recorded by a copy of this task running at once.


def _cancelled(transaction_id: str) -> str | None:
    """``cancelled`` if the transaction was cancelled, else ``None``. (One that timed out
    needs no more: the gRPC call's own deadline is the transaction's, and ends it then, as
    DEADLINE_EXCEEDED.)"""
    status = transaction_status(transaction_id=transaction_id)
    return status if status == Transaction.Status.CANCELLED else None


def kafka_publish(payload: ChainPayload, *, stage: Stage, topic: str) -> ChainPayload:
    """Hops 2 and 6: append this hop's text and publish it to ``topic``.

    A retry sends the record again only if the producer never took it; otherwise it waits
    again for the same record's acknowledgement (``PendingRecord``).
    """
    if done := _hop_to_do(payload, stage):
        return _with_record(payload, done.text, _recorded_coordinates(done))
    with _performing(payload, stage):
        text = stage.spec.apply(payload["text"])
        record = PendingRecord(get_kafka(), topic, payload["transaction_id"], text)
        written = attempts_run(
            transaction_id=payload["transaction_id"],
            deadline=payload["deadline"],
            stage=stage,
            perform=lambda: record.acknowledged(timeout=kafka_wait(payload, stage)),
        )
        coordinates = written.value
        hop = HopRecord(
            stage, text, written.started_at, timezone.now(), coordinates, attempt=written.number
        )
        _record(payload, hop)
    return _with_record(payload, text, coordinates)


def _with_record(payload: ChainPayload, text: str, coordinates: RecordCoordinates) -> ChainPayload:
    return {**payload, "text": text, "record": coordinates}


def _recorded_coordinates(hop: Hop) -> RecordCoordinates:
    if hop.kafka_partition is None or hop.kafka_offset is None:
        raise RuntimeError(f"hop {hop} was recorded without its Kafka coordinates")
    return RecordCoordinates(
        topic=hop.kafka_topic, partition=hop.kafka_partition, offset=hop.kafka_offset
    )


def kafka_consume(payload: ChainPayload, *, stage: Stage) -> ChainPayload:
    """Hops 3 and 7: read back the very record the previous hop published, and append."""
    if done := _hop_to_do(payload, stage):
        return _without_record(payload, done.text)
    with _performing(payload, stage):
        coordinates = payload["record"]

        def read() -> Record:
            wait = kafka_wait(payload, stage)
            record = get_kafka().read(coordinates, timeout=wait)
            if record is None:
                raise DependencyUnavailable(
                    "Kafka",
                    f"the record at {describe(coordinates)} was not readable within {wait:.2g} s",
                    kind="not_readable",
                )
            if not _of_lineage(payload["transaction_id"], record):
                raise RecordMismatch(describe(coordinates), owner=record.transaction_id)
            return record

        read_back = attempts_run(
            transaction_id=payload["transaction_id"],
            deadline=payload["deadline"],
            stage=stage,
            perform=read,
        )
        text = stage.spec.apply(read_back.value.value)
        hop = HopRecord(
            stage, text, read_back.started_at, timezone.now(), coordinates, attempt=read_back.number
        )
        _record(payload, hop)
    return _without_record(payload, text)


def _of_lineage(transaction_id: str, record: Record) -> bool:
    """Whether ``record`` was written for this transaction or, for a rerun reading a record
    its hop inherited (``services/rerun.py``), for one it reruns: the record names its
    writer, and nobody else. The lineage is read only when the record is not its own."""
    named = {record.transaction_id, record.key}
    if transaction_id in named:
        return True
    return bool(named & set(transaction_lineage(transaction_id=transaction_id)[1:]))


def _without_record(payload: ChainPayload, text: str) -> ChainPayload:
    return {
        "transaction_id": payload["transaction_id"],
        "text": text,
        "deadline": payload["deadline"],
    }


def grpc_call(payload: ChainPayload) -> ChainPayload:
    """Hops 4 and 5: append the client's text, call the gRPC server, record both hops.

    The call (hop 5) is made under its retry policy; while it waits, it looks whether the
    transaction was cancelled, and then cancels the call.
    """
    transaction_id = payload["transaction_id"]
    if done := _hop_to_do(payload, Stage.GRPC_SERVER):
        return {**payload, "text": done.text}
    stage = Stage.GRPC_CLIENT
    with _performing(payload, stage):
        started_at = timezone.now()
        text = stage.spec.apply(payload["text"])
        # Hop 4 is the client's part before the call: recorded even if the server never answers.
        _record(payload, HopRecord(stage, text, started_at, timezone.now()))

        def call() -> relay_rpc.ProcessResult:
            try:
                return relay_rpc.process(
                    transaction_id=transaction_id,
                    text=text,
                    timeout=time_left(payload, Stage.GRPC_SERVER),
                    connect_timeout=settings.GRPC_CONNECT_TIMEOUT_SECONDS,
                    deadline=payload["deadline"],
                    ended=lambda: _cancelled(transaction_id),
                    check_every=settings.RELAY_CANCEL_CHECK_SECONDS,
                )
            except relay_rpc.GrpcDeadlineExceeded as exc:
                raise DeadlineExceeded(Stage.GRPC_SERVER) from exc

        answered = attempts_run(
            transaction_id=transaction_id,
            deadline=payload["deadline"],
            stage=Stage.GRPC_SERVER,
            perform=call,
        )
        result = answered.value
        server_hop = HopRecord(
            Stage.GRPC_SERVER,
            result.text,
            result.started_at,
            result.finished_at,
            attempt=answered.number,
        )
        if not hops_record(transaction_id=transaction_id, hops=[server_hop]):
            status = transaction_status(transaction_id=transaction_id)
            if status != Transaction.Status.PENDING:
                raise TransactionEnded(transaction_id, status)
    return {**payload, "text": result.text}


def rest_respond(*, transaction_id: str) -> bool:
    """Hop 8 from the transaction's records: the REST response on hop 7's recorded text, then
    the original example's closing banner; the transaction succeeds.

    ``False`` (and nothing done) unless hops 1-7 are all recorded. ``True``: the transaction
    has ended, now or before. Whoever settles first wins (the waiting view, a repeated
    request, the chain's last task, a deadline); hop 8 is recorded with the success only.
    """
    last_text = hop_chain_end(transaction_id=transaction_id)
    if last_text is None:
        return False
    with tracing.hop_span(Stage.REST_RESPONSE, transaction_id):
        started_at = timezone.now()
        text = Stage.REST_RESPONSE.spec.apply(last_text)
        final = final_message(text)
        hop = HopRecord(Stage.REST_RESPONSE, text, started_at, timezone.now())
        if transaction_succeed(transaction_id=transaction_id, final_message=final, last_hop=hop):
            log_hop(Stage.REST_RESPONSE, text, transaction_id=transaction_id, duration_ms=hop.ms)
            log_end(final, transaction_id=transaction_id)
    return True
