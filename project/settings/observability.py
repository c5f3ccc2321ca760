"""What the relay shows of itself: metrics, tracing and logs."""

from pathlib import Path
from typing import Any

from .api import HTTP_TLS_CERT_FILE
from .core import RELAY_VAR_DIR
from .environment import addresses, choice, env
from .relay import RELAY_GRPC_SERVERS, RELAY_WORKERS

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

# Tracing (relay_app/tracing.py): OpenTelemetry's standard variables, read here like every
# other setting. Off unless OTEL_TRACES_EXPORTER names an exporter: zipkin_json (the local
# stacks' own Zipkin, or yours), otlp (HTTP/protobuf, to a collector of yours) or console.
OTEL_SDK_DISABLED = env.bool("OTEL_SDK_DISABLED", default=False)
OTEL_TRACES_EXPORTER = env.str("OTEL_TRACES_EXPORTER", default="none").strip().lower()
# Each process is relay-web, relay-worker or relay-grpc unless this names them all.
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="")
OTEL_EXPORTER_ZIPKIN_ENDPOINT = env.str(
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT", default="http://localhost:9411/api/v2/spans"
)
OTEL_EXPORTER_OTLP_ENDPOINT = env.str(
    "OTEL_EXPORTER_OTLP_ENDPOINT", default="http://localhost:4318"
)
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = env.str(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    default=OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces",
)
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = env.str(
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    default=env.str("OTEL_EXPORTER_OTLP_PROTOCOL", default="http/protobuf"),
)
# The CA a collector's (or Zipkin's) certificate is verified against, over https://.
OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE = env.str(
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    default=env.str("OTEL_EXPORTER_OTLP_CERTIFICATE", default=""),
)
# The exporter's own certificate and key, its credential where the collector asks for one
# (the local stacks' proxy in front of Zipkin takes the web's, worker's and gRPC's only).
OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE = env.str(
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    default=env.str("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", default=""),
)
OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY = env.str(
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    default=env.str("OTEL_EXPORTER_OTLP_CLIENT_KEY", default=""),
)
# parentbased_traceidratio (or traceidratio) with a ratio from 0 to 1 samples that share of
# the requests; anything else traces them all.
OTEL_TRACES_SAMPLER = env.str("OTEL_TRACES_SAMPLER", default="parentbased_always_on").lower()
OTEL_TRACES_SAMPLER_ARG = env.str("OTEL_TRACES_SAMPLER_ARG", default="1.0")
# How often each process sends the spans it has (milliseconds).
OTEL_BSP_SCHEDULE_DELAY = env.int("OTEL_BSP_SCHEDULE_DELAY", default=5000)
# Requests that only probe or scrape the web server start no trace.
OTEL_PYTHON_DJANGO_EXCLUDED_URLS = env.str(
    "OTEL_PYTHON_DJANGO_EXCLUDED_URLS", default="healthz,readyz,metrics,static/"
)
# The local stack's own Zipkin (ops/processes.py): where it listens (loopback), and how many
# spans it keeps in memory before it drops the oldest; empty: none is started.
ZIPKIN_ADDRESS = env.str("ZIPKIN_ADDRESS", default="")
ZIPKIN_MAX_SPANS = env.int("ZIPKIN_MAX_SPANS", default=100_000)
# Where the stack makes TLS its own (HTTP_TLS_CERT_FILE: secure, cluster), the proxy serves
# ZIPKIN_ADDRESS over TLS (spans from a certificate of the relay's processes, the viewer for
# staff) and Zipkin listens behind it on the port after, on loopback; elsewhere Zipkin itself
# listens on ZIPKIN_ADDRESS.
ZIPKIN_BEHIND_PROXY = bool(ZIPKIN_ADDRESS and HTTP_TLS_CERT_FILE)
_zipkin_host, _, _zipkin_port = ZIPKIN_ADDRESS.rpartition(":")
ZIPKIN_SERVER_ADDRESS = (
    f"{_zipkin_host}:{int(_zipkin_port) + 1}" if ZIPKIN_BEHIND_PROXY else ZIPKIN_ADDRESS
)
# A transaction's trace in a viewer (the API's trace_url, the admin's link): this URL with
# {trace_id} in it, so a deployment can point at its own Jaeger, Tempo or Zipkin; empty: none.
RELAY_TRACE_URL = env.str(
    "RELAY_TRACE_URL",
    default=f"{'https' if ZIPKIN_BEHIND_PROXY else 'http'}://{ZIPKIN_ADDRESS}"
    "/zipkin/traces/{trace_id}"
    if ZIPKIN_ADDRESS
    else "",
)
# Flower, Celery's own monitor of the workers, their queues and tasks (ops/processes.py starts
# it behind the proxy, which lets staff alone through): where people open it; empty: none.
FLOWER_ADDRESS = env.str("FLOWER_ADDRESS", default="")
# Where each hop's task is shown (the admin's links): Flower's pages; empty: no link.
RELAY_FLOWER_URL = env.str(
    "RELAY_FLOWER_URL",
    default=f"{'https' if HTTP_TLS_CERT_FILE else 'http'}://{FLOWER_ADDRESS}"
    if FLOWER_ADDRESS
    else "",
)
# Each worker's and gRPC server's own metrics address, set for each by the table of processes.
RELAY_METRICS_ADDRESS = env.str("RELAY_METRICS_ADDRESS", default="")
# With a certificate and key, those metrics are served over TLS to scrapers whose certificate
# RELAY_METRICS_TLS_CA_FILE signed (mutual TLS: the scraper's certificate is its credential).
RELAY_METRICS_TLS_CERT_FILE = env.str("RELAY_METRICS_TLS_CERT_FILE", default="")
RELAY_METRICS_TLS_KEY_FILE = env.str("RELAY_METRICS_TLS_KEY_FILE", default="")
RELAY_METRICS_TLS_CA_FILE = env.str("RELAY_METRICS_TLS_CA_FILE", default="")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "text": lines for people; "json": one object per line, with the transaction's fields
# (relay_app/log_format.py). The transaction log file keeps the original example's format either
# way.
RELAY_LOG_FORMAT = choice("RELAY_LOG_FORMAT", "text", ("TEXT", "JSON")).lower()
# Every process appends its original example's lines here, so one file holds each transaction in
# order; it rotates at RELAY_TRANSACTION_LOG_MAX_BYTES, keeping RELAY_TRANSACTION_LOG_BACKUPS older
# files (transactions.log.1 the newest). Development's console gets the lines too; elsewhere the
# processes' own logs hold no message's text.
RELAY_TRANSACTION_LOG = Path(
    env.str("RELAY_TRANSACTION_LOG", default=str(RELAY_VAR_DIR / "log" / "transactions.log"))
)
RELAY_TRANSACTION_LOG_MAX_BYTES = env.int(
    "RELAY_TRANSACTION_LOG_MAX_BYTES", default=20 * 1024 * 1024
)
RELAY_TRANSACTION_LOG_BACKUPS = env.int("RELAY_TRANSACTION_LOG_BACKUPS", default=5)
RELAY_TRANSACTION_LOG_CONSOLE = env.bool("RELAY_TRANSACTION_LOG_CONSOLE", default=False)
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # The original example's format: "2019/07/07 16:58:48 REST request: hello world from rest ".
        "original": {"()": "relay_app.original_log.OriginalFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "relay_app.log_format.JsonFormatter"},
    },
    "handlers": {
        "transaction": {
            "class": "logging.StreamHandler",
            "formatter": "json" if RELAY_LOG_FORMAT == "json" else "original",
        },
        "transaction_file": {
            "()": "relay_app.original_log.TransactionFileHandler",
            "filename": str(RELAY_TRANSACTION_LOG),
            "max_bytes": RELAY_TRANSACTION_LOG_MAX_BYTES,
            "backups": RELAY_TRANSACTION_LOG_BACKUPS,
            "formatter": "original",
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
        # One line per operator action (relay_app/services/audit.py), whatever LOG_LEVEL is.
        "relay.audit": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
}
