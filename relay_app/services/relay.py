"""Run one transaction end to end: hop 1, the Celery chain for hops 2-7, then hop 8; or
start it and return at once (``relay_message_async``), the chain then doing hop 8 too.

Whoever waits for a transaction (the request that started it, or one repeating its
Idempotency-Key) is woken by its chain's stored result, then reads the transaction's records
(``_await_outcome``): the result itself is never taken for the outcome, since anyone who can
write to Redis can write one.
"""

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from .. import tracing
from ..errors import IdempotencyConflict
from ..hops import Stage
from ..metrics import (
    DEADLINE_MISSES,
    TRANSACTION_SECONDS,
    TRANSACTIONS,
    count_dependency_error,
)
from ..models import Transaction
from ..selectors import transaction_find, transaction_get, transaction_status
from ..tasks import chain_wait, relay_chain
from .admission import relay_ended
from .chain import ChainPayload, rest_respond
from .transactions import transaction_abandon, transaction_start, transaction_time_out

logger = logging.getLogger(__name__)

# How often a waiter reads the records once its wake-up was not the chain's end.
_POLL_SECONDS = 0.05
# How long past the deadline a repeated request leaves the first request to settle the
# transaction before it times it out: short, since its client too must have an answer soon
# after the deadline (the first request's process may have died before it started the
# chain, and nobody else settles it).
_REPLAY_GRACE_SECONDS = 0.2


def relay_message(
    *,
    message: str,
    owner: User | None,
    idempotency_key: str | None = None,
    deadline: float | None = None,
) -> Transaction:
    """Carry ``message`` through every hop within the deadline; return the settled transaction.

    The transaction belongs to ``owner`` (``None``: an anonymous relay). It comes back
    ``succeeded``, ``failed`` (a dependency is down; ``error`` says which) or ``timed_out``
    (``failed_stage`` is the hop it was waiting on). With an ``idempotency_key`` the same owner
    already used, that first transaction is returned instead of a new one. ``deadline``
    (seconds since the epoch) is the request's arrival plus the budget; by default, now plus it.
    """
    transaction, payload = _start(
        message=message, owner=owner, idempotency_key=idempotency_key, deadline=deadline
    )
    if payload is None:
        return _replay(transaction)
    transaction_id = payload["transaction_id"]
    with tracing.transaction_traced(transaction_id):
        try:
            relay_chain(payload).apply_async()
        except (BrokerError, RedisError) as exc:
            redis_unavailable(transaction_id, exc)
        else:
            _await_outcome(transaction_id, deadline=payload["deadline"])
    settled = transaction_get(transaction_id=transaction_id, viewer=None)
    _count(settled, deadline=payload["deadline"])
    return settled


def relay_message_async(
    *,
    message: str,
    owner: User | None,
    idempotency_key: str | None = None,
    deadline: float | None = None,
) -> Transaction:
    """Start carrying ``message`` and return at once, with the transaction still ``pending``.

    The same rules as ``relay_message``: the same owner repeating an ``idempotency_key``
    gets that first transaction back as it is now (no waiting; another message: 422). The
    chain's last task does hop 8. If the chain runs out of time, a hop times the transaction
    out, or the worker does as soon as it finds one of its tasks expired
    (``relay_app/worker.py``); an event stream does at its deadline, the stale sweep in the
    end. Redis down: the transaction comes back ``failed``.
    """
    transaction, payload = _start(
        message=message, owner=owner, idempotency_key=idempotency_key, deadline=deadline
    )
    if payload is None:
        return transaction_get(transaction_id=str(transaction.id), viewer=None)
    transaction_id = payload["transaction_id"]
    # Read before the chain is sent: the answer shows the transaction as it starts, not
    # whatever hops a fast worker managed before it was read.
    started = transaction_get(transaction_id=transaction_id, viewer=None)
    try:
        with tracing.transaction_traced(transaction_id):
            relay_chain(payload, respond_async=True).apply_async()
    except (BrokerError, RedisError) as exc:
        redis_unavailable(transaction_id, exc)
        failed = transaction_get(transaction_id=transaction_id, viewer=None)
        _count(failed, deadline=payload["deadline"])
        return failed
    return started


def _start(
    *,
    message: str,
    owner: User | None,
    idempotency_key: str | None,
    deadline: float | None,
) -> tuple[Transaction, ChainPayload | None]:
    """Record the transaction and do hop 1; return it with the payload its chain starts from.

    If ``owner`` already used ``idempotency_key``, that earlier transaction comes back
    instead, with no payload: nothing was started (``IdempotencyConflict`` if it was for
    another message).
    """
    if deadline is None:
        deadline = time.time() + settings.RELAY_DEADLINE_SECONDS
    if idempotency_key and (
        earlier := transaction_find(owner=owner, idempotency_key=idempotency_key)
    ):
        return _same_message(earlier, message), None
    try:
        transaction = transaction_start(
            message=message,
            owner=owner,
            deadline_at=datetime.fromtimestamp(deadline, UTC),
            idempotency_key=idempotency_key,
        )
    except IntegrityError:
        # The same key arrived twice at once; the other request made the transaction.
        earlier = transaction_find(owner=owner, idempotency_key=idempotency_key or "")
        if earlier is None:
            raise
        return _same_message(earlier, message), None
    payload: ChainPayload = {
        "transaction_id": str(transaction.id),
        "text": Stage.REST_REQUEST.spec.apply(message),
        "deadline": deadline,
    }
    return transaction, payload


