"""Settings shared by every environment, read from the environment in this one place.

Each setting has the name of its environment variable (Django's own take a ``DJANGO_``
prefix there: ``DJANGO_SECRET_KEY`` is ``SECRET_KEY``); ``.env.example`` lists them all with
their defaults. The defaults are the safe ones: who may do what is closed unless a settings
module (``development``) or the environment opens it. Sections: paths, Django, the API, the
relay, message authentication, metrics, tracing, Kafka, Redis and Celery, gRPC, the web
server, logging.
"""

import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

from .environment import (
    addresses,
    choice,
    days_or_off,
    env,
    header_and_value,
    rate,
    url_with_password,
)

# --- Paths -----------------------------------------------------------------------------------

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Data, logs and pid files of the local stack (git-ignored); tests use their own.
RELAY_VAR_DIR = Path(env.str("RELAY_VAR_DIR", default=str(BASE_DIR / "var")))
# Which settings module is in force: "development", "secure", "cluster", "production", "test".
RELAY_ENVIRONMENT = "base"
# How many of each process the local stack runs (ops/processes.py); the cluster profile
# (make up-cluster) runs several. Several brokers and servers take consecutive ports from the
# first address of KAFKA_BOOTSTRAP_SERVERS, GRPC_ADDRESS and RELAY_HTTP_ADDRESS.
RELAY_KAFKA_BROKERS = env.int("RELAY_KAFKA_BROKERS", default=1)
RELAY_WORKERS = env.int("RELAY_WORKERS", default=1)
RELAY_GRPC_SERVERS = env.int("RELAY_GRPC_SERVERS", default=1)
RELAY_WEB_SERVERS = env.int("RELAY_WEB_SERVERS", default=1)

# --- Django ----------------------------------------------------------------------------------

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before rest_framework, so its login page is the relay's (it says who can log in).
    "relay_app",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from our own static files
    "axes",  # locks out repeated failed logins (admin and the browsable API)
]

MIDDLEWARE = [
    # First, so that every error under /api/ it sees is JSON (relay_app/api/errors.py).
    "relay_app.api.errors.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A relay that cannot be done in time is refused before anything is spent on it.
    "relay_app.api.admission.RelayAdmissionMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default; PostgreSQL (or any database Django knows) when DATABASE_URL names it.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{RELAY_VAR_DIR / 'db.sqlite3'}")}
# Keep connections open across requests and tasks (each task is a "request" to Django):
# opening one per hop cost more than the hop's own query.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # The web server and the Celery worker write at the same time: WAL lets readers go on
        # while one writes, IMMEDIATE takes the write lock up front instead of failing half-way,
        # and the timeout makes a writer wait its turn rather than fail with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests start real worker processes, which cannot see an in-memory database.
    DATABASES["default"]["TEST"] = {"NAME": str(RELAY_VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The local development superuser (``manage.py ensure_development_superuser``): only
# development settings turn this on; everywhere else its password is refused at login.
RELAY_DEVELOPMENT_SUPERUSER = False
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out login is refused before its password is even hashed.
    "axes.backends.AxesStandaloneBackend",
    "relay_app.auth.GuardedModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Logins (the admin, the browsable API) through django-axes: this many failures from one
# address, or for one user, lock that address or user out for this many minutes.
RELAY_LOGIN_FAILURE_LIMIT = env.int("RELAY_LOGIN_FAILURE_LIMIT", default=5)
RELAY_LOGIN_LOCKOUT_MINUTES = env.float("RELAY_LOGIN_LOCKOUT_MINUTES", default=15)
AXES_FAILURE_LIMIT = RELAY_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=RELAY_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
# The same client address as the throttles, trusting X-Forwarded-For only from our proxies.
AXES_CLIENT_IP_CALLABLE = "relay_app.api.client_address.client_address"
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins from this address or for this user: try again in"
    f" {RELAY_LOGIN_LOCKOUT_MINUTES:g} minutes."
)
# Axes logs every login at INFO; failures and lockouts are still WARNINGs.
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# Times to the second wherever Django shows one (the admin): project/formats/.
FORMAT_MODULE_PATH = ["project.formats"]

STATIC_URL = "static/"
STATIC_ROOT: Path | None = RELAY_VAR_DIR / "static"

# Error reports (the DEBUG page, error emails) hide passwords inside URL settings as well,
# e.g. the Redis password in CELERY_BROKER_URL, not only settings named *PASSWORD*/*KEY*.
DEFAULT_EXCEPTION_REPORTER_FILTER = "relay_app.error_reports.CredentialHidingFilter"

# --- The API ---------------------------------------------------------------------------------

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
    },
    # No online validator badge: the docs never reach outside this server.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# Relaying without a token or session (POST /api/relay/, the seed's endpoint). Off: only
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

