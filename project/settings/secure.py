"""The secure profile of the local stack (``make up-secure``): development's conveniences,
with TLS and credentials on every hop and no plaintext port at all.

Kafka listens on SASL_SSL only (SCRAM-SHA-512), Redis on TLS only with a password, the gRPC
server takes mutual TLS only, and nginx in front of the web server serves HTTPS. The
certificates (a local CA) and passwords are made by ``python -m ops.tls var/secure/tls``,
which also writes every setting that carries them to ``transport.env``; it is read into the
environment here. Its data, logs and pids live in ``var/secure/``, apart from the plaintext
stack's."""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

_VAR = Path(
    os.environ.get(
        "RELAY_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var" / "secure"
    )
)
_TRANSPORT = _VAR / "tls" / "transport.env"
if not _TRANSPORT.exists():
    raise ImproperlyConfigured(
        f"{_TRANSPORT} is missing: `make up-secure` makes it"
        f" (python -m ops.tls {_TRANSPORT.parent})"
    )
environ.Env.read_env(str(_TRANSPORT))  # only what the environment does not set already
for _name, _value in {
    "RELAY_VAR_DIR": str(_VAR),
    "REDIS_URL": "rediss://127.0.0.1:6379/0",
    # Spans too travel over TLS, to the collector serving the web server's certificate.
    "OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:4318",
    "OTEL_EXPORTER_OTLP_CERTIFICATE": os.environ.get("RELAY_HTTPS_CA_FILE", ""),
    # nginx terminates TLS and says so on every request (ops/nginx.conf.template).
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}.items():
    os.environ.setdefault(_name, _value)

from .development import *  # noqa: E402,F403

RELAY_ENVIRONMENT = "secure"
