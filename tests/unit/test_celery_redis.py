"""kombu's Redis channels keep one client, and build another when their pool is replaced."""

from types import SimpleNamespace
from typing import Any

from django.test import SimpleTestCase
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

import project.celery  # noqa: F401 - installs the patch, as every process of the relay does


class FakeChannel:
    """What ``conn_or_acquire`` uses of a channel: its pool and how it builds a client."""

    def __init__(self) -> None:
        self.pool = object()
        self.built = 0
        self.connection = SimpleNamespace(client=object())  # kombu's transport, connected

    def _create_client(self) -> Any:
        self.built += 1
        return SimpleNamespace(connection_pool=self.pool)


class KeptClientTests(SimpleTestCase):
    def test_a_channel_builds_its_client_once(self) -> None:
        channel = FakeChannel()
        conn_or_acquire = kombu_redis.Channel.conn_or_acquire
        clients = []
        for _ in range(5):
            with conn_or_acquire(channel) as client:  # type: ignore[arg-type]
                clients.append(client)
        self.assertEqual(channel.built, 1)
        self.assertTrue(all(client is clients[0] for client in clients))

    def test_a_new_pool_gets_a_new_client(self) -> None:
        channel = FakeChannel()
        conn_or_acquire = kombu_redis.Channel.conn_or_acquire
        with conn_or_acquire(channel) as first:  # type: ignore[arg-type]
            pass
        channel.pool = object()  # kombu's _disconnect_pools after a fork or an error
        with conn_or_acquire(channel) as second:  # type: ignore[arg-type]
            self.assertIsNot(second, first)
            self.assertIs(second.connection_pool, channel.pool)

    def test_a_client_given_is_used_as_it_is(self) -> None:
        given = object()
        with kombu_redis.Channel.conn_or_acquire(FakeChannel(), given) as client:  # type: ignore[arg-type]
            self.assertIs(client, given)

    def test_a_closed_channel_raises_what_kombus_closing_ignores(self) -> None:
        # Redis gone while the worker held tasks: kombu closes the channel and tries to put
        # them back; its AttributeError there stopped the worker.
        channel = FakeChannel()
        channel.connection.client = None
        with self.assertRaises(RedisConnectionError):  # noqa: SIM117 - the context is the call
            with kombu_redis.Channel.conn_or_acquire(channel):  # type: ignore[arg-type]
                pass
        self.assertEqual(channel.built, 0)