# --- The relay -------------------------------------------------------------------------------

# One budget per transaction, shared by every hop (seconds).
RELAY_DEADLINE_SECONDS = env.float("RELAY_DEADLINE_SECONDS", default=5.0)
# Longest message accepted, in characters. Even at 4 UTF-8 bytes a character and with the
# hops' own text, a record stays far below Kafka's 1 MB default limit.
RELAY_MESSAGE_MAX_LENGTH = env.int("RELAY_MESSAGE_MAX_LENGTH", default=10_000)
# The largest request body read: the longest message, every character escaped as a JSON
# surrogate pair (12 bytes), and room for the rest of the object. Django refuses a longer
# Content-Length unread (the API answers 413), and so does the proxy in front of it.
DATA_UPLOAD_MAX_MEMORY_SIZE = RELAY_MESSAGE_MAX_LENGTH * 12 + 4096
# A transaction still pending this long after its deadline lost its waiter; the sweep
# (`manage.py settle_stale_transactions`) times it out.
RELAY_STALE_GRACE_SECONDS = env.float("RELAY_STALE_GRACE_SECONDS", default=30.0)
# An event stream (GET /api/transactions/<id>/events/) sends a ": heartbeat" comment after
# this many seconds without a hop: proxies keep the connection, and a client that left is
# noticed (its thread freed) at the latest then. Shorter than any proxy's read timeout.
RELAY_EVENTS_HEARTBEAT_SECONDS = env.float("RELAY_EVENTS_HEARTBEAT_SECONDS", default=15.0)
# Event streams one web server process holds open at once, each a thread while it lasts: in
# all (well under its 128 threads, ops/processes.py), and for one user. Beyond, 429 with
# Retry-After. Counted per process: a user may hold as many in each process of each web server.
RELAY_EVENT_STREAMS_PER_PROCESS = env.int("RELAY_EVENT_STREAMS_PER_PROCESS", default=32)
RELAY_EVENT_STREAMS_PER_USER = env.int("RELAY_EVENT_STREAMS_PER_USER", default=8)
# How often the worker's beat runs that sweep (seconds).
RELAY_SWEEP_INTERVAL_SECONDS = env.float("RELAY_SWEEP_INTERVAL_SECONDS", default=15.0)
# Settled transactions older than this many days are deleted with their hops by the worker's
# beat (`manage.py purge_transactions` by hand); "off" keeps them for ever.
RELAY_RETENTION_DAYS = days_or_off("RELAY_RETENTION_DAYS", default="30")
# Production refuses a plaintext or credential-less hop (relay.E001-E003, relay_app/checks.py)
# unless this says, on purpose, that the network itself is trusted.
RELAY_ALLOW_PLAINTEXT = env.bool("RELAY_ALLOW_PLAINTEXT", default=False)

# --- Message authentication (docs/security.md) -----------------------------------------------

# HMAC keys (relay_app/signing.py), secrets from the environment only. Web servers and
# workers seal and open the chain's task messages with the first, so a task that anyone else
# wrote to Redis is refused; workers and gRPC servers make and check the gRPC hop's
# capability with the second. Development and test settings set keys of the repository's
# (insecure-); production requires keys of its own (environment.signing_key).
RELAY_CHAIN_SIGNING_KEY = env.str("RELAY_CHAIN_SIGNING_KEY", default="")
RELAY_GRPC_CAPABILITY_KEY = env.str("RELAY_GRPC_CAPABILITY_KEY", default="")

# --- Metrics ---------------------------------------------------------------------------------

# A Prometheus scraper's bearer token for the web server's /metrics (staff users need none);
# empty: staff only. A secret: from the environment only.
RELAY_METRICS_TOKEN = env.str("RELAY_METRICS_TOKEN", default="")
# Where the local stack's Celery workers and gRPC servers serve their metrics, each its own
# port from the first (loopback: for a scraper on this machine).
RELAY_WORKER_METRICS_ADDRESS = addresses(
    "RELAY_WORKER_METRICS_ADDRESS", "127.0.0.1:9464", count=RELAY_WORKERS, step=1
)
RELAY_GRPC_METRICS_ADDRESS = addresses(
    "RELAY_GRPC_METRICS_ADDRESS", "127.0.0.1:9474", count=RELAY_GRPC_SERVERS, step=1
)

