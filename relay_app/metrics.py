"""The relay's metrics in Prometheus's text format, from every process that does its work.

Each is defined once here and counted where its event happens: the web server's admission
and answer, every hop's record, each Celery task. The web server and the Celery worker fork,
so their processes write to files under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
multi-process mode; one directory per server, emptied as the server starts, ``start_afresh``)
and an exposition adds them up. The gRPC server is one process.

The web server shows its own at ``/metrics`` (staff, or a scraper with
``RELAY_METRICS_TOKEN``); each worker and gRPC server on ``RELAY_METRICS_ADDRESS``, which the
table of processes sets to a loopback port for each: over mutual TLS where settings give it a
certificate (``RELAY_METRICS_TLS_*``), to scrapers with a certificate of their CA alone.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

# Seconds: from a hop's few milliseconds to the deadline and past it.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0)

TRANSACTIONS = Counter(
    "relay_transactions", "Transactions answered by the web server, by final status.", ["status"]
)
TRANSACTION_SECONDS = Histogram(
    "relay_transaction_duration_seconds",
    "From a relay request's arrival at the web server to its transaction's end.",
    buckets=_BUCKETS,
)
HOP_SECONDS = Histogram(
    "relay_hop_duration_seconds", "Each hop's own time, by stage.", ["stage"], buckets=_BUCKETS
)
IN_FLIGHT = Gauge(
    "relay_transactions_in_flight",
    "Relay requests the web server is serving now.",
    multiprocess_mode="livesum",
)
EVENT_STREAMS = Gauge(
    "relay_event_streams_open",
    "Transactions' event streams the web server holds open now (one thread each).",
    multiprocess_mode="livesum",
)
DEADLINE_MISSES = Counter(
    "relay_deadline_misses", "Transactions that timed out, by the hop they waited on.", ["stage"]
)
DEPENDENCY_ERRORS = Counter(
    "relay_dependency_errors",
    "Errors of Kafka, the gRPC server or Redis that failed a transaction, by dependency and kind.",
    ["dependency", "kind"],
)
ATTEMPTS = Counter(
    "relay_hop_attempts",
    "Attempts of the hops that retry (2, 3, 5, 6, 7), by stage and outcome: succeeded, failed"
    " (then retried or not), timed_out, cancelled.",
    ["stage", "outcome"],
)
KAFKA_PRODUCER_RETRIES = Counter(
    "relay_kafka_producer_retries",
    "Records the Kafka producer sent again by itself (idempotent: never written twice), inside"
    " one attempt of a publish hop.",
)
CANCELLATIONS = Counter(
    "relay_cancellations",
    "Cancel requests, by result: cancelled, or already_finished (409).",
    ["result"],
)
DEAD_LETTERS = Counter(
    "relay_dead_letters",
    "Dead letters (a failed transaction's last consumed record), by dead-letter topic and"
    " result: written, or not_written (Kafka did not take it; the log says why).",
    ["topic", "result"],
)
TASKS = Counter(
    "relay_celery_tasks", "Celery tasks of the relay, by task and outcome.", ["task", "outcome"]
)
GRPC_CALLS = Counter(
    "relay_grpc_calls", "Calls the gRPC server answered (hop 5), by status code.", ["code"]
)
REFUSED = Counter(
    "relay_refused_requests",
    "Relay requests refused before any work: throttled (429) or at capacity (503).",
    ["reason"],
)
REFUSAL_CPU = Counter(
    "relay_refusal_cpu_seconds",
    "CPU seconds the web server's threads spent on relay requests refused at capacity (503),"
    " from parsing each request to its answer's last byte; a held refusal's pause is no CPU.",
)


def start_afresh() -> None:
    """Empty the multi-process directory, as a forking server (re)starts: the files of
    processes before this start would otherwise still be added up."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and os.path.isdir(folder):
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))


def process_gone(pid: int) -> None:
    """A forking server's process ``pid`` exited: its live gauges no longer count."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def count_dependency_error(dependency: str, exc: BaseException) -> None:
    """One error of ``dependency``, by the library's own kind of error where there was one."""
    DEPENDENCY_ERRORS.labels(dependency, type(exc.__cause__ or exc).__name__).inc()


def registry() -> CollectorRegistry:
    """This service's metrics: every process's files in multi-process mode, else its own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


def exposition(*, openmetrics: bool = False) -> tuple[bytes, str]:
    """The metrics and their content type: Prometheus's text format, or OpenMetrics."""
    if openmetrics:
        from prometheus_client.openmetrics import exposition as om

        return om.generate_latest(registry()), om.CONTENT_TYPE_LATEST  # type: ignore[no-untyped-call]
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def serve_metrics() -> None:
    """Serve this service's metrics on ``RELAY_METRICS_ADDRESS`` (host:port), if it has one."""
    address: str = settings.RELAY_METRICS_ADDRESS
    if not address:
        return
    host, _, port = address.rpartition(":")
    tls: dict[str, Any] = {}
    if settings.RELAY_METRICS_TLS_CERT_FILE:
        # Only to a scraper with a certificate of the CA (mutual TLS): its credential.
        tls = {
            "certfile": settings.RELAY_METRICS_TLS_CERT_FILE,
            "keyfile": settings.RELAY_METRICS_TLS_KEY_FILE,
            "client_cafile": settings.RELAY_METRICS_TLS_CA_FILE,
            "client_auth_required": True,
        }
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry(), **tls)
