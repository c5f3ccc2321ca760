"""Settings shared by every environment, each read from the environment in this one place.

Names and defaults follow the public contracts in the README; every address can be moved by
an environment variable of the same name. The defaults here are the safe ones: who may do
what is closed unless a settings module (``development``) or the environment opens it.
"""

import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

_PERIOD_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def _rate(name: str, default: str) -> tuple[int, float]:
    """A rate such as ``120/minute`` from the environment, as (requests, per seconds)."""
    raw = env.str(name, default=default)
    count, _, period = raw.partition("/")
    try:
        rate = (int(count), _PERIOD_SECONDS[period.strip().lower()])
    except (ValueError, KeyError):
        rate = (0, 0.0)
    if rate[0] < 1:
        raise ImproperlyConfigured(
            f"{name} must be N/second, N/minute, N/hour or N/day with N at least 1"
            f" (e.g. 120/minute), not {raw!r}"
        )
    return rate


def _days_or_off(name: str, default: str) -> float | None:
    """A number of days from the environment, or ``None`` for "off"."""
    raw = env.str(name, default=default).strip().lower()
    if raw in ("", "off"):
        return None
    try:
        days = float(raw)
    except ValueError:
        days = 0.0
    if not days > 0:
        raise ImproperlyConfigured(f"{name} must be a number of days above 0, or off; not {raw!r}")
    return days


# Data, logs and pid files of the local stack (git-ignored); tests use their own.
VAR_DIR = Path(env.str("RELAY_VAR_DIR", default=str(BASE_DIR / "var")))

# Which settings module is in force: "development", "production" or "test" (set by each).
RELAY_ENVIRONMENT = "base"

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
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from our own static files
    "axes",  # locks out repeated failed logins (admin and the browsable API)
    "relay_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
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
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TZ", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT: Path | None = VAR_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # API clients send a Bearer token; people in a browser (browsable API, docs) log in with a
    # session. HTTP Basic is not accepted: it sends the password, and hashing it costs the
    # server ~0.5 s of CPU per guess.
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

# --- The relay -------------------------------------------------------------------------------

# One budget per transaction, shared by every hop (seconds).
RELAY_DEADLINE_SECONDS = env.float("RELAY_DEADLINE_SECONDS", default=5.0)
# Longest message accepted, in characters. Even at 4 UTF-8 bytes a character and with the
# hops' own text, a record stays far below Kafka's 1 MB default limit.
RELAY_MESSAGE_MAX_LENGTH = env.int("RELAY_MESSAGE_MAX_LENGTH", default=10_000)
# A transaction still pending this long after its deadline lost its waiter; the sweep
# (`manage.py settle_stale_transactions`) times it out.
RELAY_STALE_GRACE_SECONDS = env.float("RELAY_STALE_GRACE_SECONDS", default=30.0)
# Settled transactions older than this many days are deleted with their hops by the worker's
# beat (`manage.py purge_transactions` by hand); "off" keeps them for ever.
RELAY_RETENTION_DAYS = _days_or_off("RELAY_RETENTION_DAYS", default="30")

# --- Who may do what -------------------------------------------------------------------------

# Relaying without a token or session (POST /api/relay/, the seed's endpoint). Off: only
# development settings turn it on, and a system check warns about it in production.
RELAY_ALLOW_ANONYMOUS_RELAY = env.bool("RELAY_ALLOW_ANONYMOUS_RELAY", default=False)
# The API root, its OpenAPI schema and Swagger UI for anonymous visitors too (development).
RELAY_PUBLIC_API_DOCS = env.bool("RELAY_PUBLIC_API_DOCS", default=False)
# How many relay requests a user, and an anonymous client address, may make: "N/second",
# "N/minute", "N/hour" or "N/day"; a burst of N, then one every period/N (429 beyond it).
RELAY_THROTTLE_RATE = _rate("RELAY_THROTTLE_RATE", default="120/minute")
RELAY_ANONYMOUS_THROTTLE_RATE = _rate("RELAY_ANONYMOUS_THROTTLE_RATE", default="30/minute")
# Reverse proxies in front of the web server that append the client's address to
# X-Forwarded-For. 0 (no proxy): the header is ignored, since any client can write it.
RELAY_TRUSTED_PROXY_COUNT = env.int("RELAY_TRUSTED_PROXY_COUNT", default=0)

# Admin and browsable-API logins (django-axes): this many failures from one address, or for
# one user, lock that address or user out for RELAY_LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env.int("RELAY_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("RELAY_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
# The same client address as the throttles, trusting X-Forwarded-For only from our proxies.
AXES_CLIENT_IP_CALLABLE = "relay_app.api.client_address.client_address"
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins from this address or for this user: try again in"
    f" {AXES_COOLOFF_TIME.total_seconds() / 60:g} minutes."
)
# Axes logs every login at INFO; failures and lockouts are still WARNINGs.
AXES_VERBOSE = False

