"""Follow one transaction as it happens: each hop once recorded, then its final state.

For the event stream (``GET /api/transactions/<id>/events/``). It subscribes to the
transaction's notices first (``relay_app/integrations/notices.py``), then reads the record,
so no hop recorded in between is missed; after that it reads the record again only when a
notice comes, never on a timer (a hundred open streams would otherwise poll the database
all the time). Without Redis it polls, slowly. A transaction still pending a little after
its deadline is timed out here, as a waiting view would: the stream always ends.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..integrations.notices import Subscription
from ..models import Hop, Transaction
from ..selectors import transaction_get
from .transactions import SETTLE_GRACE_SECONDS, transaction_time_out

# How often a stream reads the record when Redis gives it no notices.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while: the stream says it is alive (and learns whether its
    client still listens, since writing to a closed connection fails)."""


FollowEvent = Hop | Transaction | Heartbeat


def transaction_follow(
    *, transaction_id: str, after: int = 0, heartbeat_seconds: float
) -> Iterator[FollowEvent]:
    """Yield each hop of the transaction past position ``after`` as it is recorded, then the
    settled transaction, then stop; a ``Heartbeat`` after ``heartbeat_seconds`` of quiet.

    The caller has checked that its viewer may see the transaction. If it is deleted
    meanwhile (retention), the stream just ends.
    """
    subscription = Subscription(transaction_id)
    try:
        sent = after
        quiet_since = time.monotonic()
        while True:
            try:
                transaction = transaction_get(transaction_id=transaction_id, viewer=None)
            except Transaction.DoesNotExist:
                return
            for hop in transaction.hops.all():
                if hop.stage > sent:
                    sent = hop.stage
                    quiet_since = time.monotonic()
                    yield hop
            if transaction.status != Transaction.Status.PENDING:
                yield transaction
                return
            left = transaction.deadline_at.timestamp() + SETTLE_GRACE_SECONDS - time.time()
            if left <= 0:
                transaction_time_out(transaction_id=transaction_id)
                continue  # read it again: timed out here, or settled by someone else
            until_heartbeat = quiet_since + heartbeat_seconds - time.monotonic()
            wait = min(left, max(until_heartbeat, 0.0))
            if not subscription.active:
                wait = min(wait, POLL_SECONDS)
            if not subscription.wait(wait) and time.monotonic() >= quiet_since + heartbeat_seconds:
                quiet_since = time.monotonic()
                yield Heartbeat()
    finally:
        subscription.close()
