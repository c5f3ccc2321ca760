"""kombu's Redis transport, keeping one Redis client per channel instead of one per use; and
Celery's Redis result backend, waited for with a blocking pop (``ChainEndBackend``).

Outside its event loop kombu builds a new ``redis.Redis`` for nearly everything it does:
publishing a task, the bookkeeping of unacknowledged tasks, each acknowledgement
(``Channel.conn_or_acquire``). Building one costs about 0.1 ms of CPU here (redis-py sets up
its retry policy and parser each time; redis-py issue 3624, PR 4124), several times for each
of a transaction's five tasks. A ``redis.Redis`` may be shared by threads (it takes a
connection from its pool for each command), so each channel keeps the one it built, and
builds another only when kombu has replaced the channel's pool (after a fork or an error).

A channel whose connection is closed already (Redis went away while the worker held tasks,
and kombu, closing the channel, tries to put them back) raises Redis's own connection error,
which kombu's closing ignores, instead of kombu's AttributeError, which stopped the worker:
the tasks go back when their visibility timeout passes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.backends.redis import RedisBackend
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

_CLIENT = "_relay_client"


@contextmanager
def _conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
    if client:
        yield client
        return
    if getattr(self.connection, "client", None) is None:
        raise RedisConnectionError("the channel's connection is closed")
    kept = self.__dict__.get(_CLIENT)
    if kept is None or kept.connection_pool is not self.pool:
        kept = self.__dict__[_CLIENT] = self._create_client()
    yield kept


def keep_redis_clients() -> None:
    """Make kombu's Redis channels keep their client (idempotent)."""
    kombu_redis.Channel.conn_or_acquire = _conn_or_acquire  # type: ignore[method-assign]


class ChainEndBackend(RedisBackend):
    """Celery's Redis result backend, whose results are waited for with a blocking pop.

    Each result it stores (a chain's last task's, a failure Celery stores on it, a
    cancellation's) goes to Redis as Celery writes it and, in the same round trip, one entry
    onto the task's end list, which expires with the result. A waiter blocks on that list
    (``wait_for_end``) on a connection of the backend's pool, one round trip however long it
    waits, instead of Celery's subscription to the result's channel, which costs several round
    trips a result and a subscription as each task is sent (``on_task_call``). The waiter
    puts the entry back as it takes it, so every waiter of a task wakes, however late it comes.
    ``AsyncResult.get`` still works: the result is published as before.
    """

    def _set(self, key: Any, value: Any, expires: Any = None) -> None:
        if expires is None:
            expires = self.expires  # type: ignore[attr-defined]
        end = _end_key(key)
        with self.client.pipeline() as pipe:
            if expires:
                pipe.setex(key, expires, value)
            else:
                pipe.set(key, value)
            pipe.publish(key, value)
            pipe.rpush(end, 1)
            if expires:
                pipe.expire(end, expires)
            pipe.execute()

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Nothing: a sent task's result is waited for with ``wait_for_end``, not subscribed to."""

    def wait_for_end(self, task_id: str, *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until a result of ``task_id`` is stored; whether one
        is. Raises Redis's errors (Redis gone: the waiter reads the records instead)."""
        end = _end_key(self.get_key_for_task(task_id))  # type: ignore[attr-defined]
        # Each wait ends before the connection's socket timeout, so that a wait with nothing
        # to show is not taken for Redis's loss.
        socket_timeout = self.connparams.get("socket_timeout")
        longest = max(socket_timeout - 1.0, 0.5) if socket_timeout else timeout
        until = time.monotonic() + timeout
        while (left := until - time.monotonic()) > 0:
            # BLMOVE to the same list takes the entry and puts it back in one step; its
            # timeout of 0 would mean for ever, hence at least a millisecond.
            if self.client.blmove(end, end, max(min(left, longest), 0.001), "RIGHT", "LEFT"):
                return True
        return False


def _end_key(result_key: str | bytes) -> bytes:
    """The end list's key of the result stored under ``result_key``."""
    key = result_key.encode() if isinstance(result_key, str) else result_key
    return key + b".end"
