"""kombu's Redis transport, keeping one Redis client per channel instead of one per use.

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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
