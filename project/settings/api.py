"""The HTTP API: DRF, its schema, who may relay and how often, request bodies, event streams,
and where clients reach the web server."""

from .environment import env, rate
from .relay import RELAY_MESSAGE_MAX_LENGTH

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # API clients send a Bearer token; people in a browser (browsable API, docs) log in with a
    # session. HTTP Basic is not accepted: it sends the password, which the server must then
    # hash on every request.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "relay_app.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Closed unless a view opens itself: a new view needs a login until someone decides otherwise.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["relay_app.api.parsers.JSONParser"],
    # The browsable API (HTML) for people signed in, or everyone where the docs are public.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "relay_app.api.negotiation.BrowsableForSignedInPeople",
    "DEFAULT_PAGINATION_CLASS": "relay_app.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "relay_app.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI 3 schema (/api/schema/) and its interactive docs (/api/docs/). Swagger UI comes
# from drf-spectacular-sidecar's static files: the docs work offline, with no CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "relay",
    "DESCRIPTION": (
        "A message carried REST → Kafka → gRPC → Kafka → REST, every hop recorded. Errors are"
        " JSON: `detail` says why; invalid input also has `errors`, per field."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs answer who may read the API docs (RELAY_PUBLIC_API_DOCS).
    "SERVE_PERMISSIONS": ["relay_app.api.permissions.CanReadApiDocs"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TransactionStatus": "relay_app.models.Transaction.Status",
        "Stage": "relay_app.api.serializers.STAGE_SLUGS",
        "HealthStatus": "relay_app.api.serializers.HEALTH_STATUSES",
        "BulkAction": "relay_app.models.BulkJob.Action",
        "BulkJobStatus": "relay_app.models.BulkJob.Status",
    },
    # No online validator badge: the docs never reach outside this server.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# Relaying without a token or session (POST /api/relay/, the original example's endpoint). Off: only
# development settings turn it on, and a system check warns about it in production.
RELAY_ALLOW_ANONYMOUS_RELAY = env.bool("RELAY_ALLOW_ANONYMOUS_RELAY", default=False)
# The API root, its OpenAPI schema and Swagger UI for anonymous visitors too (development).
RELAY_PUBLIC_API_DOCS = env.bool("RELAY_PUBLIC_API_DOCS", default=False)
# How many relay requests a user, and an anonymous client address, may make: "N/second",
# "N/minute", "N/hour" or "N/day"; a burst of N, then one every period/N (429 beyond it).
RELAY_THROTTLE_RATE = rate("RELAY_THROTTLE_RATE", default="120/minute")
RELAY_ANONYMOUS_THROTTLE_RATE = rate("RELAY_ANONYMOUS_THROTTLE_RATE", default="30/minute")
# Reverse proxies in front of the web server that append the client's address to
# X-Forwarded-For. 0 (no proxy): the header is ignored, since any client can write it. The
# header counts only on a connection from one of RELAY_TRUSTED_PROXY_ADDRESSES (empty: any).
RELAY_TRUSTED_PROXY_COUNT = env.int("RELAY_TRUSTED_PROXY_COUNT", default=0)
RELAY_TRUSTED_PROXY_ADDRESSES = env.list("RELAY_TRUSTED_PROXY_ADDRESSES", default=[])

# The largest request body read: the longest message, every character escaped as a JSON
# surrogate pair (12 bytes), and room for the rest of the object. Django refuses a longer
# Content-Length unread (the API answers 413), and so does the proxy in front of it.
DATA_UPLOAD_MAX_MEMORY_SIZE = RELAY_MESSAGE_MAX_LENGTH * 12 + 4096

# An event stream (GET /api/transactions/<id>/events/) sends a ": heartbeat" comment after
# this many seconds without a hop: proxies keep the connection, and a client that left is
# noticed (its thread freed) at the latest then. Shorter than any proxy's read timeout.
RELAY_EVENTS_HEARTBEAT_SECONDS = env.float("RELAY_EVENTS_HEARTBEAT_SECONDS", default=15.0)
# Event streams one web server process holds open at once, each a thread while it lasts: in
# all (well under its 128 threads, ops/processes.py), and for one user. Beyond, 429 with
# Retry-After. Counted per process: a user may hold as many in each process of each web server.
RELAY_EVENT_STREAMS_PER_PROCESS = env.int("RELAY_EVENT_STREAMS_PER_PROCESS", default=32)
RELAY_EVENT_STREAMS_PER_USER = env.int("RELAY_EVENT_STREAMS_PER_USER", default=8)

# Where clients reach the web server (the local stack and `make demo` use it): the reverse
# proxy (nginx) in front of the web servers, which listen on the ports after this one, on
# loopback only (ops/processes.py).
HTTP_ADDRESS = env.str("HTTP_ADDRESS", default="127.0.0.1:8000")
# The proxy serves HTTPS with this certificate and key (the secure profile). The local tools
# verify it against the CA.
HTTP_TLS_CERT_FILE = env.str("HTTP_TLS_CERT_FILE", default="")
HTTP_TLS_KEY_FILE = env.str("HTTP_TLS_KEY_FILE", default="")
HTTP_TLS_CA_FILE = env.str("HTTP_TLS_CA_FILE", default="")
