"""Who may call the gRPC server, by the certificate it proved over mutual TLS: the relay's
service for the workers alone, the health service for readiness checks too
(``GRPC_SERVER_TLS_CLIENT_NAMES``, ``GRPC_SERVER_TLS_HEALTH_CLIENT_NAMES``).

TLS proves that the CA issued a certificate; the CA issues one to every service of the stack,
so the server then asks which service it is (its common name): a web server's key, say,
stolen or misused, still writes no hop-5 line. Refused: ``PERMISSION_DENIED``, counted, not
logged. Without mutual TLS (plaintext, development) there is no name to check.
"""

from collections.abc import Callable
from typing import Any

import grpc
from django.conf import settings
from grpc_health.v1 import health

from .metrics import GRPC_CALLS

_HEALTH = f"/{health.SERVICE_NAME}/"


def peer_names(context: grpc.ServicerContext) -> set[str] | None:
    """The common names of the caller's certificate; ``None`` if the call is not over TLS."""
    auth: dict[str, Any] = dict(context.auth_context())
    if list(auth.get("transport_security_type", [])) != [b"ssl"]:
        return None
    return {bytes(name).decode() for name in auth.get("x509_common_name", [])}


class PeerNames(grpc.ServerInterceptor):
    """Answers a call only for a client certificate the settings name for its service."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        is_health = handler_call_details.method.startswith(_HEALTH)
        allowed = set(
            settings.GRPC_SERVER_TLS_HEALTH_CLIENT_NAMES
            if is_health
            else settings.GRPC_SERVER_TLS_CLIENT_NAMES
        )

        def guarded(behaviour: Callable[..., Any]) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                names = peer_names(context)
                if names is not None and not names & allowed:
                    if not is_health:
                        GRPC_CALLS.labels("PERMISSION_DENIED").inc()
                    context.abort(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"this service is not for the certificate of {', '.join(sorted(names))}",
                    )
                return behaviour(request, context)

            return call

        # grpc's handlers are named tuples: the same handler, its behaviour guarded.
        replace: Callable[..., grpc.RpcMethodHandler] = handler._replace  # type: ignore[attr-defined]
        if handler.unary_unary is not None:
            return replace(unary_unary=guarded(handler.unary_unary))
        if handler.unary_stream is not None:
            return replace(unary_stream=guarded(handler.unary_stream))
        return handler
