"""Every process of the relay's stack, declared once: its command, the ports it takes, the
setting that moves it, what it waits for, how to tell it is ready, and the files it needs.

``ops/stack.py`` starts and stops a stack from this table (``make run``, ``make up``, the
tests, the bench and chaos alike). The Dockerfile and ``docker-compose.yml`` run the same
commands, built by the same functions (``web_command``, ``worker_command``, ``beat_command``,
``grpc_command``); ``tests/unit/test_deployment_files.py`` and
``tests/integration/test_compose.py`` check that they agree. More brokers, workers or
servers are more rows, made here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ops.client import manage

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LIBS = ROOT / "var" / "kafka" / "libs"
KAFKA_CONFIG = ROOT / "ops" / "kafka"
ZIPKIN_JAR = ROOT / "var" / "zipkin" / "zipkin-server-exec.jar"
# The table's name for the Python that runs the relay: the stack runs it with its own
# interpreter (this one), the image with its ``python``.
PYTHON = "python"
# Where the web servers listen, behind the proxy.
LOOPBACK = "127.0.0.1"


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
    env: dict[str, str] = field(default_factory=dict)  # its own, over the stack's


# --- the commands, shared with the Dockerfile and docker-compose.yml --------------------------


# Each web server (gunicorn) runs this many processes of this many threads; an event stream
# holds a thread while it lasts (RELAY_EVENT_STREAMS_PER_PROCESS stays well under it).
WEB_WORKERS = 2
WEB_THREADS = 128
# Seconds gunicorn keeps an idle connection open: longer than the proxy keeps one (its
# upstream keepalive_timeout, ops/nginx.conf.template), so the proxy is the one to close it.
WEB_KEEP_ALIVE_SECONDS = 5


def web_command(bind: str) -> list[str]:
    """gunicorn serving the relay on ``bind``, in plain HTTP behind the proxy."""
    return [
        *(PYTHON, "-m", "gunicorn", "project.wsgi:application", "--bind", bind),
        # Its hooks: the metrics of its processes start afresh with it (project/webserver.py).
        *("--config", "python:project.webserver"),
        # Threads: a relay mostly waits on its transaction, and one thread each for as many as
        # admission takes on leaves a refusal nothing to queue behind (docs/performance.md).
        # The worker class is gthread's, noting each request's arrival and bounding each
        # socket operation in time (project/webserver.py).
        *("--worker-class", "project.webserver.ArrivalThreadWorker"),
        *("--workers", str(WEB_WORKERS), "--threads", str(WEB_THREADS)),
        *("--keep-alive", str(WEB_KEEP_ALIVE_SECONDS)),
        *("--timeout", "30", "--graceful-timeout", "10", "--access-logfile", "-"),
        *("--access-logformat", ACCESS_LOG_FORMAT),
    ]


# gunicorn's access log: each request's path alone (%(U)s), never its query string, where a
# client may put a token, nor its referrer (docs/security.md, "Logs").
ACCESS_LOG_FORMAT = '%(h)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss "%(a)s"'


def worker_command(
    *, hostname: str, pool: str, concurrency: int, beat_schedule: str | None = None
) -> list[str]:
    """A Celery worker of the relay's tasks; with ``beat_schedule``, also the scheduler that
    sweeps and purges (one in the whole stack), keeping its state in that file."""
    return [
        *(PYTHON, "-m", "celery", "-A", "project", "worker", "--hostname", hostname),
        # Every task's "received" and "succeeded" cost more than a hop; the original example's lines
        # and warnings still reach the log.
        *("--loglevel", "WARNING", "--pool", pool, "--concurrency", str(concurrency)),
        # No need to wait for or talk to sibling workers at start.
        *("--without-gossip", "--without-mingle"),
        *(("--beat", "--schedule", beat_schedule) if beat_schedule else ()),
    ]


def beat_command(*, schedule: str) -> list[str]:
    """The scheduler alone, where workers are many alike (a scaled compose service): one in
    the whole deployment, or the sweep and the purge would run once per worker."""
    return [
        *(PYTHON, "-m", "celery", "-A", "project", "beat", "--schedule", schedule),
        *("--loglevel", "WARNING"),
    ]


def grpc_command(address: str) -> list[str]:
    """The gRPC server of hop 5."""
    return [PYTHON, "-m", "project.grpcserver", "--address", address]


# --- the table ---------------------------------------------------------------------------------


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def web_binds(front: str, count: int) -> list[str]:
    """Where ``count`` web servers listen behind the proxy on ``front``: on loopback, on the
    ports after the proxy's."""
    port = split_address(front)[1]
    return [f"{LOOPBACK}:{port + n}" for n in range(1, count + 1)]


