"""Celery tasks for hops 2-7 (and hop 8 when no view waits), and the one place the relay
chain is built.

Tasks are an interface, like views: they take and return a JSON ``ChainPayload`` and call one
service each. Only the last task's result is stored: the view waits for that one, and a
failure anywhere in the chain is stored on it too (CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import chain, shared_task
from celery.canvas import Signature
from celery.result import AsyncResult
from django.conf import settings

from .hops import Stage
from .services.chain import ChainPayload, grpc_call, kafka_consume, kafka_publish, rest_respond
from .services.transactions import (
    transaction_time_out,
    transactions_purge,
    transactions_settle_stale,
)


@shared_task(name="relay.publish_request", ignore_result=True)
def publish_request(payload: ChainPayload) -> ChainPayload:
    """Hop 2: publish to the request topic."""
    return kafka_publish(
        payload, stage=Stage.KAFKA_PUBLISH_REQUEST, topic=settings.KAFKA_REQUEST_TOPIC
    )


@shared_task(name="relay.consume_request", ignore_result=True)
def consume_request(payload: ChainPayload) -> ChainPayload:
    """Hop 3: read that record back from the request topic."""
    return kafka_consume(payload, stage=Stage.KAFKA_CONSUME_REQUEST)


@shared_task(name="relay.call_grpc", ignore_result=True)
def call_grpc(payload: ChainPayload) -> ChainPayload:
    """Hops 4 and 5: the gRPC client calls the gRPC server."""
    return grpc_call(payload)


@shared_task(name="relay.publish_reply", ignore_result=True)
def publish_reply(payload: ChainPayload) -> ChainPayload:
    """Hop 6: publish to the reply topic."""
    return kafka_publish(payload, stage=Stage.KAFKA_PUBLISH_REPLY, topic=settings.KAFKA_REPLY_TOPIC)


@shared_task(name="relay.consume_reply")
def consume_reply(payload: ChainPayload) -> ChainPayload:
    """Hop 7: read that record back from the reply topic."""
    return kafka_consume(payload, stage=Stage.KAFKA_CONSUME_REPLY)


@shared_task(name="relay.respond")
def respond(payload: ChainPayload) -> ChainPayload:
    """Hop 8 of an asynchronous request: the REST response nobody waits for."""
    return rest_respond(payload)


@shared_task(name="relay.time_out_transaction", ignore_result=True)
def time_out_transaction(transaction_id: str) -> bool:
    """A task of the transaction's chain expired (its deadline passed before a worker took
    it): time the transaction out now if it is still pending. A waiting view already did;
    for an asynchronous one nobody else would, until the stale sweep."""
    return transaction_time_out(transaction_id=transaction_id)


#: The tasks of a relay chain: each takes a ``ChainPayload``.
CHAIN_TASKS = frozenset(
    task.name
    for task in (publish_request, consume_request, call_grpc, publish_reply, consume_reply, respond)
)


@shared_task(name="relay.settle_stale_transactions")
def settle_stale_transactions() -> int:
    """Periodic (beat): time out transactions whose waiter died; returns how many."""
    return transactions_settle_stale(grace_seconds=settings.RELAY_STALE_GRACE_SECONDS)


@shared_task(name="relay.purge_transactions")
def purge_transactions() -> int:
    """Periodic (beat): delete transactions older than RELAY_RETENTION_DAYS; returns how many."""
    days = settings.RELAY_RETENTION_DAYS
    return transactions_purge(older_than=timedelta(days=days)) if days else 0


def relay_chain(payload: ChainPayload, *, respond_async: bool = False) -> Signature:
    """Hops 2-7 as one chain; its result is the ``ChainPayload`` after hop 7, stored under
    the transaction's id (``chain_result``), so that any web server can wait for it.

    ``respond_async``: no view waits, so hop 8 (``respond``) ends the chain and its result
    is the one stored under the transaction's id; a repeated request may still wait for it.

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
    last: dict[str, Any] = {**options, "task_id": payload["transaction_id"]}
    hops = [
        publish_request.s(payload).set(**options),
        consume_request.s().set(**options),
        call_grpc.s().set(**options),
        publish_reply.s().set(**options),
    ]
    if not respond_async:
        return chain(*hops, consume_reply.s().set(**last))
    return chain(
        *hops,
        consume_reply.s().set(**{**options, "ignore_result": True}),
        respond.s().set(**last),
    )


def chain_result(transaction_id: str) -> AsyncResult:
    """The outcome of a transaction's chain, to wait for or to look at."""
    return AsyncResult(transaction_id, app=consume_reply.app)
