"""Run one transaction end to end: hop 1, the Celery chain for hops 2-7, then hop 8."""

import logging
import time

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from ..hops import Stage, final_message
from ..logging import log_end, log_hop
from ..models import Transaction
from ..selectors import transaction_get, transaction_waiting_on
from ..tasks import relay_chain
from .hops import Carry
from .transactions import (
    HopRecord,
    hops_record,
    transaction_fail,
    transaction_start,
    transaction_succeed,
)

logger = logging.getLogger(__name__)


def relay_message(*, message: str) -> Transaction:
    """Carry ``message`` through every hop within the deadline; return the settled transaction.

    The transaction comes back ``succeeded``, ``failed`` (a dependency is down; ``error``
    says which) or ``timed_out`` (``failed_stage`` is the hop it was waiting on).
    """
    budget = settings.RELAY_DEADLINE_SECONDS
    deadline = time.time() + budget
    transaction = transaction_start(message=message)
    transaction_id = str(transaction.id)
    carry: Carry = {
        "transaction_id": transaction_id,
        "text": Stage.REST_REQUEST.spec.apply(message),
        "deadline": deadline,
    }
    try:
        result = relay_chain(carry).apply_async()
        outcome = result.get(timeout=max(deadline - time.time(), 0.001), propagate=False)
    except CeleryTimeoutError:
        stage = transaction_waiting_on(transaction_id=transaction_id)
        transaction_fail(
            transaction_id=transaction_id,
            timed_out=True,
            stage=stage,
            error=f"deadline of {budget:g} s passed while waiting on {stage.slug}",
        )
    except (BrokerError, RedisError) as exc:
        transaction_fail(
            transaction_id=transaction_id,
            timed_out=False,
            stage=transaction_waiting_on(transaction_id=transaction_id),
            error=f"Redis is unavailable: {exc}",
        )
    else:
        if result.successful():
            _respond(transaction_id, outcome)
        else:
            # The failing hop has usually settled the transaction with its reason already.
            transaction_fail(
                transaction_id=transaction_id,
                timed_out=False,
                stage=transaction_waiting_on(transaction_id=transaction_id),
                error=f"{type(outcome).__name__}: {outcome}",
            )
        result.forget()
    return transaction_get(transaction_id=transaction_id)


def _respond(transaction_id: str, carry: Carry) -> None:
    """Hop 8: the REST response, then the seed's closing banner."""
    started_at = timezone.now()
    text = Stage.REST_RESPONSE.spec.apply(carry["text"])
    final = final_message(text)
    hops_record(
        transaction_id=transaction_id,
        hops=[HopRecord(Stage.REST_RESPONSE, text, started_at, timezone.now())],
    )
    if transaction_succeed(transaction_id=transaction_id, final_message=final):
        log_hop(Stage.REST_RESPONSE, text, transaction_id=transaction_id)
        log_end(final, transaction_id=transaction_id)
