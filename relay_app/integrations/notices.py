"""Notices on Redis that a transaction changed: a hop recorded, or the transaction settled.

Whoever records a hop or settles a transaction PUBLISHes one tiny notice on the
transaction's own channel; an event stream (``relay_app/services/events.py``) SUBSCRIBEs to
it and re-reads the record when one comes, instead of polling the database. A notice only
says "look again": the record stays the one source of truth, so a lost notice only delays a
stream (it reads the record every few seconds anyway), and publishing never fails the hop.
"""

import logging
import os
import queue
import threading
import time
from contextlib import suppress
from functools import cache

import redis
from django.conf import settings
from redis.client import PubSub
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# A publish waits no longer than this for Redis; Redis down, nothing is sent for
# _QUIET_SECONDS, so the notices of that time do not each wait for it.
_TIMEOUT_SECONDS = 0.5
_QUIET_SECONDS = 1.0
# Notices waiting for the publisher beyond this many are dropped (Redis far too slow).
_BACKLOG = 10_000
# At most this many notices go to Redis in one round trip.
_BATCH = 256


def channel(transaction_id: str) -> str:
    """The Redis channel of one transaction's notices."""
    return f"relay:transaction:{transaction_id}"


@cache
def _client() -> redis.Redis:
    # One client per process (its publisher thread's; redis-py's pool starts afresh in a
    # forked child).
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_timeout=_TIMEOUT_SECONDS,
        socket_connect_timeout=_TIMEOUT_SECONDS,
        **settings.REDIS_TLS,
    )


class _Publisher:
    """One thread per process that sends the notices, several in one round trip when they
    come fast: a hop only queues its notice, it never waits for Redis."""

    def __init__(self) -> None:
        self.queue: queue.Queue[str] = queue.Queue(maxsize=_BACKLOG)
        threading.Thread(target=self._run, name="relay-notices", daemon=True).start()

    def _run(self) -> None:
        quiet_until = 0.0
        while True:
            batch = [self.queue.get()]
            with suppress(queue.Empty):
                while len(batch) < _BATCH:
                    batch.append(self.queue.get_nowait())
            if time.monotonic() < quiet_until:
                continue  # Redis was down a moment ago: streams poll meanwhile
            try:
                pipeline = _client().pipeline(transaction=False)
                for transaction_id in dict.fromkeys(batch):
                    pipeline.publish(channel(transaction_id), "1")
                pipeline.execute()
            except RedisError as exc:
                quiet_until = time.monotonic() + _QUIET_SECONDS
                logger.warning(
                    "%d notice(s) not published (Redis: %r); their streams read the record"
                    " a little later",
                    len(batch),
                    exc,
                )


_publisher: _Publisher | None = None
_publisher_pid = 0
_publisher_lock = threading.Lock()


def notify(transaction_id: str) -> None:
    """Tell whoever watches ``transaction_id`` that it changed: queued for this process's
    publisher thread (started on first use, so in each forked process); never raises."""
    global _publisher, _publisher_pid
    if _publisher is None or _publisher_pid != os.getpid():
        with _publisher_lock:
            if _publisher is None or _publisher_pid != os.getpid():
                _publisher, _publisher_pid = _Publisher(), os.getpid()
    with suppress(queue.Full):
        _publisher.queue.put_nowait(transaction_id)


class Subscription:
    """One stream's subscription to a transaction's notices (its own Redis connection)."""

    def __init__(self, transaction_id: str) -> None:
        # Its own client: a subscriber blocks its connection, and waits longer than a publish.
        self._pubsub: PubSub | None = redis.Redis.from_url(
            settings.CELERY_BROKER_URL,
            socket_connect_timeout=_TIMEOUT_SECONDS,
            **settings.REDIS_TLS,
        ).pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            self._pubsub.subscribe(channel(transaction_id))
        except RedisError as exc:
            logger.warning(
                "transaction %s: no subscription to its notices (Redis: %r); polling instead",
                transaction_id,
                exc,
                extra={"transaction_id": transaction_id},
            )
            self.close()

    @property
    def active(self) -> bool:
        """Whether notices arrive; if not, the stream polls the record."""
        return self._pubsub is not None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notice; ``True`` if one came.

        Several notices that came at once count as one: the stream reads the record once.
        """
        if self._pubsub is None:
            time.sleep(timeout)
            return False
        try:
            got = self._pubsub.get_message(timeout=max(timeout, 0.0)) is not None
            while got and self._pubsub.get_message(timeout=0.0) is not None:
                pass
            return got
        except RedisError as exc:
            logger.warning("notices lost (Redis: %r); polling instead", exc)
            self.close()
            return False

    def close(self) -> None:
        """Unsubscribe and free the connection (idempotent)."""
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with suppress(RedisError):  # closing a connection that is gone already
                pubsub.close()
