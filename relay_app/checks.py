"""System checks (``manage.py check``; ``make check-deploy`` fails on any warning), which
every process that serves also runs as it starts under production settings
(``check_at_start``)."""

import os
import sys
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register, run_checks
from django.core.checks.security import base as django_security
from django.core.exceptions import ImproperlyConfigured

from . import tracing

LOOPBACK = {"localhost", "127.0.0.1", "::1"}

# What development settings turn on for the demo's sake, and production must not:
# (setting, its check's id, what it opens to anyone, what to do instead).
DEVELOPMENT_CONVENIENCES = [
    (
        "RELAY_ALLOW_ANONYMOUS_RELAY",
        "relay.W001",
        "anyone who can reach the server may relay messages, limited only by"
        " RELAY_ANONYMOUS_THROTTLE_RATE per address",
        "give clients API tokens (manage.py create_api_token USERNAME)",
    ),
    (
        "RELAY_PUBLIC_API_DOCS",
        "relay.W002",
        "anyone may read the API root, its schema and its docs",
        "signed-in users still see them",
    ),
]


@register(Tags.security)
def development_conveniences_in_production(**_: Any) -> list[CheckMessage]:
    """Each convenience of development that is turned on under production settings."""
    if settings.RELAY_ENVIRONMENT != "production":
        return []
    return [
        Warning(
            f"{name} is on under production settings: {opens}.",
            hint=f"Unset {name}; {instead}.",
            id=check_id,
        )
        for name, check_id, opens, instead in DEVELOPMENT_CONVENIENCES
        if getattr(settings, name)
    ]


# What each kind of process uses (RELAY_PROCESS_ROLE; unsaid: everything), so what its checks
# hold to TLS and credentials; a process is not refused for a hop it never takes.
ROLE_USES = {
    "web": {"secret key", "redis"},
    "worker": {"redis", "kafka", "grpc client"},
    "grpc": {"grpc server"},
    "beat": {"redis"},
    "flower": {"redis"},
    "stack": set(),
    "command": set(),
}
EVERYTHING = {"secret key", "redis", "kafka", "grpc client", "grpc server"}


def uses(part: str) -> bool:
    """Whether this process uses ``part`` (a hop, or the secret key), by its role."""
    return part in ROLE_USES.get(settings.RELAY_PROCESS_ROLE, EVERYTHING)


@register(Tags.security)
def weak_secret_or_any_host_in_production(**_: Any) -> list[CheckMessage]:
    """Under production settings, an error for what Django's deployment checks only warn
    about: a weak secret key (Django's own rule, W009 and W025), which lets whoever guesses it
    forge sessions, tokens and signed values, and a ``*`` host."""
    if settings.RELAY_ENVIRONMENT != "production":
        return []
    weak_keys = (
        [
            *django_security.check_secret_key(None),
            *django_security.check_secret_key_fallbacks(None),
        ]
        if uses("secret key")
        else []
    )
    errors: list[CheckMessage] = [
        Error(
            warning.msg,
            hint="Set DJANGO_SECRET_KEY to a secret of your own, e.g. the output of"
            " `python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
            id="relay.E007",
        )
        for warning in weak_keys
    ]
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "DJANGO_ALLOWED_HOSTS includes *: the server answers for any Host header, and"
                " the links and redirects it builds point wherever a client says.",
                hint="Name the host names this server answers for (e.g. relay.example.com).",
                id="relay.E008",
            )
        )
    return errors


# Every setting that names a certificate or key file.
TLS_FILES = [
    "KAFKA_TLS_CA_FILE",
    "KAFKA_TLS_CERT_FILE",
    "KAFKA_TLS_KEY_FILE",
    "REDIS_TLS_CA_FILE",
    "REDIS_TLS_CERT_FILE",
    "REDIS_TLS_KEY_FILE",
    "GRPC_TLS_CA_FILE",
    "GRPC_TLS_CERT_FILE",
    "GRPC_TLS_KEY_FILE",
    "GRPC_SERVER_TLS_CERT_FILE",
    "GRPC_SERVER_TLS_KEY_FILE",
    "GRPC_SERVER_TLS_CA_FILE",
    "HTTP_TLS_CERT_FILE",
    "HTTP_TLS_KEY_FILE",
    "HTTP_TLS_CA_FILE",
    "RELAY_METRICS_TLS_CERT_FILE",
    "RELAY_METRICS_TLS_KEY_FILE",
    "RELAY_METRICS_TLS_CA_FILE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
]


def _kafka_problems() -> list[str]:
    s = settings
    if s.KAFKA_SECURITY_PROTOCOL == "PLAINTEXT":
        return ["Kafka is in plaintext (KAFKA_SECURITY_PROTOCOL=PLAINTEXT)"]
    if s.KAFKA_SECURITY_PROTOCOL == "SASL_SSL" and not (
        s.KAFKA_SASL_USERNAME and s.KAFKA_SASL_PASSWORD
    ):
        return ["Kafka has no credentials (KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)"]
    if s.KAFKA_SECURITY_PROTOCOL == "SSL" and not (s.KAFKA_TLS_CERT_FILE and s.KAFKA_TLS_KEY_FILE):
        return ["Kafka has no credentials (KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE)"]
    return []


