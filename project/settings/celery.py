"""Redis and Celery (read by project/celery.py through the CELERY_ namespace): the broker and
result backend, their TLS, and the worker."""

import ssl
from typing import Any

from .environment import env, url_with_password
from .relay import RELAY_RETENTION_DAYS, RELAY_SWEEP_INTERVAL_SECONDS

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# rediss:// in REDIS_URL turns TLS on, verified against this CA (and, if Redis asks for one,
# with this client certificate). The user (an ACL user of Redis; none: Redis's default user)
# and password may be in the URL or here.
REDIS_USERNAME = env.str("REDIS_USERNAME", default="")
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
    "CELERY_BROKER_URL", default=url_with_password(REDIS_URL, REDIS_PASSWORD, REDIS_USERNAME)
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
# Task events, for Flower's view of each task (each a small message on Redis): on, as
# deployed; the benchmark measures what they cost.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=True)
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=True)
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
# The worker's pool and size (docs/performance.md: why prefork and four).
RELAY_WORKER_POOL = env.str("RELAY_WORKER_POOL", default="prefork")
RELAY_WORKER_CONCURRENCY = env.int("RELAY_WORKER_CONCURRENCY", default=4)