def _names(kind: str, count: int) -> list[str]:
    """``kind`` alone, or ``kind-1`` ... ``kind-N`` when the stack runs several."""
    return [kind] if count == 1 else [f"{kind}-{number}" for number in range(1, count + 1)]


def identity(s: Any, role: str) -> dict[str, str]:
    """What a process of ``role`` is given of its own: its role, and where the profile has
    identities (ops/tls.py), its certificate, key, passwords and keys alone."""
    if not s.RELAY_TLS_DIR:
        return {"RELAY_PROCESS_ROLE": role}
    from ops import tls

    return tls.role_env(Path(s.RELAY_TLS_DIR), role)


def table(settings: Any, var_dir: Path) -> list[Process]:
    """The stack's processes for ``settings``, with their data and files under ``var_dir``:
    Redis, then as many Kafka nodes, gRPC servers, workers and web servers as the settings
    say, and the reverse proxy (nginx) in front of the web servers."""
    s = settings
    brokers = [split_address(address) for address in s.KAFKA_ADDRESS.split(",")]
    kafka = _kafka_processes(s, var_dir, brokers)
    grpc = _grpc_servers(s)
    # Workers and web servers start once Redis, every Kafka node and gRPC server are ready.
    backends = ("redis", *(p.name for p in kafka), *(p.name for p in grpc))
    webs = _web_servers(s, var_dir, after=backends)
    flower_socket = var_dir / "run" / "flower.sock"
    return [
        _redis(s, var_dir),
        *(
            [_zipkin(s.ZIPKIN_SERVER_ADDRESS, max_spans=s.ZIPKIN_MAX_SPANS)]
            if s.ZIPKIN_ADDRESS
            else []
        ),
        *kafka,
        *grpc,
        *_workers(s, var_dir, after=backends),
        *webs,
        _flower(flower_socket, identity(s, "flower")),
        _proxy(s, var_dir, [p.name for p in webs], flower_socket),
    ]


def _redis(s: Any, var_dir: Path) -> Process:
    """Redis, the broker of Celery's tasks and the notices, on REDIS_URL's host and port."""
    url = urlsplit(s.CELERY_BROKER_URL)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    return Process(
        name="redis",
        command=["redis-server", str(var_dir / "redis" / "redis.conf")],
        ports=[(host, port)],
        setting="REDIS_URL",
        ready=_health("redis"),
        prepare=lambda: _write_redis_config(s, var_dir / "redis", host, port),
    )


def _grpc_servers(s: Any) -> list[Process]:
    """A gRPC server for each address of GRPC_ADDRESS, its metrics on the matching one."""
    addresses = s.GRPC_ADDRESS.split(",")
    metrics = s.RELAY_GRPC_METRICS_ADDRESS.split(",")
    return [
        Process(
            name=name,
            command=grpc_command(address),
            ports=[split_address(address), split_address(metrics_address)],
            setting="GRPC_ADDRESS",
            ready=partial(_grpc_answers, address),
            env={"RELAY_METRICS_ADDRESS": metrics_address, **identity(s, "grpc")},
        )
        for name, address, metrics_address in zip(
            _names("grpc", len(addresses)), addresses, metrics, strict=True
        )
    ]


