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
    """One broker that accepts a connection is enough: the client finds the others from it."""
    errors = []
    for address in settings.KAFKA_BOOTSTRAP_SERVERS.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=_TIMEOUT).close()
            return
        except OSError as exc:
            errors.append(f"{address.strip()}: {exc}")
    raise OSError("; ".join(errors))


def grpc_serving(address: str) -> None:
    """The gRPC server(s) at ``address`` say the relay's service is serving; raises if not."""
    with open_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=_TIMEOUT
        )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _grpc() -> None:
    grpc_serving(settings.GRPC_ADDRESS)


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