# --- Tracing ---------------------------------------------------------------------------------

# OpenTelemetry reads its own standard variables (relay_app/tracing.py): off unless
# OTEL_TRACES_EXPORTER says otlp (OTEL_EXPORTER_OTLP_ENDPOINT: where to) or console.
# The local stack starts a collector of its own on this address (ops/traces.py), writing every
# span to RELAY_TRACES_FILE for `make trace`; empty: none (use your own collector).
RELAY_TRACE_COLLECTOR_ADDRESS = env.str("RELAY_TRACE_COLLECTOR_ADDRESS", default="")
RELAY_TRACES_FILE = RELAY_VAR_DIR / "traces" / "spans.jsonl"

# --- Kafka -----------------------------------------------------------------------------------

# Every broker; each local one's KRaft controller listens on the port after its broker's.
KAFKA_BOOTSTRAP_SERVERS = addresses(
    "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", count=RELAY_KAFKA_BROKERS, step=2
)
KAFKA_REQUEST_TOPIC = env.str("KAFKA_REQUEST_TOPIC", default="CommunicationTopic")
KAFKA_REPLY_TOPIC = env.str("KAFKA_REPLY_TOPIC", default="CommunicationRestTopic")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=3)
# Replication of the topics the relay creates: a copy on this many brokers (at most as many
# as there are), and an acknowledged write on at least KAFKA_MIN_INSYNC_REPLICAS of them.
KAFKA_TOPIC_REPLICATION = env.int("KAFKA_TOPIC_REPLICATION", default=min(3, RELAY_KAFKA_BROKERS))
KAFKA_MIN_INSYNC_REPLICAS = env.int(
    "KAFKA_MIN_INSYNC_REPLICAS", default=2 if KAFKA_TOPIC_REPLICATION >= 3 else 1
)
# The longest one Kafka operation (connect, acknowledge, read back) may take before Kafka
# counts as unavailable (503), even when the transaction's deadline leaves more time.
KAFKA_TIMEOUT_SECONDS = env.float("KAFKA_TIMEOUT_SECONDS", default=2.0)
# PLAINTEXT, SSL (a client certificate is the credential) or SASL_SSL (a SCRAM user). Every
# producer, consumer and admin client gets the same options (relay_app/integrations/
# kafka_records.py, client_options).
KAFKA_SECURITY_PROTOCOL = choice(
    "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", ("PLAINTEXT", "SSL", "SASL_SSL")
)
KAFKA_SSL_CAFILE = env.str("KAFKA_SSL_CAFILE", default="")  # the CA of the brokers' certs
KAFKA_SSL_CERTFILE = env.str("KAFKA_SSL_CERTFILE", default="")  # this client's, over SSL
KAFKA_SSL_KEYFILE = env.str("KAFKA_SSL_KEYFILE", default="")
KAFKA_SASL_MECHANISM = env.str("KAFKA_SASL_MECHANISM", default="SCRAM-SHA-512")
KAFKA_SASL_USERNAME = env.str("KAFKA_SASL_USERNAME", default="")
KAFKA_SASL_PASSWORD = env.str("KAFKA_SASL_PASSWORD", default="")

# --- Redis and Celery (read by project/celery.py through the CELERY_ namespace) -------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# rediss:// in REDIS_URL turns TLS on, verified against this CA (and, if Redis asks for one,
# with this client certificate). The password may be in the URL or here.
REDIS_PASSWORD = env.str("REDIS_PASSWORD", default="")
REDIS_TLS_CA_FILE = env.str("REDIS_TLS_CA_FILE", default="")
REDIS_TLS_CERT_FILE = env.str("REDIS_TLS_CERT_FILE", default="")
REDIS_TLS_KEY_FILE = env.str("REDIS_TLS_KEY_FILE", default="")
# TLS options for every Redis client: Celery's broker and results, the health check, the
# throttles (redis-py and kombu take the same names). Certificates are always verified.
REDIS_TLS: dict[str, Any] = (
    {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": REDIS_TLS_CA_FILE or None,
        "ssl_certfile": REDIS_TLS_CERT_FILE or None,
        "ssl_keyfile": REDIS_TLS_KEY_FILE or None,
    }
    if REDIS_URL.startswith("rediss://")
    else {}
)

CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=url_with_password(REDIS_URL, REDIS_PASSWORD)
)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL)
# Over rediss://, both verify Redis's certificate (REDIS_TLS).
CELERY_BROKER_USE_SSL = REDIS_TLS or None
CELERY_REDIS_BACKEND_USE_SSL = REDIS_TLS or None
# JSON only: tasks take ids and strings, and no pickle ever crosses the broker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# A chain's result is read by the waiting view, or by a repeated request's (on another web
# server) until the deadline has passed; then the transaction's record answers. A minute
# covers both, then Redis frees it, so nobody spends a round trip deleting it.
CELERY_RESULT_EXPIRES = 60
# The view answers with a deadline, so a broker that is down must fail fast, not retry for ever.
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # A task not acknowledged this long after delivery (its worker died) is delivered again.
    # Longer than a task may run (CELERY_TASK_TIME_LIMIT), so a live task is never doubled.
    "visibility_timeout": 30,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_REDIS_SOCKET_TIMEOUT = 5
# Publishing a chain to a Redis that is down fails within about a second, not after minutes.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Intermediate hop tasks store no result (nobody reads them) but do store a failure, which
# Celery also writes to the chain's last task, the one the view waits for.
CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED = True
# Acknowledge a task after it ran, not when it was received: a worker killed mid-task
# leaves the task in Redis to be delivered again. Every hop is idempotent for this.
CELERY_TASK_ACKS_LATE = True
# ... and when the process running it dies (SIGKILL, OOM), put it back at once.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Each worker process reserves one task at a time, so a dead worker strands at most that one
# and a busy process never sits on tasks another could run now.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# How long a new pool process may take to start: it connects to Kafka first, which takes up
# to KAFKA_TIMEOUT_SECONDS per step when Kafka is down or a topic is missing (Celery's 4 s
# default would kill and restart it over and over).
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 15.0
# No hop takes more than the deadline; these only stop a task stuck beyond all reason.
CELERY_TASK_SOFT_TIME_LIMIT = 15
CELERY_TASK_TIME_LIMIT = 20
# The worker reconnects to Redis every half second, not after up to 30 s (relay_app/worker.py).
CELERY_WORKER_CONSUMER = "relay_app.worker:Consumer"
# Our own logging configuration stays in force inside the worker.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Settle transactions left pending past their deadline (see RELAY_STALE_GRACE_SECONDS), and
# purge old ones (RELAY_RETENTION_DAYS): the worker's embedded beat runs both.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "settle-stale-transactions": {
        "task": "relay.settle_stale_transactions",
        "schedule": RELAY_SWEEP_INTERVAL_SECONDS,
    }
}
if RELAY_RETENTION_DAYS is not None:
    # Hourly: retention is counted in days, and each run deletes in small batches.
    CELERY_BEAT_SCHEDULE["purge-transactions"] = {
        "task": "relay.purge_transactions",
        "schedule": 3600.0,
    }
# The worker's pool and size (README, "Performance": why prefork and four).
RELAY_WORKER_POOL = env.str("RELAY_WORKER_POOL", default="prefork")
RELAY_WORKER_CONCURRENCY = env.int("RELAY_WORKER_CONCURRENCY", default=4)

# --- gRPC ------------------------------------------------------------------------------------

# The gRPC servers: the client balances its calls over all of them (round_robin), and over
# every address a name resolves to (a scaled compose service).
GRPC_ADDRESS = addresses("GRPC_ADDRESS", "127.0.0.1:50051", count=RELAY_GRPC_SERVERS, step=1)
# How long the gRPC client waits for a connection before the server counts as unavailable.
GRPC_CONNECT_TIMEOUT_SECONDS = env.float("GRPC_CONNECT_TIMEOUT_SECONDS", default=1.5)
# A CA turns TLS on for the client, which then verifies the server's certificate and, with its
# own, authenticates (mutual TLS). A certificate and key turn TLS on for the server, which then
# requires client certificates signed by GRPC_TLS_CLIENT_CA_FILE.
GRPC_TLS_CA_FILE = env.str("GRPC_TLS_CA_FILE", default="")
GRPC_TLS_CLIENT_CERT_FILE = env.str("GRPC_TLS_CLIENT_CERT_FILE", default="")
GRPC_TLS_CLIENT_KEY_FILE = env.str("GRPC_TLS_CLIENT_KEY_FILE", default="")
GRPC_TLS_SERVER_CERT_FILE = env.str("GRPC_TLS_SERVER_CERT_FILE", default="")
GRPC_TLS_SERVER_KEY_FILE = env.str("GRPC_TLS_SERVER_KEY_FILE", default="")
GRPC_TLS_CLIENT_CA_FILE = env.str("GRPC_TLS_CLIENT_CA_FILE", default="")
# Server reflection lets any client list and describe the services: development only.
RELAY_GRPC_REFLECTION = env.bool("RELAY_GRPC_REFLECTION", default=False)

