"""What the OpenAPI schema must say that drf-spectacular cannot read from the serializers.

Imported by ``RelayAppConfig.ready`` so the extensions register before any schema is built.
"""

from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from .serializers import (
    IDEMPOTENCY_HEADER,
    KEY_PATTERN,
    ClosedSerializer,
    MessageField,
    StrictCharField,
)


class ClosedSerializerSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """A ``ClosedSerializer`` refuses other fields: ``additionalProperties: false``."""

    target_class = ClosedSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(  # type: ignore[no-untyped-call]
            self.target, direction
        )
        return {**schema, "additionalProperties": False}


class MessageFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """A message has something other than whitespace in it and no NUL character."""

    target_class = MessageField

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return {"type": "string", "pattern": MessageField.schema_pattern}


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """A string field that takes strings only, without a NUL character."""

    target_class = StrictCharField

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "pattern": StrictCharField.schema_pattern}
        if self.target.max_length is not None:
            schema["maxLength"] = self.target.max_length
        return schema


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """``Authorization: Bearer <token>``, so Swagger UI's "Authorize" asks for a token."""

    target_class = "relay_app.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API token from `make token NAME=USERNAME`"
                " (`.venv/bin/python manage.py create_api_token USERNAME`)."
            ),
        }


class ScraperTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The scraper's ``RELAY_METRICS_TOKEN``, as a bearer token for ``/metrics`` only."""

    target_class = "relay_app.api.authentication.ScraperTokenAuthentication"
    name = "metricsScraper"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "`RELAY_METRICS_TOKEN`, for a Prometheus scraper.",
        }


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    pattern=KEY_PATTERN,
    description=(
        "Makes the POST safe to repeat: the same key with the same message returns the first"
        " transaction without running the chain again; with another message, 422."
    ),
)


PREFER_PARAMETER = OpenApiParameter(
    "Prefer",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "`respond-async`: answer 202 at once with the pending transaction, its `Location`"
        " to poll and its `events` stream, instead of waiting for the whole chain (RFC 7240;"
        " other preferences are ignored). Needs a token or a session: an anonymous client"
        " could not follow the transaction (401)."
    ),
)

LAST_EVENT_ID_PARAMETER = OpenApiParameter(
    "Last-Event-ID",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "The id of the last event received (a hop's position, 1-8), as EventSource sends it"
        " when it reconnects: hops up to it are not sent again. Anything else counts as none."
    ),
)