def _same_message(earlier: Transaction, message: str) -> Transaction:
    """The earlier transaction of a repeated Idempotency-Key, if it carried this message."""
    if earlier.message != message:
        raise IdempotencyConflict(earlier.idempotency_key or "")
    return earlier


def redis_unavailable(transaction_id: str, exc: Exception) -> None:
    """Fail the transaction: its chain could not be sent (or waited for) through Redis."""
    # The client learns which dependency; the log also gets the why (it names hosts).
    logger.warning(
        "transaction %s: Redis is unavailable: %r",
        transaction_id,
        exc,
        extra={"transaction_id": transaction_id},
    )
    count_dependency_error("Redis", exc)
    reason = f"Redis is unavailable: {type(exc).__name__}"
    transaction_abandon(transaction_id=transaction_id, timed_out=False, describe=lambda _: reason)


# How a relay's end reads to admission (``relay_ended``): any other end is a failure.
_ENDED_AS: dict[Transaction.Status, bool | None] = {
    Transaction.Status.SUCCEEDED: True,
    Transaction.Status.CANCELLED: None,  # an operator's doing, not the stack's
}


def _count(transaction: Transaction, *, deadline: float) -> None:
    """The metrics of a transaction this request started and saw to its end (its time from
    the request's arrival, the deadline less the budget)."""
    TRANSACTIONS.labels(transaction.status).inc()
    relay_ended(succeeded=_ENDED_AS.get(Transaction.Status(transaction.status), False))
    TRANSACTION_SECONDS.observe(time.time() - (deadline - settings.RELAY_DEADLINE_SECONDS))
    if transaction.status == Transaction.Status.TIMED_OUT and transaction.failed_stage:
        DEADLINE_MISSES.labels(Stage(transaction.failed_stage).slug).inc()


def _await_outcome(transaction_id: str, *, deadline: float, grace: float = 0.0) -> None:
    """Return once the transaction has ended: settled by a hop that failed, by hop 8 done from
    its records (here or by anyone else), or timed out here ``grace`` seconds past
    ``deadline``.

    Idempotent: the request that started the transaction and a repeated one (same
    Idempotency-Key, on another web server after the first died) may both wait here.
    """
    woken_by = _wake_up(transaction_id, deadline=deadline)
    if _ended(transaction_id):
        return
    if woken_by is not None:
        # Every hop's failure settles the transaction before its chain stores the result,
        # and hop 7 is recorded before its own is: this result was not the chain's end.
        logger.warning(
            "transaction %s: woken by %s before it ended; waiting on its records",
            transaction_id,
            woken_by,
            extra={"transaction_id": transaction_id},
        )
    while time.time() < deadline + grace:
        time.sleep(_POLL_SECONDS)
        if _ended(transaction_id):
            return
    transaction_time_out(transaction_id=transaction_id)


def _wake_up(transaction_id: str, *, deadline: float) -> str | None:
    """Wait until the chain's result is stored, or the deadline; say what ended the wait
    before the deadline (``None``: the deadline did)."""
    try:
        with tracing.span("wait for the chain"):
            ended = chain_wait(transaction_id, timeout=max(deadline - time.time(), 0.001))
    except (BrokerError, RedisError) as exc:
        count_dependency_error("Redis", exc)
        return f"losing Redis ({type(exc).__name__})"
    return "a stored result" if ended and time.time() < deadline else None


def _ended(transaction_id: str) -> bool:
    """Whether the transaction has ended; hop 8 is done here if its records say hops 1-7 are."""
    return rest_respond(transaction_id=transaction_id) or (
        transaction_status(transaction_id=transaction_id) != Transaction.Status.PENDING
    )


def relay_await(*, transaction: Transaction) -> Transaction:
    """``transaction`` once it has ended, waited for as a blocking relay waits (its deadline
    is its own); a rerun started with ``services/rerun.py`` is answered so."""
    return _replay(transaction)


def _replay(earlier: Transaction) -> Transaction:
    """The outcome of an earlier request with the same Idempotency-Key, once it has one.

    While the first request runs, this one waits for the transaction too, and settles it
    itself if the chain gets through and the first request's process does not (it died): so
    a proxy may send a request again to another web server, and the client still gets the one
    transaction's outcome.
    """
    transaction_id = str(earlier.id)
    if transaction_status(transaction_id=transaction_id) == Transaction.Status.PENDING:
        _await_outcome(
            transaction_id, deadline=earlier.deadline_at.timestamp(), grace=_REPLAY_GRACE_SECONDS
        )
    return transaction_get(transaction_id=transaction_id, viewer=None)
