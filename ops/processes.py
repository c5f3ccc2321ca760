"""Every process of the relay's stack, declared once: its command, the ports it takes, the
setting that moves it, what it waits for, how to tell it is ready, and the files it needs.

``ops/stack.py`` starts and stops a stack from this table (``make run``, ``make up``, the
tests, the bench and chaos alike). The Dockerfile and ``docker-compose.yml`` run the same
commands, built by the same functions (``web_command``, ``worker_command``,
``grpc_command``); ``tests/unit/test_deployment_files.py`` checks that they agree. More
brokers, workers or servers are more rows, made here.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LIBS = ROOT / "var" / "kafka" / "libs"
KAFKA_CONFIG = ROOT / "ops" / "kafka"
# The table's name for the Python that runs the relay: the stack runs it with its own
# interpreter (this one), the image with its ``python``.
PYTHON = "python"


class StackError(Exception):
    """A process could not be prepared, started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Process:
    """One process of the stack."""

    name: str
    command: list[str]
    ports: list[tuple[str, int]]
    setting: str  # the setting that moves it, named when its port is taken
    ready: Callable[[], None]  # raises until the process answers
    after: tuple[str, ...] = ()  # started once these are ready
    prepare: Callable[[], None] | None = None  # writes its configuration before each start
    stop_seconds: float = 15.0


# --- the commands, shared with the Dockerfile and docker-compose.yml --------------------------


def web_command(bind: str, *, certfile: str = "", keyfile: str = "") -> list[str]:
    """gunicorn serving the relay on ``bind``; over HTTPS with a certificate and key."""
    https = ["--certfile", certfile, "--keyfile", keyfile] if certfile else []
    return [
        *(PYTHON, "-m", "gunicorn", "project.wsgi:application", "--bind", bind),
        # Threads: a request mostly waits on its transaction (README, "Performance").
        *("--worker-class", "gthread", "--workers", "2", "--threads", "16"),
        *("--timeout", "30", "--graceful-timeout", "10", "--access-logfile", "-"),
        *https,
    ]


def worker_command(*, hostname: str, schedule: str, pool: str, concurrency: int) -> list[str]:
    """The Celery worker of the relay's tasks, with the beat that sweeps and purges."""
    return [
        *(PYTHON, "-m", "celery", "-A", "project", "worker", "--hostname", hostname),
        # Every task's "received" and "succeeded" cost more than a hop; the seed lines and
        # warnings still reach the log.
        *("--loglevel", "WARNING", "--pool", pool, "--concurrency", str(concurrency)),
        # No need to wait for or talk to sibling workers at start.
        *("--without-gossip", "--without-mingle"),
        *("--beat", "--schedule", schedule),
    ]


def grpc_command(address: str) -> list[str]:
    """The gRPC server of hop 5."""
    return [PYTHON, "-m", "project.grpcserver", "--address", address]


