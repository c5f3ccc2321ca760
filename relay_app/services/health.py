"""Liveness of each dependency, each checked with a short timeout."""

import socket
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..integrations.relay_rpc import SERVICE_NAME, open_channel

_TIMEOUT = 1.0


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    client = redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_timeout=_TIMEOUT,
        socket_connect_timeout=_TIMEOUT,
        **settings.REDIS_TLS,
    )
    try:
        client.ping()
    finally:
        client.close()


def _kafka() -> None:
    host, _, port = settings.KAFKA_BOOTSTRAP_SERVERS.split(",")[0].rpartition(":")
    socket.create_connection((host.strip("[]"), int(port)), timeout=_TIMEOUT).close()


def _grpc() -> None:
    with open_channel(settings.GRPC_ADDRESS) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=_TIMEOUT
        )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "redis": _redis,
    "kafka": _kafka,
    "grpc": _grpc,
}


def health_check() -> dict[str, str]:
    """``{"database": "ok", "kafka": "unreachable: ...", ...}`` for every dependency."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy", with its reason
            results[name] = f"unavailable: {exc}"
    return results