def _workers(s: Any, var_dir: Path, *, after: tuple[str, ...]) -> list[Process]:
    """RELAY_WORKERS Celery workers, the first also the stack's one scheduler (beat)."""
    metrics = s.RELAY_WORKER_METRICS_ADDRESS.split(",")
    workers = []
    for number, name in enumerate(_names("worker", s.RELAY_WORKERS), start=1):
        hostname = f"relay-{var_dir.name}{'' if s.RELAY_WORKERS == 1 else f'-{number}'}"
        node = f"{hostname}@{socket.gethostname()}"
        schedule = var_dir / "run" / "celerybeat-schedule"
        workers.append(
            Process(
                name=name,
                command=worker_command(
                    hostname=node,
                    pool=s.RELAY_WORKER_POOL,
                    concurrency=s.RELAY_WORKER_CONCURRENCY,
                    beat_schedule=str(schedule) if number == 1 else None,
                ),
                ports=[split_address(metrics[number - 1])],
                setting="RELAY_WORKERS",
                ready=partial(_worker_answers, node),
                after=after,
                prepare=partial(private_folder, var_dir / "metrics" / name),
                env={
                    "RELAY_METRICS_ADDRESS": metrics[number - 1],
                    "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "metrics" / name),
                    **identity(s, "worker"),
                },
            )
        )
    return workers


def _web_servers(s: Any, var_dir: Path, *, after: tuple[str, ...]) -> list[Process]:
    """RELAY_WEB_SERVERS gunicorns on loopback, on the ports after the proxy's: every request
    reaches them through the proxy (ops/nginx.conf.template)."""
    names = _names("web", s.RELAY_WEB_SERVERS)
    binds = web_binds(s.HTTP_ADDRESS, len(names))
    return [
        Process(
            name=name,
            command=web_command(bind),
            ports=[split_address(bind)],
            setting="HTTP_ADDRESS",
            ready=partial(_web_answers, f"http://{bind}"),
            after=after,
            prepare=partial(_prepare_web, s, var_dir / "metrics" / name, static=number == 1),
            env={
                "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "metrics" / name),
                # The proxy appends the client's address to X-Forwarded-For: trusted from it
                # alone.
                "RELAY_TRUSTED_PROXY_COUNT": "1",
                "RELAY_TRUSTED_PROXY_ADDRESSES": LOOPBACK,
                **identity(s, "web"),
            },
        )
        for number, (name, bind) in enumerate(zip(names, binds, strict=True), start=1)
    ]


def _proxy(s: Any, var_dir: Path, webs: list[str], flower_socket: Path) -> Process:
    """nginx on the front address (HTTP_ADDRESS), Flower's (FLOWER_ADDRESS) and, where it
    serves HTTPS, Zipkin's (ZIPKIN_ADDRESS), in front of the web servers, Flower and Zipkin."""
    front = s.HTTP_ADDRESS
    scheme = "https" if s.HTTP_TLS_CERT_FILE else "http"
    binds = web_binds(front, len(webs))
    return Process(
        name="proxy",
        command=[
            # Its errors and access log go to supervisord, which rotates them (proxy.log).
            *("nginx", "-p", str(var_dir / "nginx"), "-c", "nginx.conf", "-e", "stderr"),
            # As root, nginx would run its workers as nobody, who may not enter the stack's
            # private folder (its temporary files are there): as the stack's user.
            *(("-g", "user root;") if os.geteuid() == 0 else ()),
        ],
        ports=[
            split_address(front),
            split_address(s.FLOWER_ADDRESS),
            *([split_address(s.ZIPKIN_ADDRESS)] if s.ZIPKIN_BEHIND_PROXY else []),
        ],
        setting="HTTP_ADDRESS",
        ready=partial(_web_answers, f"{scheme}://{front}"),
        after=(*webs, "flower", *(("zipkin",) if s.ZIPKIN_BEHIND_PROXY else ())),
        prepare=lambda: _write_nginx_config(s, var_dir, binds, flower=f"unix:{flower_socket}"),
    )


def flower_command(*, address: str = "", unix_socket: str = "") -> list[str]:
    """Flower, Celery's monitor, on ``address`` (host:port) or a unix socket; it is reached
    through the proxy, which lets staff alone through."""
    if unix_socket:
        where = [f"--unix_socket={unix_socket}"]
    else:
        host, port = split_address(address)
        where = [f"--address={host}", f"--port={port}"]
    return [
        *(PYTHON, "-m", "celery", "-A", "project", "flower", *where),
        # Workers gone for a minute leave its list; at most this many tasks are kept.
        *("--purge_offline_workers=60", "--max_tasks=10000"),
    ]


