"""Celery tasks for hops 2-7 (and hop 8 when no view waits), and the one place the relay
chain is built.

Tasks are an interface, like views: they take and return a JSON ``SealedPayload`` and call one
service each. Each opens its argument before any work: a message that is not sealed for it
by the relay (``payload_open``) is refused with one WARNING line, counted
(``relay_celery_tasks`` with outcome ``refused``), and stops there, storing nothing. Only hop 7's
result is stored: it wakes whoever waits for the transaction, who then reads the
transaction's records (a failure anywhere in the chain is stored on it too,
CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED).

Each hop first reads its transaction's state: one that ended (cancelled, say) stops its chain
there, storing nothing, counted with outcome ``ended``.

A transaction that failed for good after reading a Kafka record back gets its dead letter
(``services/dead_letters.py``) from the task that saw it fail, once its failure is stored
(``ChainTask.on_failure``): whoever waits is answered first.

The periodic tasks take no argument: a forged one only runs the sweep or the purge early,
which settle or delete by the records' own dates. A bulk job's step takes the job's id: a
forged one only moves an existing job on, at the shared rate, as its operator asked.
"""

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery, Task, chain, shared_task, states
from celery.canvas import Signature
from celery.exceptions import Ignore
from django.conf import settings

from .errors import DependencyUnavailable, TransactionEnded
from .hops import Stage
from .integrations.celery_redis import ChainEndBackend
from .metrics import TASKS
from .services.chain import (
    ChainPayload,
    SealedPayload,
    grpc_call,
    kafka_consume,
    kafka_publish,
    payload_open,
    payload_seal,
    rest_respond,
    settled_if_broken,
)
from .services.dead_letters import DEAD_LETTERED, dead_letter_write, dead_letters_sweep
from .services.transactions import (
    transaction_time_out,
    transactions_settle_stale,
)
from .signing import Refused

logger = logging.getLogger(__name__)


def opened(message: object, *, task: str) -> ChainPayload | None:
    """The payload of ``message`` if the relay sealed it for ``task``; else ``None``, and the
    refusal is logged (one WARNING naming the task, the transaction claimed and why) and
    counted."""
    try:
        return payload_open(message, at=task)
    except Refused as refused:
        claimed = message.get("transaction_id") if isinstance(message, dict) else None
        TASKS.labels(task, "refused").inc()
        logger.warning(
            "refused a %s message claiming transaction %s: %s",
            task,
            ascii(str(claimed)[:64]),
            refused,
        )
        return None


def _dead_letter(transaction_id: str, error: BaseException | None = None) -> None:
    """Write the transaction's dead letter if it is due; nothing here may fail the task.
    Not when Kafka's own outage failed it: each would hold the worker for Kafka's timeout
    twice (reading the record, writing it); the periodic sweep writes it once Kafka is back."""
    for seen in (error, error.__cause__ if error is not None else None):
        if isinstance(seen, DependencyUnavailable) and seen.dependency == "Kafka":
            return  # the deadline too: it passed while the hop waited on Kafka
    try:
        dead_letter_write(transaction_id=transaction_id, error=error)
    except Exception:
        logger.exception(
            "transaction %s: writing its dead letter broke",
            transaction_id,
            extra={"transaction_id": transaction_id},
        )


# The transaction a hop of this thread failed and the error as raised, for its task's
# ``on_failure``: Celery hands that a copy it can pickle (a ``DependencyUnavailable`` becomes a
# plain ``RelayError``), and the message need not be opened a second time.
_failing = threading.local()


class ChainTask(Task):
    """A task of the relay chain: when its hop fails the transaction, the dead letter."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called once the failure is stored, so the waiting view has its answer already.
        Only a hop's failure names a transaction; a task that refused its message never fails."""
        failure: tuple[str, BaseException] | None = getattr(_failing, "failure", None)
        _failing.failure = None
        if failure is not None:
            _dead_letter(*failure)


def _hop(
    message: object, *, task: str, to: str, perform: Callable[[ChainPayload], ChainPayload]
) -> SealedPayload:
    """Open ``message`` for ``task``, perform its hop, and seal the result for the task ``to``."""
    _failing.failure = None
    payload = opened(message, task=task)
    if payload is None:
        raise Ignore  # the chain stops here; nothing is stored
    try:
        with settled_if_broken(payload):
            return payload_seal(perform(payload), to=to)
    except TransactionEnded as ended:
        TASKS.labels(task, "ended").inc()
        logger.info(
            "%s: %s; the chain stops here",
            task,
            ended,
            extra={"transaction_id": payload["transaction_id"]},
        )
        if ended.status in DEAD_LETTERED:  # its deadline passed while this task waited
            _dead_letter(payload["transaction_id"])
        raise Ignore from None
    except Exception as exc:
        _failing.failure = (payload["transaction_id"], exc)
        raise