def _redis_problems() -> list[str]:
    s = settings
    if not s.REDIS_TLS:
        return ["Redis is in plaintext (REDIS_URL is not rediss://)"]
    if not urlsplit(s.CELERY_BROKER_URL).password and not s.REDIS_TLS_CERT_FILE:
        return ["Redis has no credentials (REDIS_PASSWORD, or a password in REDIS_URL)"]
    return []


def _grpc_problems() -> list[str]:
    s = settings
    problems = []
    if uses("grpc client"):
        if not s.GRPC_TLS_CA_FILE:
            problems.append("the gRPC client is in plaintext (GRPC_TLS_CA_FILE)")
        elif not (s.GRPC_TLS_CERT_FILE and s.GRPC_TLS_KEY_FILE):
            problems.append("the gRPC client has no certificate (GRPC_TLS_CERT_FILE, _KEY_FILE)")
    if uses("grpc server"):
        if not (s.GRPC_SERVER_TLS_CERT_FILE and s.GRPC_SERVER_TLS_KEY_FILE):
            problems.append(
                "the gRPC server is in plaintext (GRPC_SERVER_TLS_CERT_FILE, _KEY_FILE)"
            )
        elif not s.GRPC_SERVER_TLS_CA_FILE:
            problems.append(
                "the gRPC server takes clients without certificates (GRPC_SERVER_TLS_CA_FILE)"
            )
    return problems


def _tracing_problems() -> list[str]:
    """Spans name transactions and carry hop texts' timings: to a collector elsewhere, over TLS."""
    try:
        exporter = tracing.exporter_name()
    except ImproperlyConfigured:
        return []  # tracing_is_configured says why
    setting = {
        "otlp": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "zipkin_json": "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
    }.get(exporter or "")
    if setting is None:
        return []
    url = urlsplit(getattr(settings, setting))
    if url.scheme == "http" and url.hostname not in LOOPBACK:
        return [f"spans go to {url.hostname} in plaintext ({setting} is http://)"]
    return []


@register(Tags.security)
def plaintext_hops_in_production(**_: Any) -> list[CheckMessage]:
    """Under production settings every hop has TLS and credentials, unless
    RELAY_ALLOW_PLAINTEXT says, on purpose, that the network is trusted (then a warning)."""
    if settings.RELAY_ENVIRONMENT != "production":
        return []
    found = [
        (check_id, problem)
        for check_id, problems in (
            ("relay.E001", _kafka_problems() if uses("kafka") else []),
            ("relay.E002", _redis_problems() if uses("redis") else []),
            ("relay.E003", _grpc_problems()),
            ("relay.E005", _tracing_problems()),
        )
        for problem in problems
    ]
    if settings.RELAY_ALLOW_PLAINTEXT:
        return [
            Warning(
                f"Plaintext allowed on purpose (RELAY_ALLOW_PLAINTEXT): {problem}.",
                id="relay.W003",
            )
            for _, problem in found
        ]
    return [
        Error(
            f"{problem[:1].upper()}{problem[1:]}: whoever reaches its port can read or forge"
            " what crosses it.",
            hint="Configure TLS and credentials (docs/security.md), or set"
            " RELAY_ALLOW_PLAINTEXT=true if this network is trusted on purpose.",
            id=check_id,
        )
        for check_id, problem in found
    ]


@register(Tags.security)
def tls_files_are_readable(**_: Any) -> list[CheckMessage]:
    """A certificate or key that a setting names must be there: a typo fails at start, in
    every environment, not at the first connection."""
    return [
        Error(f"{name}: cannot read {getattr(settings, name)}.", id="relay.E004")
        for name in TLS_FILES
        if getattr(settings, name) and not os.access(getattr(settings, name), os.R_OK)
    ]


@register()
def renamed_variables(**_: Any) -> list[CheckMessage]:
    """A variable set under its old name still works, for one release: say which to rename."""
    return [
        Warning(
            f"{old} is read as {new}, its new name, for this release only.",
            hint=f"Rename {old} to {new} in the environment.",
            id="relay.W004",
        )
        for old, new in settings.RELAY_RENAMED_VARIABLES.items()
    ]


@register()
def tracing_is_configured(**_: Any) -> list[CheckMessage]:
    """An ``OTEL_*`` setting the relay cannot honour fails the check, as it would each start."""
    try:
        tracing.exporter_name()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="relay.E006")]
    return []


class StartRefused(SystemExit):
    """The system checks found errors: the process exits (status 1), printing them."""


def check_at_start(process: str) -> None:
    """Under production settings, the checks of ``manage.py check --deploy``, run by each
    process that serves as it starts (web server, worker, gRPC server), so that a deployment
    that skipped the command cannot serve with an error in it: each warning is printed, and
    any error stops the process (``StartRefused``, whose message names every error)."""
    if settings.RELAY_ENVIRONMENT != "production":
        return
    found = [m for m in run_checks(include_deployment_checks=True) if not m.is_silenced()]
    for warning in (m for m in found if not m.is_serious()):
        print(f"{process}: {warning}", file=sys.stderr, flush=True)
    if errors := [m for m in found if m.is_serious()]:
        raise StartRefused(
            f"{process} refuses to start under production settings:\n"
            + "\n".join(str(error) for error in errors)
        )
