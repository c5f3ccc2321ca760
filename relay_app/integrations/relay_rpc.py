"""The gRPC client of hop 4: one channel per process, a deadline and a capability on every
call; and the capability's check, which the gRPC server makes before anything else."""

import ipaddress
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import grpc
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from relay.v1 import relay_pb2, relay_pb2_grpc

from .. import signing
from ..errors import DependencyUnavailable, TransactionEnded
from ..hops import Stage, max_text_length

# The service's full name, from the proto: the server's health and reflection, and the
# health check name it so.
SERVICE_NAME: str = relay_pb2.DESCRIPTOR.services_by_name["Relay"].full_name

# Calls go round-robin over every server the address names, skipping those that are down.
# gRPC's own retries are off: a call that fails is retried by the hop's policy
# (RELAY_RETRY_GRPC_*, relay_app/retries.py), where each attempt is recorded and seen.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def message_size_options() -> list[tuple[str, int]]:
    """Channel and server options: no message larger than the longest text the relay can send
    or answer (4 bytes a character at most in UTF-8, and room for the rest of the message).

    gRPC's own default is 4 MB; a bigger message is refused (RESOURCE_EXHAUSTED) unread.
    """
    longest = max_text_length(settings.RELAY_MESSAGE_MAX_LENGTH, after=Stage.GRPC_SERVER)
    size = 4 * longest + 1024
    return [("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)]


def read_pem(setting: str) -> bytes | None:
    """The file a TLS setting names, ``None`` if the setting is empty; a missing or unreadable
    file is an error that names the setting."""
    path: str = getattr(settings, setting)
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"{setting}: cannot read {path}: {exc.strerror}") from exc


def channel_credentials() -> grpc.ChannelCredentials | None:
    """The client's TLS from settings: the CA that signed the server's certificate, and the
    client's own certificate (mutual TLS). ``None``: plaintext (no GRPC_TLS_CA_FILE)."""
    root = read_pem("GRPC_TLS_CA_FILE")
    if root is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=read_pem("GRPC_TLS_KEY_FILE"),
        certificate_chain=read_pem("GRPC_TLS_CERT_FILE"),
    )


def target(addresses: str) -> str:
    """gRPC's name for the servers at ``addresses`` (host:port, comma-separated): one name is
    resolved by DNS, every address it has being a server; several must be IP addresses of one
    family (gRPC lists no several names), and are listed as they are."""
    listed = [address.strip() for address in addresses.split(",")]
    if len(listed) == 1:
        return listed[0]
    families = set()
    for address in listed:
        host = address.rpartition(":")[0].strip("[]")
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(
                f"GRPC_ADDRESS lists {address!r}: list IP addresses, or give one name that"
                " resolves to every server"
            ) from None
    if len(families) > 1:
        raise ValueError("GRPC_ADDRESS mixes IPv4 and IPv6 addresses: list one family")
    return f"ipv{families.pop()}:" + ",".join(listed)


