"""Every error a client can cause or meet is JSON with a reason, never an HTML page or a 500."""

import logging
from typing import Any, TypeVar

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import RelayError

logger = logging.getLogger(__name__)

ResponseT = TypeVar("ResponseT", bound=HttpResponseBase)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler with one error shape: ``{"detail": ..., "errors": {field: [...]}}``.

    A relay error answers its own status (503, 504, 422); a database that is down, 503. The
    client reads which dependency failed; how (a host, a port, the driver's message) goes to
    the log only.
    """
    if isinstance(exc, RelayError):
        return Response({"detail": str(exc)}, status=exc.status_code)
    if isinstance(exc, DatabaseError):
        logger.error("database unavailable: %r", exc)
        return Response(
            {"detail": f"the database is unavailable ({type(exc).__name__})"}, status=503
        )
    if isinstance(exc, (RedisError, BrokerError)):
        # The relay settles its transactions itself; this only keeps a stray one from being a 500.
        logger.error("Redis unavailable: %r", exc)
        return Response({"detail": f"Redis is unavailable ({type(exc).__name__})"}, status=503)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        errors = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = {
            "detail": "Invalid request: see errors.",
            "errors": {field: _reasons(reasons) for field, reasons in errors.items()},
        }
    return response


def _reasons(reasons: object) -> list[str]:
    """Always a list of strings, whether the check raised one reason or several."""
    return [str(reason) for reason in reasons] if isinstance(reasons, list) else [str(reasons)]


def unlogged(response: ResponseT) -> ResponseT:
    """``response``, a 503 or 504 that is an answer, not a fault of the server (a settled
    transaction, a refusal at capacity): the access log has its status, so Django need not
    log each as an error again (under overload, hundreds a second)."""
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"detail": f"Not found: {request.path}"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
