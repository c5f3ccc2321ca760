"""Every error a client can cause or meet is JSON with a reason, never an HTML page or a 500."""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase, JsonResponse, UnreadablePostError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import RelayError
from .parsers import RequestTooLarge, max_body_bytes

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
    if isinstance(exc, UnreadablePostError):
        # The body stopped coming before its Content-Length (project/webserver.py's timeout),
        # or the client left.
        exc = exceptions.ParseError("The request body did not arrive in full.")
    if isinstance(exc, RequestDataTooBig):
        # Django refuses it from its Content-Length, unread (DATA_UPLOAD_MAX_MEMORY_SIZE).
        length = context["request"].META.get("CONTENT_LENGTH")
        exc = RequestTooLarge(
            f"The request body is {length} bytes; at most {max_body_bytes()} are read."
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        errors = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = {
            "detail": "Invalid request: see errors.",
            "errors": _flat(errors),
        }
    return response


def _flat(errors: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """Each field's reasons; a nested object's fields named by their path (``filter.owner``)."""
    flat: dict[str, list[str]] = {}
    for field, reasons in errors.items():
        if isinstance(reasons, dict):
            flat |= _flat(reasons, f"{prefix}{field}.")
        else:
            flat[f"{prefix}{field}"] = _reasons(reasons)
    return flat


def _reasons(reasons: object) -> list[str]:
    """Always a list of strings, whether the check raised one reason or several."""
    return [str(reason) for reason in reasons] if isinstance(reasons, list) else [str(reasons)]


def unlogged(response: ResponseT) -> ResponseT:
    """``response``, a 503 or 504 that is an answer, not a fault of the server (a settled
    transaction, a refusal at capacity): the access log has its status, so Django need not
    log each as an error again (under overload, hundreds a second)."""
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": f"Not found: {request.path}"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)


class JsonErrorsMiddleware:
    """First of all middleware: the API's errors are JSON whoever answers them.

    Under ``/api/``, a client error that Django answered with a page of its own (a URL no
    route matches, a Host not allowed; under DEBUG, its debug pages) is answered as JSON.
    Everywhere, a request with a chunked body is refused with 411: Django would read it as
    empty. The proxy in front passes every body with a Content-Length; only a client that
    bypasses it sends one chunked.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if "HTTP_TRANSFER_ENCODING" in request.META:
            return _json("Send the request body with a Content-Length, not chunked.", 411)
        response = self.get_response(request)
        if (
            request.path_info.startswith("/api/")
            and 400 <= response.status_code < 500
            and not isinstance(response, Response)  # DRF's own: JSON, or the browsable API
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return _as_json(request, response)
        return response


def _as_json(request: HttpRequest, page: HttpResponseBase) -> JsonResponse:
    """``page``'s error as the API's JSON, with its other headers."""
    detail = f"Not found: {request.path}" if page.status_code == 404 else f"{page.reason_phrase}."
    answer = _json(detail, page.status_code)
    for header, value in page.items():
        if header.lower() not in ("content-type", "content-length"):
            answer[header] = value
    return answer


def _json(detail: str, status: int) -> JsonResponse:
    """An error answer, with its length: outside CommonMiddleware, nothing else sets it."""
    answer = JsonResponse({"detail": detail}, status=status)
    answer["Content-Length"] = str(len(answer.content))
    return answer
