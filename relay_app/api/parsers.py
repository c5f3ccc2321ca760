"""The API's JSON parser: DRF's, with a size limit and a clean refusal of any body it cannot
read, never a 500."""

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers, status


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def max_body_bytes() -> int:
    """The largest request body read (Django's DATA_UPLOAD_MAX_MEMORY_SIZE, set from
    RELAY_MESSAGE_MAX_LENGTH); the proxy in front refuses larger ones first."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class JSONParser(parsers.JSONParser):
    """DRF's, whose body Django reads only up to ``max_body_bytes()`` (413 beyond, unread).

    Python's decoder gives up on deeply nested input (``[[[[...``) with a RecursionError,
    which DRF would let through as a 500; here it is a 400 like any other unreadable body.
    """

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from exc