# --- the table ---------------------------------------------------------------------------------


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def table(settings: Any, var_dir: Path) -> list[Process]:
    """The stack's processes for ``settings``, with their data and files under ``var_dir``."""
    s = settings
    redis_url = urlsplit(s.CELERY_BROKER_URL)
    redis = (redis_url.hostname or "127.0.0.1", redis_url.port or 6379)
    kafka = split_address(s.KAFKA_BOOTSTRAP_SERVERS.split(",")[0])
    worker = f"relay-{var_dir.name}@{socket.gethostname()}"
    return [
        Process(
            name="redis",
            command=["redis-server", str(var_dir / "redis" / "redis.conf")],
            ports=[redis],
            setting="REDIS_URL",
            ready=_health("redis"),
            prepare=lambda: _write_redis_config(s, var_dir / "redis", *redis),
        ),
        Process(
            name="kafka",
            command=[
                *("java", "-Xms256m", "-Xmx1g", "-Djava.awt.headless=true"),
                f"-Dlog4j2.configurationFile={KAFKA_CONFIG / 'log4j2.yaml'}",
                *("-cp", f"{KAFKA_LIBS}/*", "kafka.Kafka"),
                str(var_dir / "kafka" / "server.properties"),
            ],
            # The KRaft controller listens on the port after the broker's.
            ports=[kafka, (kafka[0], kafka[1] + 1)],
            setting="KAFKA_BOOTSTRAP_SERVERS",
            ready=_kafka_topics_ready,
            prepare=lambda: _prepare_kafka(s, var_dir / "kafka", *kafka),
            stop_seconds=30.0,
        ),
        Process(
            name="grpc",
            command=grpc_command(s.GRPC_ADDRESS),
            ports=[split_address(s.GRPC_ADDRESS)],
            setting="GRPC_ADDRESS",
            ready=_health("grpc"),
        ),
        Process(
            name="worker",
            command=worker_command(
                hostname=worker,
                schedule=str(var_dir / "run" / "celerybeat-schedule"),
                pool=s.RELAY_WORKER_POOL,
                concurrency=s.RELAY_WORKER_CONCURRENCY,
            ),
            ports=[],
            setting="RELAY_WORKER_CONCURRENCY",
            ready=lambda: _worker_answers(worker),
            after=("redis", "kafka", "grpc"),
        ),
        Process(
            name="web",
            command=web_command(
                s.RELAY_HTTP_ADDRESS,
                certfile=s.RELAY_HTTPS_CERT_FILE,
                keyfile=s.RELAY_HTTPS_KEY_FILE,
            ),
            ports=[split_address(s.RELAY_HTTP_ADDRESS)],
            setting="RELAY_HTTP_ADDRESS",
            ready=_web_answers,
            after=("redis", "kafka", "grpc"),
            prepare=lambda: _collect_static(s),
        ),
    ]


# --- how to tell each is ready -----------------------------------------------------------------


def _health(dependency: str) -> Callable[[], None]:
    """The relay's own health check of ``dependency`` (``relay_app/services/health.py``)."""

    def check() -> None:
        from relay_app.services.health import CHECKS

        CHECKS[dependency]()

    return check


def _kafka_topics_ready() -> None:
    """Kafka answers, and the relay's topics exist (made now if missing)."""
    from relay_app.integrations.kafka_records import ensure_relay_topics

    if created := ensure_relay_topics():
        print(f"[stack] created Kafka topics {', '.join(created)}", flush=True)


def _worker_answers(node: str) -> None:
    from project.celery import app

    if not app.control.ping(destination=[node], timeout=0.5):
        raise StackError("the Celery worker does not answer ping yet")


def _web_answers() -> None:
    """``/healthz`` answers 200, over HTTPS where the web server serves HTTPS."""
    from ops.client import web_connection

    connection = web_connection(timeout=2)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise StackError(f"/healthz answered {response.status}")


# --- the files each needs ----------------------------------------------------------------------