def open_channel(address: str, *, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A channel to the server(s) at ``address``: over TLS when settings say so."""
    first_host = address.split(",")[0].rpartition(":")[0].strip("[]")
    address = target(address)
    credentials = channel_credentials()
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    if address.startswith("ipv"):
        # Several servers: each is verified against the first one's host (their certificate
        # names it), not gRPC's default, the whole list.
        options = [*options, ("grpc.ssl_target_name_override", first_host)]
    return grpc.secure_channel(address, credentials, options=options)


# The call metadata of the capability: the seal, and the deadline (Unix time) it holds until.
CAPABILITY_HEADER = "relay-capability"
CAPABILITY_DEADLINE_HEADER = "relay-capability-deadline"
_CAPABILITY_KEY = "RELAY_GRPC_CAPABILITY_KEY"


def _capability_fields(transaction_id: str, text: str, deadline: str) -> list[object]:
    return ["relay.grpc", int(Stage.GRPC_SERVER), transaction_id, deadline, text]


def capability(*, transaction_id: str, text: str, deadline: float) -> tuple[tuple[str, str], ...]:
    """The call metadata that proves a worker issued this call: hop 5 of this transaction, on
    this text, until ``deadline``. Only a holder of ``RELAY_GRPC_CAPABILITY_KEY`` can make it,
    so whoever else reaches the gRPC port cannot have the server write a line."""
    until = repr(float(deadline))
    proof = signing.seal(_CAPABILITY_KEY, _capability_fields(transaction_id, text, until))
    return ((CAPABILITY_DEADLINE_HEADER, until), (CAPABILITY_HEADER, proof))


def capability_refusal(
    metadata: Iterable[tuple[str, str | bytes]], *, transaction_id: str, text: str
) -> tuple[grpc.StatusCode, str] | None:
    """Why a call's capability does not hold, with the status to answer; ``None`` if it does.

    Missing or not matching: ``PERMISSION_DENIED``. Past its deadline: ``DEADLINE_EXCEEDED``,
    which the worker takes for the transaction's deadline, as it is; only a matching
    capability gets that far, so a caller without the key learns nothing else.
    """
    given = dict(metadata)
    until = given.get(CAPABILITY_DEADLINE_HEADER)
    if not isinstance(until, str):
        return grpc.StatusCode.PERMISSION_DENIED, "the call carries no relay capability"
    try:
        signing.check(
            _CAPABILITY_KEY,
            _capability_fields(transaction_id, text, until),
            given.get(CAPABILITY_HEADER),
        )
    except signing.Refused as refused:
        return grpc.StatusCode.PERMISSION_DENIED, f"the relay capability is refused: {refused}"
    expires = float(until)  # sealed by a worker: a number, as it wrote it
    if not math.isfinite(expires) or time.time() > expires:
        return grpc.StatusCode.DEADLINE_EXCEEDED, "the relay capability has expired"
    return None


class GrpcDeadlineExceeded(Exception):
    """The call's deadline passed before the server answered."""


def _failure(exc: grpc.RpcError) -> Exception:
    """What a failed call raises: the deadline, or the server unavailable with the status
    code as the error's kind (which the retry policy judges)."""
    # Errors raised by a call are also grpc.Call objects, with a status code and details.
    code: grpc.StatusCode | None = getattr(exc, "code", lambda: None)()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return GrpcDeadlineExceeded(str(exc))
    details_of = getattr(exc, "details", None)
    details = details_of() if details_of else str(exc)
    return DependencyUnavailable(
        "gRPC server",
        f"the call failed with {code.name if code else 'an error'}",
        internal=f"{settings.GRPC_ADDRESS}: {details}",
        kind=code.name if code else "UNKNOWN",
    )


@dataclass(frozen=True)
class ProcessResult:
    """The gRPC server's hop: its text and when it ran."""

    text: str
    started_at: datetime
    finished_at: datetime


class _Connection:
    """A channel and what it last said about its connectivity.

    Tracking the state through one subscription costs nothing per call, where asking the
    channel for readiness on every call started a thread each time.
    """

    def __init__(self, address: str) -> None:
        self.channel = open_channel(
            address,
            options=[
                *message_size_options(),
                ("grpc.enable_retries", 0),
                ("grpc.service_config", _SERVICE_CONFIG),
                # Reconnect quickly once a restarted server is back, not after minutes of backoff.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self.stub = relay_pb2_grpc.RelayStub(self.channel)
        self.usable = threading.Event()
        self.channel.subscribe(self._on_state, try_to_connect=True)

    def _on_state(self, state: grpc.ChannelConnectivity) -> None:
        # IDLE is usable too: a call on an idle channel connects it.
        if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.IDLE):
            self.usable.set()
        else:
            self.usable.clear()


@cache
def _connection_for(pid: int, address: str) -> _Connection:
    return _Connection(address)


def connect() -> None:
    """Open this process's channel now; it connects in the background."""
    _connection_for(os.getpid(), settings.GRPC_ADDRESS)


def process(
    *,
    transaction_id: str,
    text: str,
    timeout: float,
    connect_timeout: float,
    deadline: float,
    ended: Callable[[], str | None] = lambda: None,
    check_every: float = 0.05,
) -> ProcessResult:
    """Call ``relay.v1.Relay/Process`` once, with a capability until ``deadline`` (the
    transaction's); raise if the server is unreachable, refuses or is too slow.

    The channel must be usable within ``connect_timeout`` (a server that is down fails the
    attempt promptly; one that just came back is found, whatever the channel's reconnect
    backoff); the call itself then gets all of ``timeout``. Every ``check_every`` seconds of
    waiting, ``ended`` says whether the transaction ended meanwhile (its status, else
    ``None``): then the call is cancelled, which the server sees (its context is no longer
    active), and ``TransactionEnded`` is raised.
    """
    connection = _connection_for(os.getpid(), settings.GRPC_ADDRESS)
    give_up = time.monotonic() + max(min(connect_timeout, timeout), 0)
    while not connection.usable.wait(max(min(check_every, give_up - time.monotonic()), 0)):
        if time.monotonic() >= give_up:
            raise DependencyUnavailable(
                "gRPC server",
                f"no connection within {connect_timeout:g} s",
                internal=f"address {settings.GRPC_ADDRESS}",
                kind=grpc.StatusCode.UNAVAILABLE.name,
            )
        if status := ended():
            raise TransactionEnded(transaction_id, status)
    call = connection.stub.Process.future(
        relay_pb2.ProcessRequest(transaction_id=transaction_id, text=text),
        timeout=max(timeout, 0.001),
        metadata=capability(transaction_id=transaction_id, text=text, deadline=deadline),
    )
    while True:
        try:
            response = call.result(timeout=check_every)
            break
        except grpc.FutureTimeoutError:
            if status := ended():
                call.cancel()
                raise TransactionEnded(transaction_id, status) from None
        except grpc.FutureCancelledError:
            raise TransactionEnded(transaction_id, "cancelled") from None
        except grpc.RpcError as exc:
            raise _failure(exc) from exc
    return ProcessResult(
        text=response.text,
        started_at=response.started_at.ToDatetime(tzinfo=UTC),
        finished_at=response.finished_at.ToDatetime(tzinfo=UTC),
    )