@shared_task(base=ChainTask, name="relay.publish_request", ignore_result=True)
def publish_request(message: SealedPayload) -> SealedPayload:
    """Hop 2: publish to the request topic."""
    return _hop(
        message,
        task=publish_request.name,
        to=consume_request.name,
        perform=lambda payload: kafka_publish(
            payload, stage=Stage.KAFKA_PUBLISH_REQUEST, topic=settings.KAFKA_REQUEST_TOPIC
        ),
    )


@shared_task(base=ChainTask, name="relay.consume_request", ignore_result=True)
def consume_request(message: SealedPayload) -> SealedPayload:
    """Hop 3: read that record back from the request topic."""
    return _hop(
        message,
        task=consume_request.name,
        to=call_grpc.name,
        perform=lambda payload: kafka_consume(payload, stage=Stage.KAFKA_CONSUME_REQUEST),
    )


@shared_task(base=ChainTask, name="relay.call_grpc", ignore_result=True)
def call_grpc(message: SealedPayload) -> SealedPayload:
    """Hops 4 and 5: the gRPC client calls the gRPC server."""
    return _hop(message, task=call_grpc.name, to=publish_reply.name, perform=grpc_call)


@shared_task(base=ChainTask, name="relay.publish_reply", ignore_result=True)
def publish_reply(message: SealedPayload) -> SealedPayload:
    """Hop 6: publish to the reply topic."""
    return _hop(
        message,
        task=publish_reply.name,
        to=consume_reply.name,
        perform=lambda payload: kafka_publish(
            payload, stage=Stage.KAFKA_PUBLISH_REPLY, topic=settings.KAFKA_REPLY_TOPIC
        ),
    )


@shared_task(base=ChainTask, name="relay.consume_reply")
def consume_reply(message: SealedPayload) -> SealedPayload:
    """Hop 7: read that record back from the reply topic; sealed for ``respond`` after it."""
    return _hop(
        message,
        task=consume_reply.name,
        to=respond.name,
        perform=lambda payload: kafka_consume(payload, stage=Stage.KAFKA_CONSUME_REPLY),
    )


@shared_task(base=ChainTask, name="relay.respond", ignore_result=True)
def respond(message: SealedPayload) -> bool:
    """Hop 8 of an asynchronous request, from the records: the REST response nobody waits
    for. Only the transaction's id is taken from the message."""
    payload = opened(message, task=respond.name)
    if payload is None:
        raise Ignore
    with settled_if_broken(payload):
        return rest_respond(transaction_id=payload["transaction_id"])


@shared_task(name="relay.time_out_transaction", ignore_result=True)
def time_out_transaction(message: SealedPayload) -> bool:
    """A task of the transaction's chain expired (its deadline passed before a worker took
    it): time the transaction out now if it is still pending. A waiting view already did;
    for an asynchronous one nobody else would, until the stale sweep. Sealed like the chain's
    messages: a forged one could time out anyone's transaction."""
    payload = opened(message, task=time_out_transaction.name)
    if payload is None:
        raise Ignore
    timed_out = transaction_time_out(transaction_id=payload["transaction_id"])
    if timed_out:
        _dead_letter(payload["transaction_id"])
    return timed_out


#: The tasks of a relay chain: each takes a ``SealedPayload`` addressed to it.
CHAIN_TASKS = frozenset(
    task.name
    for task in (publish_request, consume_request, call_grpc, publish_reply, consume_reply, respond)
)


@shared_task(name="relay.settle_stale_transactions")
def settle_stale_transactions() -> int:
    """Periodic (beat): time out transactions whose waiter died (returns how many), then
    write the dead letters that no task wrote (``dead_letters_sweep``)."""
    grace = settings.RELAY_STALE_GRACE_SECONDS
    settled = transactions_settle_stale(grace_seconds=grace)
    dead_letters_sweep(grace_seconds=grace)
    return settled


@shared_task(name="relay.bulk_job_continue", ignore_result=True)
def bulk_job_continue(job_id: object) -> None:
    """Work on a bulk job for a few seconds, then queue its next step until it has ended
    (relay_app/services/bulk.py)."""
    from .services.bulk import bulk_job_step  # it cancels through services that import this

    try:
        job = str(uuid.UUID(str(job_id)))
    except ValueError:
        logger.warning("refused a bulk job step for %s: not a job id", ascii(str(job_id)[:64]))
        return
    delay = bulk_job_step(job_id=job)
    if delay:
        bulk_job_continue.apply_async((job,), countdown=delay)
    elif delay is not None:
        bulk_job_continue.delay(job)


