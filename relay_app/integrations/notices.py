"""Notices on Redis that a transaction changed: a hop recorded, or the transaction settled.

Whoever records a hop or settles a transaction PUBLISHes one tiny notice on the
transaction's own channel; an event stream (``relay_app/services/events.py``) SUBSCRIBEs to
it and re-reads the record when one comes, instead of polling the database. A notice only
says "look again": the record stays the one source of truth, so a lost notice costs a
stream at most one heartbeat's delay, and publishing never fails the hop that publishes.
"""

import logging
import threading
import time
from contextlib import suppress
from functools import cache

import redis
from django.conf import settings
from redis.client import PubSub
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# A publish waits no longer than this for Redis; Redis down, it is not tried again for
# _QUIET_SECONDS, so the hops of that time do not each wait for it.
_TIMEOUT_SECONDS = 0.5
_QUIET_SECONDS = 1.0
_quiet_until = 0.0
_quiet_lock = threading.Lock()


def channel(transaction_id: str) -> str:
    """The Redis channel of one transaction's notices."""
    return f"relay:transaction:{transaction_id}"


@cache
def _client() -> redis.Redis:
    # One client per process, shared by its threads (redis-py's pool is thread-safe and
    # starts afresh in a forked child).
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_timeout=_TIMEOUT_SECONDS,
        socket_connect_timeout=_TIMEOUT_SECONDS,
        **settings.REDIS_TLS,
    )


def notify(transaction_id: str) -> None:
    """Tell whoever watches ``transaction_id`` that it changed; never raises."""
    global _quiet_until
    if time.monotonic() < _quiet_until:
        return
    try:
        _client().publish(channel(transaction_id), "1")
    except RedisError as exc:
        with _quiet_lock:
            _quiet_until = time.monotonic() + _QUIET_SECONDS
        logger.warning(
            "transaction %s: no notice published (Redis: %r); its streams poll instead",
            transaction_id,
            exc,
            extra={"transaction_id": transaction_id},
        )


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