def _flower(unix_socket: Path, own: dict[str, str]) -> Process:
    """Flower on a unix socket of the stack's own: nobody reaches it but through the proxy."""
    return Process(
        name="flower",
        command=flower_command(unix_socket=str(unix_socket)),
        ports=[],
        setting="FLOWER_ADDRESS",
        ready=partial(_socket_answers, unix_socket),
        after=("redis",),
        prepare=lambda: unix_socket.unlink(missing_ok=True),
        # Its API needs no credential of its own: the proxy checks the person's (staff only).
        env={"FLOWER_UNAUTHENTICATED_API": "true", **own},
    )


def _zipkin(address: str, *, max_spans: int) -> Process:
    """Zipkin, the stack's trace viewer and store (in memory, at most ``max_spans`` spans),
    on ``address`` alone; its UI at /zipkin/."""
    host, port = split_address(address)

    def require_jar() -> None:
        if not ZIPKIN_JAR.exists():
            raise StackError(f"Zipkin's server is missing ({ZIPKIN_JAR}): run `make setup`.")

    return Process(
        name="zipkin",
        command=[
            *("java", "-Xms64m", "-Xmx384m", "-Djava.awt.headless=true", "-jar", str(ZIPKIN_JAR)),
            *(f"--armeria.ports[0].ip={host}", f"--armeria.ports[0].port={port}"),
            "--armeria.ports[0].protocols=http",
        ],
        ports=[(host, port)],
        setting="ZIPKIN_ADDRESS",
        ready=partial(_zipkin_answers, address),
        prepare=require_jar,
        env={"STORAGE_TYPE": "mem", "MEM_MAX_SPANS": str(max_spans)},
    )


def _kafka_processes(s: Any, var_dir: Path, brokers: list[tuple[str, int]]) -> list[Process]:
    """One Kafka node, broker and controller, for one broker address; for several, each a
    broker, and as many controllers apart (ops/kafka/cluster.properties.template says why),
    each listening on the port after its broker's."""
    if len(brokers) == 1:
        nodes = [KafkaNode(1, "broker,controller", *brokers[0])]
    else:
        quorum = [(CONTROLLER_IDS + n, h, p + 1) for n, (h, p) in enumerate(brokers, start=1)]
        voters = ",".join(f"{node_id}@{host}:{port}" for node_id, host, port in quorum)
        nodes = [
            *(KafkaNode(node_id, "controller", h, p, voters) for node_id, h, p in quorum),
            *(KafkaNode(n, "broker", h, p, voters) for n, (h, p) in enumerate(brokers, start=1)),
        ]
    controllers = tuple(kafka_process_name(n.node_id) for n in nodes if n.roles == "controller")
    processes = []
    for node in nodes:
        # var/kafka alone; var/kafka/controller-1 ... and var/kafka/broker-1 ... in a cluster.
        cluster = f"{node.roles}-{node.node_id % CONTROLLER_IDS}"
        folder = var_dir / "kafka" / (cluster if len(nodes) > 1 else "")
        name = kafka_process_name(node.node_id) if len(nodes) > 1 else "kafka"
        # A controller holds only the cluster's metadata.
        heap = ("-Xms128m", "-Xmx512m") if node.roles == "controller" else ("-Xms256m", "-Xmx1g")
        processes.append(
            Process(
                name=name,
                command=[
                    *("java", *heap, "-Djava.awt.headless=true"),
                    f"-Dlog4j2.configurationFile={KAFKA_CONFIG / 'log4j2.yaml'}",
                    *("-cp", f"{KAFKA_LIBS}/*", "kafka.Kafka", str(folder / "server.properties")),
                ],
                ports=node.ports,
                setting="KAFKA_ADDRESS",
                # A controller cannot start alone: the quorum needs most of them; nor can a
                # broker without the quorum. So all start, and the last is ready once the
                # cluster answers and the relay's topics exist.
                ready=_kafka_topics_ready if node == nodes[-1] else _started,
                after=() if node.roles == "controller" else controllers,
                prepare=partial(_prepare_kafka, s, folder, node),
                stop_seconds=30.0,
            )
        )
    return processes


# --- how to tell each is ready -----------------------------------------------------------------


def _health(dependency: str) -> Callable[[], None]:
    """The relay's own health check of ``dependency`` (``relay_app/services/health.py``)."""

    def check() -> None:
        from relay_app.services.health import CHECKS

        CHECKS[dependency]()

    return check


