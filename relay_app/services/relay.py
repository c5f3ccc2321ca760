"""Run one transaction end to end: hop 1, the Celery chain for hops 2-7, then hop 8; or
start it and return at once (``relay_message_async``), the chain then doing hop 8 too."""

import logging
import time
from contextlib import suppress
from datetime import UTC, datetime
from typing import cast

from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
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
from ..tasks import chain_result, relay_chain
from .chain import ChainPayload, rest_respond
from .transactions import transaction_abandon, transaction_start, transaction_time_out

logger = logging.getLogger(__name__)

# How often a repeated request polls for the first one's outcome, and how long past the
# deadline it leaves the first request to settle it before it times the transaction out:
# short, since its client too must have an answer soon after the deadline (the first
# request's process may have died before it started the chain, and nobody else settles it).
_REPLAY_POLL_SECONDS = 0.05
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
            result = relay_chain(payload).apply_async()
            with tracing.span("wait for the chain"):
                result.get(timeout=max(payload["deadline"] - time.time(), 0.001), propagate=False)
        except CeleryTimeoutError:
            transaction_time_out(transaction_id=transaction_id)
        except (BrokerError, RedisError) as exc:
            _redis_unavailable(transaction_id, exc)
        else:
            _settle_from_chain(transaction_id, result)
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
    try:
        with tracing.transaction_traced(transaction_id):
            relay_chain(payload, respond_async=True).apply_async()
    except (BrokerError, RedisError) as exc:
        _redis_unavailable(transaction_id, exc)
        failed = transaction_get(transaction_id=transaction_id, viewer=None)
        _count(failed, deadline=payload["deadline"])
        return failed
    return transaction_get(transaction_id=transaction_id, viewer=None)


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


def _redis_unavailable(transaction_id: str, exc: Exception) -> None:
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


def _count(transaction: Transaction, *, deadline: float) -> None:
    """The metrics of a transaction this request started and saw to its end (its time from
    the request's arrival, the deadline less the budget)."""
    TRANSACTIONS.labels(transaction.status).inc()
    TRANSACTION_SECONDS.observe(time.time() - (deadline - settings.RELAY_DEADLINE_SECONDS))
    if transaction.status == Transaction.Status.TIMED_OUT and transaction.failed_stage:
        DEADLINE_MISSES.labels(Stage(transaction.failed_stage).slug).inc()


def _settle_from_chain(transaction_id: str, result: AsyncResult) -> None:
    """Settle the transaction from its chain's finished ``result``: hop 8 if it succeeded.

    Idempotent: the request that started the transaction and a repeated one (same
    Idempotency-Key, on another web server after the first died) may both get here.
    """
    if result.successful():
        rest_respond(cast(ChainPayload, result.result))
        return
    if isinstance(result.result, TaskRevokedError):
        # A task reached a worker after the transaction's deadline (its expiry) and was dropped.
        transaction_time_out(transaction_id=transaction_id)
        return
    # The failing hop has usually settled the transaction with its reason already. If not,
    # the chain broke in a way no hop expected: the client reads that much, the log the details.
    reason = f"the relay failed inside a hop ({type(result.result).__name__})"
    if transaction_abandon(
        transaction_id=transaction_id, timed_out=False, describe=lambda _: reason
    ):
        logger.error("transaction %s: the chain failed: %r", transaction_id, result.result)


def _replay(earlier: Transaction) -> Transaction:
    """The outcome of an earlier request with the same Idempotency-Key, once it has one.

    While the first request runs, this one watches its chain too, and settles the transaction
    itself if the chain finishes and the first request's process does not (it died): so a
    proxy may send a request again to another web server, and the client still gets the one
    transaction's outcome.
    """
    transaction_id = str(earlier.id)
    result = chain_result(transaction_id)
    # Poll the status and the chain's result alone; load the transaction once, at the end.
    deadline = earlier.deadline_at.timestamp()
    while transaction_status(transaction_id=transaction_id) == Transaction.Status.PENDING:
        if time.time() > deadline + _REPLAY_GRACE_SECONDS:
            transaction_time_out(transaction_id=transaction_id)
            break
        with suppress(BrokerError, RedisError):  # Redis away: the status still tells
            if result.ready():
                _settle_from_chain(transaction_id, result)
                break
        time.sleep(_REPLAY_POLL_SECONDS)
    return transaction_get(transaction_id=transaction_id, viewer=None)
