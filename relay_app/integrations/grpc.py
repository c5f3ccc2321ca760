"""The gRPC client of hop 4: one channel per process, a deadline on every call."""

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import grpc
from django.conf import settings
from relay.v1 import relay_pb2, relay_pb2_grpc

from ..errors import DependencyUnavailable

# Retry a call that failed before the server took it (UNAVAILABLE: a restart, a dropped
# connection) a few times with backoff; the call's deadline still bounds the whole.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "relay.v1.Relay"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class GrpcDeadlineExceeded(Exception):
    """The call's deadline passed before the server answered."""


@dataclass(frozen=True)
class ProcessResult:
    """The gRPC server's hop: its text and when it ran."""

    text: str
    started_at: datetime
    finished_at: datetime


@cache
def _channel_for(pid: int, address: str) -> grpc.Channel:
    return grpc.insecure_channel(
        address,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _SERVICE_CONFIG),
            # Reconnect quickly once a restarted server is back, instead of backing off for minutes.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


def process(
    *, transaction_id: str, text: str, timeout: float, connect_timeout: float
) -> ProcessResult:
    """Call ``relay.v1.Relay/Process``; raise if the server is unreachable or too slow.

    The channel must be ready within ``connect_timeout`` (a server that is down answers
    503 promptly; one that just came back is found, whatever the channel's reconnect
    backoff); the call itself then gets all of ``timeout``.
    """
    channel = _channel_for(os.getpid(), settings.GRPC_ADDRESS)
    try:
        grpc.channel_ready_future(channel).result(timeout=max(min(connect_timeout, timeout), 0))
    except grpc.FutureTimeoutError as exc:
        raise DependencyUnavailable(
            "gRPC server",
            f"{settings.GRPC_ADDRESS} did not accept a connection within {connect_timeout:g} s",
        ) from exc
    stub = relay_pb2_grpc.RelayStub(channel)
    try:
        response = stub.Process(
            relay_pb2.ProcessRequest(transaction_id=transaction_id, text=text),
            timeout=max(timeout, 0.001),
        )
    except grpc.RpcError as exc:
        # Errors raised by a call are also grpc.Call objects, with a status code and details.
        code: grpc.StatusCode | None = getattr(exc, "code", lambda: None)()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise GrpcDeadlineExceeded(str(exc)) from exc
        details_of = getattr(exc, "details", None)
        details = details_of() if details_of else str(exc)
        raise DependencyUnavailable(
            "gRPC server", f"{settings.GRPC_ADDRESS}: {code.name if code else 'error'}: {details}"
        ) from exc
    return ProcessResult(
        text=response.text,
        started_at=response.started_at.ToDatetime(tzinfo=UTC),
        finished_at=response.finished_at.ToDatetime(tzinfo=UTC),
    )