def private_file(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only (it may hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _stack_secret(name: str, needed_by: str) -> str:
    """A value only the stack needs (a server's key, a broker's own password), from the
    environment that the secure profile sets from ops/tls.py's transport.env."""
    if value := os.environ.get(name, ""):
        return value
    raise StackError(f"{name} is not set: {needed_by} needs it (`python -m ops.tls` makes it)")


def _write_redis_config(s: Any, folder: Path, host: str, port: int) -> None:
    """Redis's configuration: TLS only (no plaintext port) over rediss://, and the password, in
    a file of the stack's own rather than on a command line."""
    lines = [
        *(f"bind {host}", f"dir {folder}", "protected-mode no"),
        # Queued tasks survive a Redis restart: append-only file, fsync every second.
        *("appendonly yes", "appendfsync everysec", 'save ""'),
    ]
    if s.REDIS_TLS:
        lines += [
            *("port 0", f"tls-port {port}", f"tls-ca-cert-file {s.REDIS_TLS_CA_FILE}"),
            f"tls-cert-file {_stack_secret('RELAY_STACK_CERT_FILE', 'Redis over TLS')}",
            f"tls-key-file {_stack_secret('RELAY_STACK_KEY_FILE', 'Redis over TLS')}",
            # Clients prove who they are with the password; TLS proves who Redis is.
            "tls-auth-clients no",
        ]
    else:
        lines.append(f"port {port}")
    if password := urlsplit(s.CELERY_BROKER_URL).password:
        lines.append(f"requirepass {unquote(password)}")
    private_file(folder / "redis.conf", "\n".join(lines) + "\n")


def _kafka_security(s: Any) -> dict[str, Any]:
    """What the broker's configuration needs for the settings' protocol: the templates to add
    (``ops/kafka/*.properties.template``) with their values, and the SCRAM users to create."""
    protocol = s.KAFKA_SECURITY_PROTOCOL
    if protocol == "PLAINTEXT":
        return {"parts": [], "scram_users": []}

    def secret(name: str) -> str:
        return _stack_secret(name, f"Kafka over {protocol}")

    security: dict[str, Any] = {
        "parts": ["tls"],
        "scram_users": [],
        "keystore": secret("RELAY_KAFKA_KEYSTORE"),
        "keystore_password": secret("RELAY_KAFKA_KEYSTORE_PASSWORD"),
        "truststore": s.KAFKA_SSL_CAFILE,
    }
    if protocol == "SASL_SSL":
        broker = (secret("RELAY_KAFKA_BROKER_USER"), secret("RELAY_KAFKA_BROKER_PASSWORD"))
        security["parts"].append("sasl")
        security["broker_user"], security["broker_password"] = broker
        security["scram_users"] = [broker, (s.KAFKA_SASL_USERNAME, s.KAFKA_SASL_PASSWORD)]
    return security


def _template(name: str) -> str:
    return (KAFKA_CONFIG / f"{name}.properties.template").read_text()


def _prepare_kafka(s: Any, folder: Path, host: str, port: int) -> None:
    """The broker's configuration from settings; its storage formatted on the first start."""
    if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        raise StackError(f"Kafka's jars are missing from {KAFKA_LIBS}: run `make kafka`.")
    protocol = s.KAFKA_SECURITY_PROTOCOL
    security = _kafka_security(s)
    data = folder / "data"
    config = folder / "server.properties"
    private_file(
        config,
        _template("server").format(
            broker=f"{host}:{port}",
            controller=f"{host}:{port + 1}",
            data_dir=data,
            protocol=protocol,
            controller_protocol="PLAINTEXT" if protocol == "PLAINTEXT" else "SSL",
        )
        + "".join(_template(part).format(**security) for part in security["parts"]),
    )
    if (data / "meta.properties").exists():
        return
    print("[stack] formatting Kafka's KRaft storage (first start)", flush=True)
    data.mkdir(parents=True, exist_ok=True)
    # A cluster id is 16 random bytes in URL-safe base64; "-" first would read as an option.
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    scram = [
        argument
        for user, password in security["scram_users"]
        for argument in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")
    ]
    formatted = subprocess.run(
        [
            *("java", "-cp", f"{KAFKA_LIBS}/*"),
            f"-Dlog4j2.configurationFile={KAFKA_CONFIG / 'log4j2.yaml'}",
            *("kafka.tools.StorageTool", "format", "--standalone", "--cluster-id", cluster_id),
            *("--config", str(config), *scram),  # the SCRAM users exist from the start
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if formatted.returncode != 0:
        output = (formatted.stdout + formatted.stderr).strip()[-2000:]
        raise StackError(f"formatting Kafka's storage in {data} failed:\n{output}")


def _collect_static(s: Any) -> None:
    """The admin's and the docs' static files, for whitenoise (not under test settings)."""
    if s.STATIC_ROOT is None:
        return
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v", "0"],
        check=True,
        timeout=120,
    )