def _started() -> None:
    """Ready as soon as started: a Kafka node waits for the others to form the quorum."""


def _grpc_answers(address: str) -> None:
    """The gRPC server at ``address`` (only that one) says it is serving."""
    from relay_app.services.health import grpc_serving

    grpc_serving(address)


def _kafka_topics_ready() -> None:
    """Kafka answers with every broker registered, and the relay's topics exist (made now if
    missing, on as many brokers as they need)."""
    from django.conf import settings

    from ops.kafka_tools import grant_topics, kafka_admin
    from project.settings.profiles import RELAY_KAFKA_USER
    from relay_app.integrations.kafka_records import ensure_relay_topics, relay_topics

    expected = len(settings.KAFKA_ADDRESS.split(","))
    if expected > 1:
        with kafka_admin() as admin:
            registered = len(admin.describe_cluster()["brokers"])
        if registered < expected:
            raise StackError(f"{registered} of {expected} Kafka brokers registered so far")
    if created := ensure_relay_topics():
        print(f"[stack] created Kafka topics {', '.join(created)}", flush=True)
    if settings.KAFKA_SECURITY_PROTOCOL == "SASL_SSL":  # Kafka's authorizer is on
        grant_topics(RELAY_KAFKA_USER, relay_topics())


def _socket_answers(path: Path) -> None:
    """Something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        probe.connect(str(path))


def _zipkin_answers(address: str) -> None:
    """Zipkin at ``address`` says it is up."""
    import requests

    answer = requests.get(f"http://{address}/health", timeout=2)
    if answer.status_code != 200 or answer.json().get("status") != "UP":
        raise StackError(f"Zipkin's /health answered {answer.status_code}")


def _worker_answers(node: str) -> None:
    from project.celery import app

    if not app.control.ping(destination=[node], timeout=0.5):
        raise StackError("the Celery worker does not answer ping yet")


def _web_answers(base_url: str) -> None:
    """``/healthz`` at ``base_url`` answers 200 (over HTTPS, the certificate verified against
    HTTP_TLS_CA_FILE)."""
    from django.conf import settings

    from relay_app.integrations.relay_api import RelayClient

    with RelayClient(base_url, ca_file=settings.HTTP_TLS_CA_FILE, timeout=2) as client:
        answer = client.get("/healthz")
    if answer.status != 200:
        raise StackError(f"/healthz answered {answer.status}")


# --- the files each needs ----------------------------------------------------------------------


def private_file(path: Path, data: str | bytes) -> None:
    """Write ``path`` readable and writable by its owner only, from the first byte on (it may
    hold a key or a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def private_folder(path: Path) -> None:
    """``path``, made if missing, its owner's alone: the stack's data and logs (every client's
    message), a forking server's metrics (the server empties it as it starts)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _secrets(s: Any, needed_by: str) -> dict[str, str]:
    """The passwords of the profile's identities (ops/tls.py), which only the stack reads."""
    from project.settings.environment import read_env_file

    if not s.RELAY_TLS_DIR:
        raise StackError(
            f"{needed_by} needs the identities of ops/tls.py: RELAY_TLS_DIR is not set"
        )
    return read_env_file(Path(s.RELAY_TLS_DIR) / "secrets.env")


# Redis's users (ACLs) where the profile has identities: each role may run the commands and
# touch the keys and channels that Celery (kombu), its results and events, the notices, the
# throttles and readiness need, nothing else (found by running the stack with them and reading
# Redis's refusals); Redis's default user is off. The monitor is Flower's and the stack's
# readiness checks': it reads queues and events and asks workers for a ping.
_KOMBU = "~celery* ~_kombu.* ~*.celery.pidbox*"
# kombu's and the throttles' Lua scripts too (their keys checked all the same).
_COMMANDS = (
    "-@all +@connection +@read +@write +@pubsub +@transaction +@scripting -@dangerous"
    " -script|flush -script|kill -function +time"
)


def redis_channels(db: int) -> dict[str, list[str]]:
    """The pub/sub channels each Redis user may use, on database ``db`` (kombu's fanout
    channels name it). kombu subscribes to a fanout exchange by pattern (PSUBSCRIBE), which
    Redis's ACL allows only for the very pattern granted, so each is granted as kombu spells it.
    """
    # Celery's events (task-sent from the web servers, the workers' heartbeats and tasks), to
    # which Flower subscribes: /<db>.celeryev/<routing key>.
    events = f"/{db}.celeryev/*"
    # Remote control (ping, and any other command): the workers subscribe, readiness and Flower
    # send; the replies go through lists (*.reply.celery.pidbox keys), not channels.
    control = f"/{db}.celery.pidbox"
    # A stored result's notice (published as Celery does; its waiter blocks on the result's
    # end list instead, relay_app/integrations/celery_redis.py) and a transaction's notice
    # (relay_app/integrations/notices.py; the event streams subscribe).
    results, notices = "celery-task-meta-*", "relay:transaction:*"
    return {
        # Readiness pings the workers (relay_app/services/health.py).
        "web": [events, control, results, notices],
        "worker": [events, control, results, notices],
        "monitor": [events, control],
    }


REDIS_USERS = {
    # ... and the throttles (relay_app/integrations/rate_limit.py); the workers only the bulk
    # jobs' shared rate (relay_app/services/bulk.py).
    "web": f"{_KOMBU} ~relay:rate:* {_COMMANDS}",
    "worker": f"{_KOMBU} ~unacked* ~relay:rate:bulk-items {_COMMANDS}",
    "monitor": f"{_KOMBU} ~unacked* {_COMMANDS}",
}


def _write_redis_config(s: Any, folder: Path, host: str, port: int) -> None:
    """Redis's configuration: TLS only (no plaintext port) over rediss://, with a certificate
    of its own and, where the profile has identities, an ACL user per role (each password only
    as its SHA-256); else the URL's password, if any. A file of the stack's own, never a
    command line."""
    lines = [
        *(f"bind {host}", f"dir {folder}", "protected-mode no"),
        # Queued tasks survive a Redis restart: append-only file, fsync every second.
        *("appendonly yes", "appendfsync everysec", 'save ""'),
    ]
    if s.REDIS_TLS:
        tls_dir = Path(s.RELAY_TLS_DIR)
        lines += [
            *("port 0", f"tls-port {port}", f"tls-ca-cert-file {s.REDIS_TLS_CA_FILE}"),
            f"tls-cert-file {tls_dir / 'redis.pem'}",
            f"tls-key-file {tls_dir / 'redis-key.pem'}",
            # Clients prove who they are with their user's password; TLS proves who Redis is.
            "tls-auth-clients no",
        ]
    else:
        lines.append(f"port {port}")
    if s.RELAY_TLS_DIR:
        secrets = _secrets(s, "Redis's users")
        lines.append("user default off resetkeys resetchannels -@all")
        channels = redis_channels(int(urlsplit(s.CELERY_BROKER_URL).path.strip("/") or 0))
        for user, rules in REDIS_USERS.items():
            digest = hashlib.sha256(secrets[f"REDIS_{user.upper()}_PASSWORD"].encode()).hexdigest()
            allowed = " ".join(f"&{channel}" for channel in channels[user])
            lines.append(f"user {user} on #{digest} resetchannels {allowed} {rules}")
    elif password := urlsplit(s.CELERY_BROKER_URL).password:
        lines.append(f"requirepass {unquote(password)}")
    private_file(folder / "redis.conf", "\n".join(lines) + "\n")


# Kafka's users (SCRAM, created as the storage is formatted): the relay's (the workers),
# the stack's admin (creates topics and ACLs) and the brokers' own, to each other.
KAFKA_USERS = {"relay": "KAFKA_RELAY_PASSWORD", "admin": "KAFKA_ADMIN_PASSWORD"}
KAFKA_BROKER_USER = "broker"


def _kafka_security(s: Any) -> dict[str, Any]:
    """What the broker's configuration needs for the settings' protocol: the templates to add
    (``ops/kafka/*.properties.template``) with their values, and the SCRAM users to create."""
    protocol = s.KAFKA_SECURITY_PROTOCOL
    if protocol == "PLAINTEXT":
        return {"parts": [], "scram_users": []}
    secrets = _secrets(s, f"Kafka over {protocol}")
    security: dict[str, Any] = {
        "parts": ["tls"],
        "scram_users": [],
        "keystore": Path(s.RELAY_TLS_DIR) / "kafka-keystore.p12",
        "keystore_password": secrets["KAFKA_KEYSTORE_PASSWORD"],
        "truststore": s.KAFKA_TLS_CA_FILE,
    }
    if protocol == "SASL_SSL":
        security["parts"].append("sasl")
        security["broker_user"] = KAFKA_BROKER_USER
        security["broker_password"] = secrets["KAFKA_BROKER_PASSWORD"]
        security["scram_users"] = [
            (KAFKA_BROKER_USER, secrets["KAFKA_BROKER_PASSWORD"]),
            *((user, secrets[password]) for user, password in KAFKA_USERS.items()),
        ]
    return security


def _template(name: str) -> str:
    return (KAFKA_CONFIG / f"{name}.properties.template").read_text()


# Node ids of a cluster's controllers: 101, 102, ...; its brokers are 1, 2, ...
CONTROLLER_IDS = 100


def kafka_process_name(node_id: int) -> str:
    """The process of a cluster's Kafka node ``node_id``, as Kafka's own tools name the node."""
    if node_id > CONTROLLER_IDS:
        return f"kafka-controller-{node_id - CONTROLLER_IDS}"
    return f"kafka-{node_id}"


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka node's place in its cluster: id, roles, address, and the controllers' quorum
    (empty: a node alone, which is its own)."""

    node_id: int
    roles: str
    host: str
    port: int
    voters: str = ""

    @property
    def ports(self) -> list[tuple[str, int]]:
        if self.roles == "broker,controller":  # its controller on the port after its broker's
            return [(self.host, self.port), (self.host, self.port + 1)]
        return [(self.host, self.port)]


def _prepare_kafka(s: Any, folder: Path, node: KafkaNode) -> None:
    """Kafka node ``node``'s configuration from settings; its storage formatted on the first
    start, with the cluster's one id."""
    if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        raise StackError(f"Kafka's jars are missing from {KAFKA_LIBS}: run `make kafka`.")
    security = _kafka_security(s)
    config = folder / "server.properties"
    private_file(config, _kafka_config(s, folder, node, security))
    if not (folder / "data" / "meta.properties").exists():
        _format_kafka_storage(folder, node, config, security["scram_users"])


def _kafka_config(s: Any, folder: Path, node: KafkaNode, security: dict[str, Any]) -> str:
    """``server.properties`` of ``node``: ``ops/kafka/server.properties.template``, then the
    templates of its role, its security and of a cluster, with their values."""
    protocol = s.KAFKA_SECURITY_PROTOCOL
    cluster = bool(node.voters)
    values = {
        **asdict(node),
        "controller_port": node.port + 1,
        "data_dir": folder / "data",
        "protocol": protocol,
        "controller_protocol": "PLAINTEXT" if protocol == "PLAINTEXT" else "SSL",
        "replicas": min(3, len(s.KAFKA_ADDRESS.split(","))),
        "min_isr": s.KAFKA_MIN_INSYNC_REPLICAS if cluster else 1,
        **security,
    }
    role = "alone" if node.roles == "broker,controller" else node.roles
    parts = ["server", role, *security["parts"], *(["cluster"] if cluster else [])]
    return "".join(_template(part).format(**values) for part in parts)


def _format_kafka_storage(
    folder: Path, node: KafkaNode, config: Path, scram_users: list[tuple[str, str]]
) -> None:
    """Kafka's own storage tool formats ``node``'s data folder, with the cluster's one id and
    the SCRAM users, which exist from the start."""
    print(
        f"[stack] formatting Kafka's KRaft storage of node {node.node_id} (first start)", flush=True
    )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    cluster = bool(node.voters)
    scram = [
        argument
        for user, password in scram_users
        for argument in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")
    ]
    formatted = subprocess.run(
        [
            *("java", "-cp", f"{KAFKA_LIBS}/*"),
            f"-Dlog4j2.configurationFile={KAFKA_CONFIG / 'log4j2.yaml'}",
            *("kafka.tools.StorageTool", "format"),
            *("--cluster-id", _cluster_id(folder.parent if cluster else folder)),
            *(() if cluster else ("--standalone",)),
            *("--config", str(config), *scram),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if formatted.returncode != 0:
        output = (formatted.stdout + formatted.stderr).strip()[-2000:]
        raise StackError(f"formatting Kafka's storage in {folder / 'data'} failed:\n{output}")


def _cluster_id(folder: Path) -> str:
    """The cluster's id, made once and shared by every node (``folder/cluster-id``)."""
    path = folder / "cluster-id"
    if path.exists():
        return path.read_text().strip()
    # 16 random bytes in URL-safe base64; a "-" first would read as an option.
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    private_file(path, cluster_id)
    return cluster_id


def proxy_config(
    *,
    listen: str,
    servers: list[str],
    flower: tuple[str, str],
    pid: str,
    access_log: str,
    tls: tuple[str, str] | None,
    zipkin: tuple[str, str, str] | None = None,
) -> str:
    """``ops/nginx.conf.template`` with its values, as envsubst fills it in the compose proxy:
    the relay on ``listen``, Flower (``flower``: where the proxy listens, and where Flower is)
    for staff; with ``tls`` (a certificate and its key), over HTTPS; with ``zipkin`` (where the
    proxy listens, where Zipkin is, and the CA of the exporters' certificates), Zipkin over
    TLS (``ops/nginx-zipkin.conf.template``)."""
    from relay_app.api.parsers import max_body_bytes

    cert, key = tls or ("", "")
    scheme = "https" if tls else "http"
    values = {
        "RELAY_PROXY_LISTEN": f"{listen} ssl" if tls else listen,
        "RELAY_PROXY_FLOWER_LISTEN": f"{flower[0]} ssl" if tls else flower[0],
        "RELAY_PROXY_FLOWER_SERVER": f"server {flower[1]};",
        "RELAY_PROXY_LOGIN_URL": f"{scheme}://{listen}/admin/login/",
        "RELAY_PROXY_TLS": f"ssl_certificate {cert}; ssl_certificate_key {key};" if tls else "",
        "RELAY_PROXY_MAX_BODY": str(max_body_bytes()),
        # nginx marks no server down for a failure: a killed one is retried at once.
        "RELAY_PROXY_SERVERS": " ".join(f"server {server} max_fails=0;" for server in servers),
        "RELAY_PROXY_PID": pid,
        "RELAY_PROXY_ACCESS_LOG": access_log,
    }
    if zipkin and tls:
        values["RELAY_PROXY_ZIPKIN_LISTEN"], values["RELAY_PROXY_ZIPKIN_SERVER"] = zipkin[:2]
        values["RELAY_PROXY_ZIPKIN_CA"] = zipkin[2]
        values["RELAY_PROXY_TRACING"] = _filled("nginx-zipkin.conf.template", values)
    else:
        values["RELAY_PROXY_TRACING"] = ""
    return _filled("nginx.conf.template", values)


def _filled(template: str, values: dict[str, str]) -> str:
    text = (ROOT / "ops" / template).read_text()
    return re.sub(r"\$\{(RELAY_PROXY_\w+)\}", lambda match: values[match[1]], text)


def _write_nginx_config(s: Any, var_dir: Path, backends: list[str], *, flower: str) -> None:
    """The reverse proxy in front of the web servers, Flower and (where it serves HTTPS: the
    secure and cluster profiles) Zipkin, with the proxy's certificate."""
    cert, key = s.HTTP_TLS_CERT_FILE, s.HTTP_TLS_KEY_FILE
    text = proxy_config(
        listen=s.HTTP_ADDRESS,
        servers=backends,
        flower=(s.FLOWER_ADDRESS, flower),
        pid=str(var_dir / "run" / "nginx.pid"),
        access_log="/dev/stdout",
        tls=(cert, key) if cert else None,
        zipkin=(s.ZIPKIN_ADDRESS, s.ZIPKIN_SERVER_ADDRESS, s.HTTP_TLS_CA_FILE)
        if s.ZIPKIN_BEHIND_PROXY
        else None,
    )
    private_file(var_dir / "nginx" / "nginx.conf", text)


def _prepare_web(s: Any, metrics: Path, *, static: bool) -> None:
    private_folder(metrics)
    if static:  # one web server collects the static files for all
        _collect_static(s)


def _collect_static(s: Any) -> None:
    """The admin's and the docs' static files, for whitenoise (not under test settings)."""
    if s.STATIC_ROOT is not None:
        manage(["collectstatic", "--noinput", "-v", "0"])
