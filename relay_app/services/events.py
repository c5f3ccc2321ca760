"""Follow one transaction as it happens: each attempt of a hop that did not succeed as it
ends, each hop once recorded, then its final state.

For the event stream (``GET /api/transactions/<id>/events/``). It subscribes to the
transaction's notices first (``relay_app/integrations/notices.py``), then reads the record,
so no hop recorded in between is missed; after that it reads the record again only when a
notice comes, never on a timer (a hundred open streams would otherwise poll the database
all the time). Without Redis it polls, slowly. A transaction still pending a little after
its deadline is timed out here, as a waiting view would: the stream always ends.
"""

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from django.db import connection

from ..integrations.notices import Subscription
from ..models import Attempt, Hop, Transaction
from ..selectors import attempts_by_stage, transaction_get
from .transactions import SETTLE_GRACE_SECONDS, transaction_time_out

# How often a stream reads the record when Redis gives it no notices.
POLL_SECONDS = 0.5
# A stream reads the record at least this often even without a notice: a notice lost (Redis
# restarted between a hop and its PUBLISH) delays a stream by no more than this.
RESYNC_SECONDS = 5.0


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while: the stream says it is alive (and learns whether its
    client still listens, since writing to a closed connection fails)."""


FollowEvent = Attempt | Hop | Transaction | Heartbeat


def transaction_follow(
    *, transaction_id: str, after: int = 0, heartbeat_seconds: float
) -> Iterator[FollowEvent]:
    """Yield each hop of the transaction past position ``after`` as it is recorded (after
    its attempts that did not succeed, each as it is recorded), then the settled transaction,
    then stop; a ``Heartbeat`` after ``heartbeat_seconds`` of quiet.

    The caller has checked that its viewer may see the transaction. If it is deleted
    meanwhile (retention), the stream just ends.
    """
    subscription = Subscription(transaction_id)
    try:
        sent = after
        attempts_sent: set[tuple[int, int]] = set()
        beat_at = time.monotonic() + heartbeat_seconds
        while True:
            try:
                transaction = transaction_get(transaction_id=transaction_id, viewer=None)
            except Transaction.DoesNotExist:
                return
            by_stage = attempts_by_stage(transaction)
            hops = {hop.stage: hop for hop in transaction.hops.all()}
            for stage in sorted(by_stage.keys() | hops.keys()):
                if stage <= sent:
                    continue
                for attempt in by_stage.get(stage, []):
                    if (stage, attempt.number) not in attempts_sent:
                        attempts_sent.add((stage, attempt.number))
                        beat_at = time.monotonic() + heartbeat_seconds
                        yield attempt
                if stage in hops:
                    sent = stage
                    beat_at = time.monotonic() + heartbeat_seconds
                    yield hops[stage]
            if transaction.status != Transaction.Status.PENDING:
                yield transaction
                return
            give_up = transaction.deadline_at.timestamp() + SETTLE_GRACE_SECONDS
            if time.time() >= give_up:
                transaction_time_out(transaction_id=transaction_id)
                continue  # read it again: timed out here, or settled by someone else
            _release_database()
            beat_at = yield from _quiet_until_notice(
                subscription,
                give_up=min(give_up, time.time() + RESYNC_SECONDS),
                beat_at=beat_at,
                heartbeat_seconds=heartbeat_seconds,
            )
    finally:
        subscription.close()


def _quiet_until_notice(
    subscription: Subscription, *, give_up: float, beat_at: float, heartbeat_seconds: float
) -> Generator[Heartbeat, None, float]:
    """Wait for a notice (or, without Redis, a poll's interval; at most until ``give_up``),
    with a heartbeat at ``beat_at`` and every ``heartbeat_seconds`` after it; the record is
    not read in between. Returns when the next heartbeat is due."""
    while True:
        left = give_up - time.time()
        if left <= 0:
            return beat_at
        wait = min(left, max(beat_at - time.monotonic(), 0.0))
        if not subscription.active:
            wait = min(wait, POLL_SECONDS)
        notified = subscription.wait(wait)
        if time.monotonic() >= beat_at:
            beat_at = time.monotonic() + heartbeat_seconds
            yield Heartbeat()
        if notified or not subscription.active:
            return beat_at


def _release_database() -> None:
    """Give the database connection back while the stream waits: a hundred open streams
    must not hold a hundred connections (PostgreSQL allows 100 by default). The next read
    opens one again, a few times per transaction."""
    if not connection.in_atomic_block:
        connection.close()
