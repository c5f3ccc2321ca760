"""The gRPC server of hop 5: ``relay.v1.Relay/Process`` with health checking and reflection.

It needs no database: it appends its text, logs the original example's line and reports its timing
back to the client, which records the hop. It takes only what the relay itself sends: a call
with a worker's capability for this very transaction and text (``relay_rpc.capability``),
then a transaction id that is a UUID and a text no longer than the longest message's at this
hop. Refusals are counted (``relay_grpc_calls``), not logged, so a flood of them fills no log.
Over mutual TLS, only the workers' certificate reaches the relay's service, and readiness
checks' the health service (``grpc_peers``).
A call its client cancelled (the transaction was cancelled) is answered with nothing done:
no log line once the context is no longer active; counted as ``CANCELLED``.
"""

import logging
import signal
import threading
import uuid
from concurrent import futures
from types import FrameType

import grpc
from django.conf import settings
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from relay.v1 import relay_pb2, relay_pb2_grpc

from . import tracing
from .grpc_peers import PeerNames
from .hops import Stage, max_text_length
from .integrations.relay_rpc import (
    SERVICE_NAME,
    capability_refusal,
    message_size_options,
    read_pem,
)
from .metrics import GRPC_CALLS, serve_metrics
from .original_log import log_hop

logger = logging.getLogger(__name__)

# Time in-flight calls get to finish on SIGTERM before the server closes.
STOP_GRACE_SECONDS = 5.0


def _invalid(request: relay_pb2.ProcessRequest) -> str | None:
    """Why the request is not one the relay could have sent, or ``None``."""
    try:
        canonical = str(uuid.UUID(request.transaction_id)) == request.transaction_id
    except ValueError:
        canonical = False
    if not canonical:
        return "transaction_id must be a UUID in its canonical form (8-4-4-4-12 lowercase hex)"
    if not request.text:
        return "text is required"
    limit = max_text_length(settings.RELAY_MESSAGE_MAX_LENGTH, after=Stage.GRPC_CLIENT)
    if len(request.text) > limit:
        return f"text is {len(request.text)} characters; at most {limit} reach this hop"
    return None


class RelayServicer(relay_pb2_grpc.RelayServicer):
    """Performs hop 5 on the text the gRPC client sends."""

    def Process(  # noqa: N802 - the method name is fixed by the proto
        self, request: relay_pb2.ProcessRequest, context: grpc.ServicerContext
    ) -> relay_pb2.ProcessResponse:
        if refusal := capability_refusal(
            context.invocation_metadata(), transaction_id=request.transaction_id, text=request.text
        ):
            code, reason = refusal
            GRPC_CALLS.labels(code.name).inc()
            context.abort(code, reason)
        if problem := _invalid(request):
            # Refused before anything is logged: nothing a caller sends reaches the log unchecked.
            GRPC_CALLS.labels("INVALID_ARGUMENT").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        with tracing.hop_span(Stage.GRPC_SERVER, request.transaction_id):
            started_at = Timestamp()
            started_at.GetCurrentTime()
            text = Stage.GRPC_SERVER.spec.apply(request.text)
            if not context.is_active():
                # Cancelled by its client (or past its deadline): nobody takes the answer, and
                # nothing is recorded of a hop that does not count.
                GRPC_CALLS.labels("CANCELLED").inc()
                return relay_pb2.ProcessResponse()
            log_hop(Stage.GRPC_SERVER, text, transaction_id=request.transaction_id)
            finished_at = Timestamp()
            finished_at.GetCurrentTime()
        GRPC_CALLS.labels("OK").inc()
        return relay_pb2.ProcessResponse(text=text, started_at=started_at, finished_at=finished_at)


def server_credentials() -> grpc.ServerCredentials | None:
    """The server's TLS from settings: its certificate and key, and the CA its clients'
    certificates must come from (mutual TLS). ``None``: plaintext."""
    certificate = read_pem("GRPC_SERVER_TLS_CERT_FILE")
    key = read_pem("GRPC_SERVER_TLS_KEY_FILE")
    if certificate is None or key is None:
        return None
    client_ca = read_pem("GRPC_SERVER_TLS_CA_FILE")
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def build_server(
    address: str, *, servicer: RelayServicer | None = None, max_workers: int = 16
) -> tuple[grpc.Server, health.HealthServicer]:
    """A server bound to ``address`` with the relay and health services, reflection where
    settings allow it (development), over TLS where settings give a certificate."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=message_size_options(),
        interceptors=[PeerNames()],  # over mutual TLS, the workers' certificate alone
    )
    relay_pb2_grpc.add_RelayServicer_to_server(servicer or RelayServicer(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.RELAY_GRPC_REFLECTION:
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    credentials = server_credentials()
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address} (is the port already in use?): {exc}") from exc
    if port == 0:
        raise OSError(f"cannot listen on {address}: is the port already in use?")
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer


def serve(address: str) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully (health goes NOT_SERVING first)."""
    server, health_servicer = build_server(address)
    server.start()
    serve_metrics()
    logger.info("gRPC server listening on %s", address)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        logger.info("gRPC server stopping (signal %d)", signum)
        health_servicer.enter_graceful_shutdown()
        server.stop(STOP_GRACE_SECONDS)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.wait_for_termination()
    logger.info("gRPC server stopped")
