"""Run one transaction end to end: hop 1, the Celery chain for hops 2-7, then hop 8."""

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
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from .. import tracing
from ..errors import IdempotencyConflict
from ..hops import Stage, final_message
from ..metrics import (
    DEADLINE_MISSES,
    TRANSACTION_SECONDS,
    TRANSACTIONS,
    count_dependency_error,
)
from ..models import Transaction
from ..seed_log import log_end, log_hop
from ..selectors import transaction_find, transaction_get, transaction_status
from ..tasks import chain_result, relay_chain
from .chain import ChainPayload
from .transactions import (
    HopRecord,
    hops_record,
    transaction_abandon,
    transaction_start,
    transaction_succeed,
)

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
    if deadline is None:
        deadline = time.time() + settings.RELAY_DEADLINE_SECONDS
    if idempotency_key and (
        earlier := transaction_find(owner=owner, idempotency_key=idempotency_key)
    ):
        return _replay(earlier, message=message)
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
        return _replay(earlier, message=message)
    transaction_id = str(transaction.id)
    with tracing.transaction_traced(transaction_id):
        _run(transaction_id, message=message, deadline=deadline)
    settled = transaction_get(transaction_id=transaction_id, viewer=None)
    _count(settled, arrived_at=deadline - settings.RELAY_DEADLINE_SECONDS)
    return settled


def _run(transaction_id: str, *, message: str, deadline: float) -> None:
    """Hops 2-7 through the chain, waited for until the deadline, then hop 8: or settle the
    transaction with why it did not get there."""
    payload: ChainPayload = {
        "transaction_id": transaction_id,
        "text": Stage.REST_REQUEST.spec.apply(message),
        "deadline": deadline,
    }
    try:
        result = relay_chain(payload).apply_async()
        with tracing.span("wait for the chain"):
            result.get(timeout=max(deadline - time.time(), 0.001), propagate=False)
    except CeleryTimeoutError:
        _time_out(transaction_id)
    except (BrokerError, RedisError) as exc:
        # The client learns which dependency; the log also gets the why (it names hosts).
        logger.warning(
            "transaction %s: Redis is unavailable: %r",
            transaction_id,
            exc,
            extra={"transaction_id": transaction_id},
        )
        count_dependency_error("Redis", exc)
        reason = f"Redis is unavailable: {type(exc).__name__}"
        transaction_abandon(
            transaction_id=transaction_id, timed_out=False, describe=lambda _: reason
        )
    else:
        _settle_from_chain(transaction_id, result)


def _count(transaction: Transaction, *, arrived_at: float) -> None:
    """The metrics of a transaction this request started and saw to its end."""
    TRANSACTIONS.labels(transaction.status).inc()
    TRANSACTION_SECONDS.observe(time.time() - arrived_at)
    if transaction.status == Transaction.Status.TIMED_OUT and transaction.failed_stage:
        DEADLINE_MISSES.labels(Stage(transaction.failed_stage).slug).inc()


def _settle_from_chain(transaction_id: str, result: AsyncResult) -> None:
    """Settle the transaction from its chain's finished ``result``: hop 8 if it succeeded.

    Idempotent: the request that started the transaction and a repeated one (same
    Idempotency-Key, on another web server after the first died) may both get here.
    """
    if result.successful():
        _respond(transaction_id, cast(ChainPayload, result.result))
        return
    if isinstance(result.result, TaskRevokedError):
        # A task reached a worker after the transaction's deadline (its expiry) and was dropped.
        _time_out(transaction_id)
        return
    # The failing hop has usually settled the transaction with its reason already. If not,
    # the chain broke in a way no hop expected: the client reads that much, the log the details.
    reason = f"the relay failed inside a hop ({type(result.result).__name__})"
    if transaction_abandon(
        transaction_id=transaction_id, timed_out=False, describe=lambda _: reason
    ):
        logger.error("transaction %s: the chain failed: %r", transaction_id, result.result)


def _time_out(transaction_id: str) -> None:
    transaction_abandon(
        transaction_id=transaction_id,
        timed_out=True,
        describe=lambda stage: (
            f"the deadline of {settings.RELAY_DEADLINE_SECONDS:g} s"
            f" passed while waiting on {stage.slug}"
        ),
    )


def _respond(transaction_id: str, payload: ChainPayload) -> None:
    """Hop 8: the REST response, then the seed's closing banner."""
    with tracing.hop_span(Stage.REST_RESPONSE, transaction_id):
        started_at = timezone.now()
        text = Stage.REST_RESPONSE.spec.apply(payload["text"])
        final = final_message(text)
        hops_record(
            transaction_id=transaction_id,
            hops=[HopRecord(Stage.REST_RESPONSE, text, started_at, timezone.now())],
        )
        if transaction_succeed(transaction_id=transaction_id, final_message=final):
            log_hop(Stage.REST_RESPONSE, text, transaction_id=transaction_id)
            log_end(final, transaction_id=transaction_id)


def _replay(earlier: Transaction, *, message: str) -> Transaction:
    """The outcome of an earlier request with the same Idempotency-Key, once it has one.

    While the first request runs, this one watches its chain too, and settles the transaction
    itself if the chain finishes and the first request's process does not (it died): so a
    proxy may send a request again to another web server, and the client still gets the one
    transaction's outcome.
    """
    if earlier.message != message:
        raise IdempotencyConflict(earlier.idempotency_key or "")
    transaction_id = str(earlier.id)
    result = chain_result(transaction_id)
    # Poll the status and the chain's result alone; load the transaction once, at the end.
    deadline = earlier.deadline_at.timestamp()
    while transaction_status(transaction_id=transaction_id) == Transaction.Status.PENDING:
        if time.time() > deadline + _REPLAY_GRACE_SECONDS:
            _time_out(transaction_id)
            break
        with suppress(BrokerError, RedisError):  # Redis away: the status still tells
            if result.ready():
                _settle_from_chain(transaction_id, result)
                break
        time.sleep(_REPLAY_POLL_SECONDS)
    return transaction_get(transaction_id=transaction_id, viewer=None)
