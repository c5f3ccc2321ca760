"""Test settings: the suite's own ports and ``var/test/``, so it never meets a running dev stack.

Defaults go into the environment (not only into settings) so the worker and gRPC server
that the test runner starts read the same addresses.
"""

import os
from pathlib import Path

_VAR = Path(__file__).resolve().parent.parent.parent / "var" / "test"
for _name, _value in {
    # "django-insecure-": production refuses such a key, and `check --deploy` flags it.
    "DJANGO_SECRET_KEY": "django-insecure-test-only",
    # "insecure-": production refuses such keys too (environment.signing_key).
    "RELAY_CHAIN_SIGNING_KEY": "insecure-test-chain-signing-key-of-the-repository",
    "RELAY_GRPC_CAPABILITY_KEY": "insecure-test-grpc-capability-key-of-the-repository",
    "RELAY_VAR_DIR": str(_VAR),
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "REDIS_URL": "redis://127.0.0.1:16379/0",
    "GRPC_ADDRESS": "127.0.0.1:15051",
    "RELAY_HTTP_ADDRESS": "127.0.0.1:18000",
    "RELAY_WORKER_METRICS_ADDRESS": "127.0.0.1:19464",
    "RELAY_GRPC_METRICS_ADDRESS": "127.0.0.1:19474",
    # Traced, to the stack's own collector (tests/integration/test_tracing.py reads its file).
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:14318",
    "RELAY_TRACE_COLLECTOR_ADDRESS": "127.0.0.1:14318",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    # Only the requests whose client sends a sampled traceparent are traced (test_tracing's):
    # the rest of the suite runs instrumented, without the CPU that exporting every span of
    # hundreds of relays costs (it pushed the 200-clients test past its deadlines).
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0",
    "RELAY_METRICS_TOKEN": "test-only-scraper-token",
    "RELAY_WORKER_CONCURRENCY": "4",
    # The seed lines go to the transaction log file only; the suite's output stays readable.
    "RELAY_TRANSACTION_LOG_CONSOLE": "false",
    # The suite relays hundreds of messages as one user; the throttle's own tests set a rate.
    "RELAY_THROTTLE_RATE": "100000/second",
    "RELAY_ANONYMOUS_THROTTLE_RATE": "100000/second",
    # Event streams' heartbeats come soon enough to be seen, and a client that left noticed.
    "RELAY_EVENTS_HEARTBEAT_SECONDS": "0.5",
}.items():
    os.environ.setdefault(_name, _value)

from .base import *  # noqa: E402,F403

RELAY_ENVIRONMENT = "test"

# Starts Redis, Kafka, the gRPC server and a Celery worker around the suite.
TEST_RUNNER = "tests.runner.StackTestRunner"
# Fast hashing for test users only.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files come straight from the apps (no collectstatic before the suite).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# Tests send bad requests on purpose: Django's "Bad Request" warnings would only be noise.
LOGGING["loggers"]["django.request"] = {"level": "ERROR"}  # noqa: F405
# ... and failed logins on purpose: django-axes's warnings for each, likewise.
LOGGING["loggers"]["axes"] = {"level": "ERROR"}  # noqa: F405