# --- The web server --------------------------------------------------------------------------

# Where clients reach the web server (the local stack and `make demo` use it): the reverse
# proxy (nginx) in front of the web servers, which listen on the ports after this one, on
# loopback only (ops/processes.py).
RELAY_HTTP_ADDRESS = env.str("RELAY_HTTP_ADDRESS", default="127.0.0.1:8000")
# The proxy serves HTTPS with this certificate and key (the secure profile). The local tools
# verify it against the CA.
RELAY_HTTPS_CERT_FILE = env.str("RELAY_HTTPS_CERT_FILE", default="")
RELAY_HTTPS_KEY_FILE = env.str("RELAY_HTTPS_KEY_FILE", default="")
RELAY_HTTPS_CA_FILE = env.str("RELAY_HTTPS_CA_FILE", default="")
# The header a TLS-terminating proxy sets, and its value (HTTP_X_FORWARDED_PROTO,https): a
# request that carries it counts as HTTPS. Trusted only when configured: the proxy must set or
# strip it on every request, or any client could claim to have come over HTTPS.
SECURE_PROXY_SSL_HEADER = header_and_value("DJANGO_SECURE_PROXY_SSL_HEADER")

# --- Logging ---------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "text": lines for people; "json": one object per line, with the transaction's fields
# (relay_app/log_format.py). The transaction log file keeps the seed's format either way.
RELAY_LOG_FORMAT = choice("RELAY_LOG_FORMAT", "text", ("TEXT", "JSON")).lower()
# Every process appends its seed lines here, so one file holds each transaction in order; it
# rotates at RELAY_TRANSACTION_LOG_MAX_BYTES, keeping RELAY_TRANSACTION_LOG_BACKUPS older files
# (transactions.log.1 the newest). The console gets the lines too, unless turned off.
RELAY_TRANSACTION_LOG = Path(
    env.str("RELAY_TRANSACTION_LOG", default=str(RELAY_VAR_DIR / "log" / "transactions.log"))
)
RELAY_TRANSACTION_LOG_MAX_BYTES = env.int(
    "RELAY_TRANSACTION_LOG_MAX_BYTES", default=20 * 1024 * 1024
)
RELAY_TRANSACTION_LOG_BACKUPS = env.int("RELAY_TRANSACTION_LOG_BACKUPS", default=5)
RELAY_TRANSACTION_LOG_CONSOLE = env.bool("RELAY_TRANSACTION_LOG_CONSOLE", default=True)
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # The seed's format: "2019/07/07 16:58:48 REST request: hello world from rest ".
        "seed": {"()": "relay_app.seed_log.SeedFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "relay_app.log_format.JsonFormatter"},
    },
    "handlers": {
        "transaction": {
            "class": "logging.StreamHandler",
            "formatter": "json" if RELAY_LOG_FORMAT == "json" else "seed",
        },
        "transaction_file": {
            "()": "relay_app.seed_log.TransactionFileHandler",
            "filename": str(RELAY_TRANSACTION_LOG),
            "max_bytes": RELAY_TRANSACTION_LOG_MAX_BYTES,
            "backups": RELAY_TRANSACTION_LOG_BACKUPS,
            "formatter": "seed",
        },
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if RELAY_LOG_FORMAT == "json" else "plain",
        },
    },
    "loggers": {
        "relay.transaction": {
            "handlers": [
                "transaction_file",
                *(["transaction"] if RELAY_TRANSACTION_LOG_CONSOLE else []),
            ],
            "level": "INFO",
            "propagate": False,
        },
        "relay_app": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
}
