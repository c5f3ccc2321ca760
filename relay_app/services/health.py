"""Readiness: whether each dependency answers, and how fast, each checked with a short
timeout. (Liveness, the web process answering at all, needs no check: ``/healthz``.)"""

import socket
import threading
import time
from collections.abc import Callable
from typing import TypedDict

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
    for address in settings.KAFKA_ADDRESS.split(","):
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
    """Every gRPC server: with several, each must say it serves (the client balances over all)."""
    for address in settings.GRPC_ADDRESS.split(","):
        grpc_serving(address)


def _worker() -> None:
    """At least one Celery worker answers a ping (the first answer is enough)."""
    from kombu.exceptions import OperationalError

    from ..tasks import chain_app

    app = chain_app()

    # A broker connection the pool kept across a Redis restart fails once ("Connection
    # closed by server"); the second try gets a new one. Redis really down fails both.
    for attempt in (1, 2):
        try:
            answered = app.control.ping(timeout=_TIMEOUT, limit=1)
            break
        except (redis.ConnectionError, OperationalError):
            if attempt == 2:
                raise
    if not answered:
        raise RuntimeError(f"no Celery worker answered within {_TIMEOUT:g} s")


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "redis": _redis,
    "kafka": _kafka,
    "grpc": _grpc,
    "worker": _worker,
}


class Check(TypedDict):
    status: str  # "ok", or "unavailable: <why>"
    latency_ms: float


# Probes come often and from many places at once (load balancers, compose, people): one
# round of checks at a time per process, its result shared for this long.
_FRESH_SECONDS = 1.0
_lock = threading.Lock()
_last: tuple[float, dict[str, Check]] | None = None


def readiness() -> dict[str, Check]:
    """For every dependency, ``ok`` or why not, and how long the check took: checked at most
    once a second in this process, however many ask at once."""
    global _last
    with _lock:
        if _last is None or time.monotonic() - _last[0] > _FRESH_SECONDS:
            _last = (time.monotonic(), _check_all())
        return _last[1]


def _check_all() -> dict[str, Check]:
    results: dict[str, Check] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
            status = f"unavailable: {exc}"
        results[name] = {
            "status": status,
            "latency_ms": round((time.monotonic() - started) * 1000, 1),
        }
    return results