@shared_task(name="relay.purge_transactions")
def purge_transactions() -> int:
    """Periodic (beat): delete transactions, and bulk jobs that ended, older than
    RELAY_RETENTION_DAYS; returns how many transactions."""
    from .services.retention import retention_purge  # as bulk_job_continue's import

    days = settings.RELAY_RETENTION_DAYS
    return retention_purge(older_than=timedelta(days=days))[0] if days else 0


def relay_chain(
    payload: ChainPayload,
    *,
    respond_async: bool = False,
    start: Stage = Stage.KAFKA_PUBLISH_REQUEST,
) -> Signature:
    """Hops 2-7 as one chain, starting from ``payload`` (sealed here for its first task); its
    result is stored under the transaction's id (``chain_wait``), so that any web server
    can be woken when hop 7 is done.

    ``start``: the chain's first hop (a rerun's, ``services/rerun.py``): it begins with the
    task that performs it (hop 5's is hop 4's, the gRPC call), the hops before are recorded.

    ``respond_async``: no view waits, so hop 8 (``respond``) ends the chain; hop 7's result
    still wakes a repeated request, which may then do hop 8 itself (whoever is first).

    Each task expires at the transaction's deadline: a worker that comes back after an
    outage discards what nobody waits for any more instead of working through it.
    """
    options: dict[str, Any] = {
        "expires": datetime.fromtimestamp(payload["deadline"], UTC),
        # What monitoring shows of a task's arguments: the transaction, not the message; and
        # Celery need not compute a repr of the payload for every task it sends.
        "argsrepr": f"(transaction {payload['transaction_id']})",
        "kwargsrepr": "{}",
    }
    transaction_id = payload["transaction_id"]

    def step(task: Any, *args: Any) -> Signature:
        signature: Signature = task.s(*args)
        return signature.set(**options, task_id=chain_task_id(transaction_id, task.name))

    tasks = [publish_request, consume_request, call_grpc, publish_reply, consume_reply]
    first = next(
        i
        for i, task in enumerate(tasks)
        if max(STAGES_OF[task.name]) >= min(start, Stage.KAFKA_CONSUME_REPLY)
    )
    later = tasks[first:]
    hops = [
        step(later[0], payload_seal(payload, to=later[0].name)),
        *(step(task) for task in later[1:]),
    ]
    return chain(*hops, step(respond)) if respond_async else chain(*hops)


#: The task that performs each hop of a chain (hop 5 is the gRPC server's, in call_grpc's).
HOP_TASKS = {
    Stage.KAFKA_PUBLISH_REQUEST: publish_request.name,
    Stage.KAFKA_CONSUME_REQUEST: consume_request.name,
    Stage.GRPC_CLIENT: call_grpc.name,
    Stage.GRPC_SERVER: call_grpc.name,
    Stage.KAFKA_PUBLISH_REPLY: publish_reply.name,
    Stage.KAFKA_CONSUME_REPLY: consume_reply.name,
    Stage.REST_RESPONSE: respond.name,
}


#: The hops each task of a chain performs.
STAGES_OF = {
    task: [stage for stage, performer in HOP_TASKS.items() if performer == task]
    for task in set(HOP_TASKS.values())
}


def chain_task_id(transaction_id: str, task: str) -> str:
    """The id the task named ``task`` runs under in the transaction's chain: hop 7's is the
    transaction's own (its result is the chain's end, which waiters are woken by); every
    other one's is derived from it, the same each time, so a monitor's page of each task
    (Flower's) can be found from the transaction."""
    if task == consume_reply.name:
        return transaction_id
    return str(uuid.uuid5(uuid.UUID(transaction_id), task))


def chain_app() -> Celery:
    """The Celery app the relay's tasks are bound to (the project's, ``project/celery.py``)."""
    return consume_reply.app


def chain_wait(transaction_id: str, *, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the transaction's chain to end; whether it did.

    The chain's end is a result stored under the transaction's id (hop 7's, or a failure
    Celery stores on it, or ``chain_wake``'s), waited for with a blocking pop
    (``ChainEndBackend``). Anyone who can write to Redis can write one, so it is only a
    wake-up, never taken for the outcome. Raises Redis's errors."""
    backend = chain_app().backend
    if not isinstance(backend, ChainEndBackend):
        raise TypeError(f"the result backend is {type(backend).__name__}, not ChainEndBackend")
    return backend.wait_for_end(transaction_id, timeout=timeout)


def chain_wake(transaction_id: str) -> None:
    """Wake whoever waits for the transaction's chain (``chain_wait``) at once, although
    its chain will not end: it was cancelled. They read the records, as for any wake-up."""
    chain_app().backend.store_result(transaction_id, None, states.REVOKED)
