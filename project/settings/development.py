"""Development settings, for ``make run`` and ``make up`` only: a local key, DEBUG, a local
superuser, anonymous relaying, public API docs and gRPC reflection, so the demo needs no setup.

Defaults go into the environment (as in ``test``) so every process the stack starts agrees;
any of them can still be set otherwise, e.g. ``RELAY_ALLOW_ANONYMOUS_RELAY=false make run``.
"""

import os

for _name, _value in {
    # "django-insecure-": production refuses such a key, and `check --deploy` flags it.
    "DJANGO_SECRET_KEY": "django-insecure-development-only",
    # "insecure-": production refuses such keys too (environment.signing_key).
    "RELAY_CHAIN_SIGNING_KEY": "insecure-development-chain-signing-key-of-the-repository",
    "RELAY_GRPC_CAPABILITY_KEY": "insecure-development-grpc-capability-key-of-the-repository",
    "DJANGO_DEBUG": "true",
    "RELAY_ALLOW_ANONYMOUS_RELAY": "true",
    "RELAY_PUBLIC_API_DOCS": "true",
    "RELAY_GRPC_REFLECTION": "true",
    # Tracing on, to the stack's own collector: `make trace` prints the last transaction's.
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    "RELAY_TRACE_COLLECTOR_ADDRESS": "127.0.0.1:4318",
    "OTEL_BSP_SCHEDULE_DELAY": "500",
}.items():
    os.environ.setdefault(_name, _value)

from .base import *  # noqa: E402,F403

RELAY_ENVIRONMENT = "development"
# `make run` creates a local superuser with a printed password (ensure_development_superuser).
RELAY_DEVELOPMENT_SUPERUSER = True
