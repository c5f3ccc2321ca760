"""kombu's Redis transport, keeping one Redis client per channel instead of one per use.

Outside its event loop kombu builds a new ``redis.Redis`` for nearly everything it does:
publishing a task, the bookkeeping of unacknowledged tasks, each acknowledgement
(``Channel.conn_or_acquire``). Building one costs about 0.1 ms of CPU here (redis-py sets up
its retry policy and parser each time; redis-py issue 3624, PR 4124), several times for each
of a transaction's five tasks. A ``redis.Redis`` may be shared by threads (it takes a
connection from its pool for each command), so each channel keeps the one it built, and
builds another only when kombu has replaced the channel's pool (after a fork or an error).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

_CLIENT = "_relay_client"


@contextmanager
def _conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
    if client:
        yield client
        return
    kept = self.__dict__.get(_CLIENT)
    if kept is None or kept.connection_pool is not self.pool:
        kept = self.__dict__[_CLIENT] = self._create_client()
    yield kept


def keep_redis_clients() -> None:
    """Make kombu's Redis channels keep their client (idempotent)."""
    kombu_redis.Channel.conn_or_acquire = _conn_or_acquire  # type: ignore[method-assign]