# Error reports (the DEBUG page, error emails) hide passwords inside URL settings as well,
# e.g. the Redis password in CELERY_BROKER_URL, not only settings named *PASSWORD*/*KEY*.
DEFAULT_EXCEPTION_REPORTER_FILTER = "relay_app.error_reports.CredentialHidingFilter"

KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092")
KAFKA_REQUEST_TOPIC = env.str("KAFKA_REQUEST_TOPIC", default="CommunicationTopic")
KAFKA_REPLY_TOPIC = env.str("KAFKA_REPLY_TOPIC", default="CommunicationRestTopic")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=3)
# The longest one Kafka operation (connect, acknowledge, read back) may take before Kafka
# counts as unavailable (503), even when the transaction's deadline leaves more time.
KAFKA_TIMEOUT_SECONDS = env.float("KAFKA_TIMEOUT_SECONDS", default=2.0)
# Replication factor for the topics the relay creates; 1 for the single-node broker.
KAFKA_TOPIC_REPLICATION = env.int("KAFKA_TOPIC_REPLICATION", default=1)

GRPC_ADDRESS = env.str("GRPC_ADDRESS", default="127.0.0.1:50051")
# How long the gRPC client waits for a connection before the server counts as unavailable.
GRPC_CONNECT_TIMEOUT_SECONDS = env.float("GRPC_CONNECT_TIMEOUT_SECONDS", default=1.5)

# Where the web server listens (used by the stack runner and `make demo`).
HTTP_ADDRESS = env.str("RELAY_HTTP_ADDRESS", default="127.0.0.1:8000")
# The Celery worker's pool. Prefork, measured (README, "Performance"): a pool of threads
# spends about as much CPU per transaction, but its one process holds the GIL and tops out at
# one core, while four processes use both: 46-50 against 35-43 transactions/s at 32 at a
# time, alternated on one stack. Eight processes gave no more, and each costs ~100 MB.
WORKER_POOL = env.str("RELAY_WORKER_POOL", default="prefork")
WORKER_CONCURRENCY = env.int("RELAY_WORKER_CONCURRENCY", default=4)

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# --- Transport security: TLS and credentials on each hop -------------------------------------
# Plaintext by default for the local stack; `make up-secure` sets all of these
# (ops/tls.py), and production settings refuse plaintext unless RELAY_ALLOW_PLAINTEXT.

# Kafka: PLAINTEXT, SSL (with a client certificate as the credential) or SASL_SSL (a SCRAM
# user). Every producer, consumer and admin client gets the same options
# (relay_app.integrations.kafka.client_options).
KAFKA_SECURITY_PROTOCOL = env.str("KAFKA_SECURITY_PROTOCOL", default="PLAINTEXT").upper()
if KAFKA_SECURITY_PROTOCOL not in ("PLAINTEXT", "SSL", "SASL_SSL"):
    raise ImproperlyConfigured(
        "KAFKA_SECURITY_PROTOCOL must be PLAINTEXT, SSL or SASL_SSL,"
        f" not {KAFKA_SECURITY_PROTOCOL!r}"
    )
KAFKA_SSL_CAFILE = env.str("KAFKA_SSL_CAFILE", default="")  # the CA of the brokers' certs
KAFKA_SSL_CERTFILE = env.str("KAFKA_SSL_CERTFILE", default="")  # this client's, for SSL
KAFKA_SSL_KEYFILE = env.str("KAFKA_SSL_KEYFILE", default="")
KAFKA_SASL_MECHANISM = env.str("KAFKA_SASL_MECHANISM", default="SCRAM-SHA-512")
KAFKA_SASL_USERNAME = env.str("KAFKA_SASL_USERNAME", default="")
KAFKA_SASL_PASSWORD = env.str("KAFKA_SASL_PASSWORD", default="")

# Redis: rediss:// in REDIS_URL turns TLS on, verified against this CA (and, if Redis asks
# for one, with this client certificate). The password may be in the URL or here.
REDIS_PASSWORD = env.str("REDIS_PASSWORD", default="")
REDIS_TLS_CA_FILE = env.str("REDIS_TLS_CA_FILE", default="")
REDIS_TLS_CERT_FILE = env.str("REDIS_TLS_CERT_FILE", default="")
REDIS_TLS_KEY_FILE = env.str("REDIS_TLS_KEY_FILE", default="")


def _redis_connection_url(url: str, password: str) -> str:
    """``url`` with ``password`` in it, unless it has one already (the URL's wins)."""
    if not password or "@" in url.partition("://")[2].partition("/")[0]:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://:{quote(password, safe='')}@{rest}"


REDIS_CONNECTION_URL = _redis_connection_url(REDIS_URL, REDIS_PASSWORD)
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

# gRPC: a CA turns TLS on for the client, which then verifies the server's certificate and,
# with its own, authenticates (mutual TLS). A certificate and key turn TLS on for the server,
# which then requires client certificates signed by GRPC_TLS_CLIENT_CA_FILE.
GRPC_TLS_CA_FILE = env.str("GRPC_TLS_CA_FILE", default="")
GRPC_TLS_CLIENT_CERT_FILE = env.str("GRPC_TLS_CLIENT_CERT_FILE", default="")
GRPC_TLS_CLIENT_KEY_FILE = env.str("GRPC_TLS_CLIENT_KEY_FILE", default="")
GRPC_TLS_SERVER_CERT_FILE = env.str("GRPC_TLS_SERVER_CERT_FILE", default="")
GRPC_TLS_SERVER_KEY_FILE = env.str("GRPC_TLS_SERVER_KEY_FILE", default="")
GRPC_TLS_CLIENT_CA_FILE = env.str("GRPC_TLS_CLIENT_CA_FILE", default="")
# Server reflection lets any client list and describe the services: development only.
RELAY_GRPC_REFLECTION = env.bool("RELAY_GRPC_REFLECTION", default=False)

# The web server: gunicorn serves HTTPS itself with this certificate and key (or a proxy in
# front terminates TLS: see DJANGO_SECURE_PROXY_SSL_HEADER). The local tools (make demo)
# verify it against RELAY_HTTPS_CA_FILE.
RELAY_HTTPS_CERT_FILE = env.str("RELAY_HTTPS_CERT_FILE", default="")
RELAY_HTTPS_KEY_FILE = env.str("RELAY_HTTPS_KEY_FILE", default="")
RELAY_HTTPS_CA_FILE = env.str("RELAY_HTTPS_CA_FILE", default="")

# Production settings refuse a plaintext or credential-less hop (relay.E001-E003) unless this
# says, on purpose, that the network itself is trusted.
RELAY_ALLOW_PLAINTEXT = env.bool("RELAY_ALLOW_PLAINTEXT", default=False)

# --- Celery (read by project/celery.py through the CELERY_ namespace) -----------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_CONNECTION_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_CONNECTION_URL)
# Over rediss://, both verify Redis's certificate (REDIS_TLS).
CELERY_BROKER_USE_SSL = REDIS_TLS or None
CELERY_REDIS_BACKEND_USE_SSL = REDIS_TLS or None
# JSON only: tasks take ids and strings, and no pickle ever crosses the broker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Results are read once by the waiting view; an hour covers any late reader, then Redis frees them.
CELERY_RESULT_EXPIRES = 3600
# The view answers with a deadline, so a broker that is down must fail fast, not retry for ever.
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # A task not acknowledged this long after delivery (its worker died) is delivered again.
    # Longer than a task may run (CELERY_TASK_TIME_LIMIT), so a live task is never doubled.
    "visibility_timeout": 30,
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
# Settle transactions left pending past their deadline (see RELAY_STALE_GRACE_SECONDS); run
# by the worker's embedded beat (`celery worker --beat`).
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "settle-stale-transactions": {"task": "relay.settle_stale_transactions", "schedule": 15.0}
}
if RELAY_RETENTION_DAYS is not None:
    # Hourly: retention is counted in days, and each run deletes in small batches.
    CELERY_BEAT_SCHEDULE["purge-transactions"] = {
        "task": "relay.purge_transactions",
        "schedule": 3600.0,
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
# The worker reconnects to Redis every half second, not after up to 30 s (relay_app/worker.py).
CELERY_WORKER_CONSUMER = "relay_app.worker:Consumer"
# Our own logging configuration stays in force inside the worker.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Logging ---------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# Every process appends its seed lines here, so one file holds each transaction in order.
TRANSACTION_LOG_CONSOLE = env.bool("RELAY_TRANSACTION_LOG_CONSOLE", default=True)
TRANSACTION_LOG = Path(
    env.str("RELAY_TRANSACTION_LOG", default=str(VAR_DIR / "log" / "transactions.log"))
)
# The transaction log rotates at this size, keeping this many older files beside it
# (transactions.log.1 is the newest of them); every process writing it rotates it safely.
TRANSACTION_LOG_MAX_BYTES = env.int("RELAY_TRANSACTION_LOG_MAX_BYTES", default=20 * 1024 * 1024)
TRANSACTION_LOG_BACKUPS = env.int("RELAY_TRANSACTION_LOG_BACKUPS", default=5)
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # The seed's format: "2019/07/07 16:58:48 REST request: hello world from rest ".
        "seed": {"()": "relay_app.logging.SeedFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "transaction": {"class": "logging.StreamHandler", "formatter": "seed"},
        "transaction_file": {
            "()": "relay_app.logging.TransactionFileHandler",
            "filename": str(TRANSACTION_LOG),
            "max_bytes": TRANSACTION_LOG_MAX_BYTES,
            "backups": TRANSACTION_LOG_BACKUPS,
            "formatter": "seed",
        },
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "relay.transaction": {
            "handlers": ["transaction_file", *(["transaction"] if TRANSACTION_LOG_CONSOLE else [])],
            "level": "INFO",
            "propagate": False,
        },
        "relay_app": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
}
