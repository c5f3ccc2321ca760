"""Start, check and stop the relay's services as real local processes.

Kafka (KRaft, the official jars run with the JDK), Redis, the gRPC server, the Celery
worker and the web server (gunicorn). Addresses come from the Django settings, so the
stack, the code and the tests agree on them. Used by ``make up/down/run/demo`` through
``python -m ops.stack`` and by the test runner (``tests/runner.py``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.client import Credentials, issue_token

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LIBS = ROOT / "var" / "kafka" / "libs"
PYTHON = sys.executable
ALL = ("redis", "kafka", "grpc", "worker", "web")


class StackError(Exception):
    """A service could not be started or stopped; the message says why and what to do."""


def _say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _private_file(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only (it may hold a password)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _required_env(name: str, needed_by: str) -> str:
    """A value only the stack needs (a server's key, a broker's own password), from the
    environment that the secure profile sets from ops/tls.py's transport.env."""
    value = os.environ.get(name, "")
    if not value:
        raise StackError(f"{name} is not set: {needed_by} needs it (`python -m ops.tls` makes it)")
    return value


def _kafka_template(name: str) -> str:
    return (ROOT / "ops" / "kafka" / f"{name}.properties.template").read_text()


def _kafka_security(protocol: str) -> dict[str, Any]:
    """What the broker's configuration needs for ``protocol``: the templates to add to it and
    their values, and the SCRAM users to create. The broker's own secrets come from the
    environment the secure profile sets (ops/tls.py's transport.env)."""
    if protocol == "PLAINTEXT":
        return {"parts": [], "scram_users": []}

    def required(name: str) -> str:
        return _required_env(name, f"Kafka over {protocol}")

    from django.conf import settings

    security: dict[str, Any] = {
        "parts": ["tls"],
        "scram_users": [],
        "keystore": required("RELAY_KAFKA_KEYSTORE"),
        "keystore_password": required("RELAY_KAFKA_KEYSTORE_PASSWORD"),
        "truststore": settings.KAFKA_SSL_CAFILE,
    }
    if protocol == "SASL_SSL":
        broker = (required("RELAY_KAFKA_BROKER_USER"), required("RELAY_KAFKA_BROKER_PASSWORD"))
        security["parts"].append("sasl")
        security["broker_user"], security["broker_password"] = broker
        security["scram_users"] = [
            broker,
            (settings.KAFKA_SASL_USERNAME, settings.KAFKA_SASL_PASSWORD),
        ]
    return security


def _private_dir(path: Path) -> None:
    """``path``, made if missing, readable by its owner only: it holds the database, the logs
    (every client's message) and the services' data."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return True


@dataclass
class Service:
    """One process of the stack: how to start it, what it listens on, how to tell it is ready."""

    name: str
    command: list[str]
    ports: list[tuple[str, int]]
    ready: Callable[[], None]  # raises until the service answers
    setting: str  # the setting that moves it, named in "port in use" errors
    prepare: Callable[[], None] | None = None
    stop_timeout: float = 15.0
    env: dict[str, str] = field(default_factory=dict)


class Stack:
    """The services of one environment, with their logs and pid files under ``var_dir``."""

    def __init__(self, *, var_dir: Path, env: dict[str, str] | None = None) -> None:
        from django.conf import settings

        self.settings = settings
        self.var_dir = var_dir
        self.log_dir = var_dir / "log"
        self.run_dir = var_dir / "run"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.services = {s.name: s for s in self._services()}

    # --- the services -----------------------------------------------------------------------

    def _services(self) -> Iterable[Service]:
        s = self.settings
        redis_url = urllib.parse.urlsplit(s.CELERY_BROKER_URL)
        redis_host, redis_port = redis_url.hostname or "127.0.0.1", redis_url.port or 6379
        kafka_host, kafka_port = _split_address(s.KAFKA_BOOTSTRAP_SERVERS.split(",")[0])
        grpc_host, grpc_port = _split_address(s.GRPC_ADDRESS)
        web_host, web_port = _split_address(s.HTTP_ADDRESS)
        redis_dir = self.var_dir / "redis"

        yield Service(
            name="redis",
            command=["redis-server", str(redis_dir / "redis.conf")],
            ports=[(redis_host, redis_port)],
            ready=_check("redis"),
            setting="REDIS_URL",
            prepare=lambda: self._redis_prepare(redis_dir, redis_host, redis_port),
        )
        yield Service(
            name="kafka",
            command=[
                "java",
                "-Xms256m",
                "-Xmx1g",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={ROOT / 'ops' / 'kafka' / 'log4j2.yaml'}",
                "-cp",
                f"{KAFKA_LIBS}/*",
                "kafka.Kafka",
                str(self.var_dir / "kafka" / "server.properties"),
            ],
            # The KRaft controller listens on the port after the broker's.
            ports=[(kafka_host, kafka_port), (kafka_host, kafka_port + 1)],
            ready=self._kafka_ready,
            setting="KAFKA_BOOTSTRAP_SERVERS",
            prepare=lambda: self._kafka_prepare(kafka_host, kafka_port),
            stop_timeout=30.0,
        )
        yield Service(
            name="grpc",
            command=[PYTHON, "-m", "project.grpcserver"],
            ports=[(grpc_host, grpc_port)],
            ready=_check("grpc"),
            setting="GRPC_ADDRESS",
        )
        yield Service(
            name="worker",
            command=[
                PYTHON,
                "-m",
                "celery",
                "-A",
                "project",
                "worker",
                # Every task's "received" and "succeeded" cost more than a hop; the seed lines
                # and warnings still reach the log.
                "--loglevel",
                "WARNING",
                "--hostname",
                f"relay-{self.var_dir.name}@%h",
                "--pool",
                s.WORKER_POOL,
                "--concurrency",
                str(s.WORKER_CONCURRENCY),
                # One worker node: no need to wait for or talk to siblings at start.
                "--without-gossip",
                "--without-mingle",
                # The embedded beat runs the periodic sweep of stale transactions.
                "--beat",
                "--schedule",
                str(self.run_dir / "celerybeat-schedule"),
            ],
            ports=[],
            ready=self._worker_ready,
            setting="RELAY_WORKER_CONCURRENCY",
        )
        yield Service(
            name="web",
            command=[
                PYTHON,
                "-m",
                "gunicorn",
                "project.wsgi:application",
                "--bind",
                s.HTTP_ADDRESS,
                "--worker-class",
                "gthread",
                "--workers",
                "2",
                "--threads",
                "16",
                "--timeout",
                "30",
                "--graceful-timeout",
                "10",
                "--access-logfile",
                "-",
                # HTTPS, when settings give the web server a certificate.
                *(
                    ["--certfile", s.RELAY_HTTPS_CERT_FILE, "--keyfile", s.RELAY_HTTPS_KEY_FILE]
                    if s.RELAY_HTTPS_CERT_FILE
                    else []
                ),
            ],
            ports=[(web_host, web_port)],
            ready=lambda: _http_ok("/healthz"),
            setting="RELAY_HTTP_ADDRESS",
            prepare=self._web_prepare,
        )

    def _redis_prepare(self, redis_dir: Path, host: str, port: int) -> None:
        """Redis's configuration from settings: TLS only (no plaintext port) over rediss://,
        and the password, in a file of the stack's own (not on a command line)."""
        s = self.settings
        redis_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"bind {host}",
            f"dir {redis_dir}",
            # Queued tasks survive a Redis restart: append-only file, fsync every second.
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "protected-mode no",
        ]
        if s.REDIS_TLS:
            lines += [
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {_required_env('RELAY_STACK_CERT_FILE', 'Redis over TLS')}",
                f"tls-key-file {_required_env('RELAY_STACK_KEY_FILE', 'Redis over TLS')}",
                f"tls-ca-cert-file {s.REDIS_TLS_CA_FILE}",
                # Clients prove who they are with the password; TLS proves who Redis is.
                "tls-auth-clients no",
            ]
        else:
            lines.append(f"port {port}")
        if password := urllib.parse.urlsplit(s.CELERY_BROKER_URL).password:
            lines.append(f"requirepass {urllib.parse.unquote(password)}")
        _private_file(redis_dir / "redis.conf", "\n".join(lines) + "\n")

    def _kafka_prepare(self, host: str, port: int) -> None:
        if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
            raise StackError(
                f"Kafka's jars are missing from {KAFKA_LIBS}: run `make kafka` to fetch them."
            )
        s = self.settings
        kafka_dir = self.var_dir / "kafka"
        data_dir = kafka_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        protocol = s.KAFKA_SECURITY_PROTOCOL
        security = _kafka_security(protocol)
        config = kafka_dir / "server.properties"
        _private_file(
            config,
            _kafka_template("server").format(
                broker=f"{host}:{port}",
                controller=f"{host}:{port + 1}",
                data_dir=data_dir,
                protocol=protocol,
                controller_protocol="PLAINTEXT" if protocol == "PLAINTEXT" else "SSL",
            )
            + "".join(_kafka_template(part).format(**security) for part in security["parts"]),
        )
        if (data_dir / "meta.properties").exists():
            return
        _say("formatting Kafka's KRaft storage (first start)")
        # A cluster id is 16 random bytes in URL-safe base64; one starting with "-" would be
        # read as an option, so take another.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formatted = subprocess.run(
            [
                "java",
                "-cp",
                f"{KAFKA_LIBS}/*",
                f"-Dlog4j2.configurationFile={ROOT / 'ops' / 'kafka' / 'log4j2.yaml'}",
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--cluster-id",
                cluster_id,
                "--config",
                str(config),
                # The SCRAM users exist from the start: the broker's own, and the relay's.
                *(
                    argument
                    for user, password in security["scram_users"]
                    for argument in (
                        "--add-scram",
                        f"SCRAM-SHA-512=[name={user},password={password}]",
                    )
                ),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if formatted.returncode != 0:
            output = (formatted.stdout + formatted.stderr).strip()[-2000:]
            raise StackError(f"formatting Kafka's storage in {data_dir} failed:\n{output}")

    def _kafka_ready(self) -> None:
        from relay_app.integrations.kafka import ensure_relay_topics

        created = ensure_relay_topics()
        if created:
            _say(f"created Kafka topics {', '.join(created)}")

    def _worker_ready(self) -> None:
        from project.celery import app

        node = f"relay-{self.var_dir.name}@{socket.gethostname()}"
        if not app.control.ping(destination=[node], timeout=0.5):
            raise StackError("the Celery worker does not answer ping yet")

    def _web_prepare(self) -> None:
        if self.settings.STATIC_ROOT is None:
            return  # static files are served from the apps (test settings)
        subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v", "0"],
            check=True,
            env=self.env,
            timeout=120,
        )

    # --- lifecycle --------------------------------------------------------------------------

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` if this stack started it and it still runs."""
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def migrate(self) -> None:
        _private_dir(self.var_dir)
        subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"],
            check=True,
            env=self.env,
            timeout=300,
        )

    def ensure_admin_login(self) -> None:
        """Under development settings, create the local superuser and print its login."""
        if not self.settings.RELAY_DEVELOPMENT_SUPERUSER:
            return
        subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), "ensure_development_superuser"],
            check=True,
            env=self.env,
            timeout=120,
        )

    def up(self, names: Sequence[str] = ALL, *, timeout: float = 90.0) -> None:
        """Start ``names`` in order, each once the one before is ready; skip those running."""
        _private_dir(self.var_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            self.start(name, timeout=timeout)

    def start(self, name: str, *, timeout: float = 90.0) -> None:
        service = self.services[name]
        if (pid := self.pid(name)) is not None:
            _say(f"{name}: already running (pid {pid})")
            return
        for host, port in service.ports:
            if not _port_free(host, port):
                raise StackError(
                    f"{name} cannot start: {host}:{port} is already in use by another program. "
                    f"Stop that program, or move {name} with the {service.setting} setting."
                )
        if service.prepare:
            service.prepare()
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                service.command,
                cwd=ROOT,
                env={**self.env, **service.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        self._pidfile(name).write_text(str(process.pid))
        self._wait_ready(service, process, log_path, timeout)

    def _wait_ready(
        self, service: Service, process: subprocess.Popen[bytes], log_path: Path, timeout: float
    ) -> None:
        # kafka-python logs every refused connection while the broker starts; progress is ours.
        kafka_logger = logging.getLogger("kafka")
        level = kafka_logger.level
        kafka_logger.setLevel(logging.CRITICAL)
        try:
            self._poll_ready(service, process, log_path, timeout)
        finally:
            kafka_logger.setLevel(level)

    def _poll_ready(
        self, service: Service, process: subprocess.Popen[bytes], log_path: Path, timeout: float
    ) -> None:
        started = time.monotonic()
        last_error = "no answer yet"
        shown = 0
        while time.monotonic() - started < timeout:
            if process.poll() is not None:
                raise StackError(
                    f"{service.name} exited with code {process.returncode} while starting. "
                    f"Last lines of {log_path}:\n{_tail(log_path)}"
                )
            try:
                service.ready()
            except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
                last_error = str(exc) or type(exc).__name__
                if internal := getattr(
                    exc, "internal", ""
                ):  # the relay's errors keep addresses apart
                    last_error += f" ({internal})"
            else:
                _say(
                    f"{service.name}: ready in {time.monotonic() - started:.1f} s"
                    f" (pid {process.pid})"
                )
                return
            waited = int(time.monotonic() - started)
            if waited >= shown + 5:
                shown = waited
                _say(f"{service.name}: still starting after {waited} s ({last_error})")
            time.sleep(0.2)
        self.stop(service.name)
        raise StackError(
            f"{service.name} was not ready after {timeout:.0f} s ({last_error}). "
            f"Last lines of {log_path}:\n{_tail(log_path)}"
        )

    def down(self, names: Sequence[str] = ALL) -> None:
        """Stop ``names`` in reverse order: SIGTERM, then SIGKILL after the grace period."""
        for name in reversed(names):
            self.stop(name)

    def stop(self, name: str, *, sig: signal.Signals = signal.SIGTERM) -> None:
        pid = self.pid(name)
        pidfile = self._pidfile(name)
        if pid is None:
            pidfile.unlink(missing_ok=True)
            return
        service = self.services[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + service.stop_timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            _say(f"{name}: did not stop within {service.stop_timeout:.0f} s, killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        # Reap our own child if it is one, so it does not linger as a zombie.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        pidfile.unlink(missing_ok=True)
        _say(f"{name}: stopped")

    def status(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in self.services}


def fresh_stack(var_dir: Path, env: dict[str, str], *, user: str) -> tuple[Stack, Credentials]:
    """A stack of its own for a tool (bench, chaos): ``env`` in force, empty data, migrated,
    and an API token for ``user`` (made by ``manage.py create_api_token``, as users do).

    Production settings need a secret key; a random one is made for the run.
    """
    os.environ.update(env)
    os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    stack = Stack(var_dir=var_dir)
    stack.down()  # what an interrupted run may have left running
    for stale in ("kafka/data", "redis", "db.sqlite3", "log"):
        target = var_dir / stale
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    stack.migrate()
    token = issue_token(user, name=f"{user} run")
    # Production settings redirect plain HTTP: the tool speaks as a TLS proxy would.
    return stack, Credentials(token, behind_tls_proxy=settings.SECURE_SSL_REDIRECT)


# --- readiness probes -----------------------------------------------------------------------


def _check(dependency: str) -> Callable[[], None]:
    """The relay's own health check of ``dependency`` (``relay_app.services.health``)."""

    def check() -> None:
        from relay_app.services.health import CHECKS

        CHECKS[dependency]()

    return check


def _http_ok(path: str) -> None:
    """The web server answers ``path`` with 200, over HTTPS where it serves HTTPS."""
    from ops.client import web_connection

    connection = web_connection(timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise StackError(f"{path} answered {response.status}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# --- the demo -------------------------------------------------------------------------------


def demo(message: str = "hello world") -> int:
    """Send one message to the running web server as a user's program would, with an API
    token of its own (made, used, then revoked); print the answer and the transaction's log."""
    from django.conf import settings

    from ops.client import post_message, revoke_token, web_connection, web_url
    from relay_app.hops import expected_final_message

    try:
        token = issue_token("demo", name="make demo")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        _say(f"could not make an API token for the demo: {exc}")
        return 1
    connection = web_connection(timeout=settings.RELAY_DEADLINE_SECONDS + 5)
    _say(
        f"POST {web_url('/api/relay/')} {{'message': {message!r}}}"
        " as user 'demo' (Authorization: Bearer <a token from manage.py create_api_token>)"
    )
    try:
        status, body = post_message(connection, message, Credentials(token))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        _say(
            f"the web server at {settings.HTTP_ADDRESS} does not answer ({exc}):"
            " is the stack up (`make up`)?"
        )
        return 1
    finally:
        connection.close()
        revoke_token(token)
    transaction_id = body.get("transaction_id") if isinstance(body, dict) else None
    print()
    print(transaction_log(transaction_id) if transaction_id else "(no transaction recorded)")
    print()
    _say(f"HTTP {status}: {json.dumps(body.get('message') if status == 200 else body)}")
    if status != 200 or body.get("message") != expected_final_message(message):
        _say("the relay did not answer as expected")
        return 1
    return 0


def transaction_log(transaction_id: str, *, wait: float = 2.0) -> str:
    """The seed's log lines of one transaction from the shared transaction log, without the id."""
    from django.conf import settings

    marker = f"\ttransaction_id={transaction_id}"
    deadline = time.monotonic() + wait
    while True:
        try:
            lines = settings.TRANSACTION_LOG.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        mine = [line.removesuffix(marker) for line in lines if line.endswith(marker)]
        if len(mine) >= 12 or time.monotonic() > deadline:
            return "\n".join(mine)
        time.sleep(0.1)


def follow_transaction_log(stop: Callable[[], bool]) -> None:
    """Print the shared transaction log as it grows until ``stop()``."""
    from django.conf import settings

    path: Path = settings.TRANSACTION_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    with path.open(encoding="utf-8") as log:
        log.seek(0, os.SEEK_END)
        while not stop():
            line = log.readline()
            if line:
                print(line.rstrip("\n").partition("\ttransaction_id=")[0], flush=True)
            else:
                time.sleep(0.2)


# --- command line ---------------------------------------------------------------------------


def _admin_login(stack: Stack) -> str:
    """How to log into the admin with these settings."""
    from relay_app.auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME

    if stack.settings.RELAY_DEVELOPMENT_SUPERUSER:
        return (
            f"log in as {DEVELOPMENT_USERNAME} / {DEVELOPMENT_PASSWORD}"
            " (LOCAL DEVELOPMENT CREDENTIAL, see above)"
        )
    return "log in as a staff user: `python manage.py createsuperuser` makes one"


def _banner(stack: Stack) -> None:
    from ops.client import web_url
    from relay_app.error_reports import hide_url_passwords

    s = stack.settings
    grpc_tls = "mutual TLS" if s.GRPC_TLS_SERVER_CERT_FILE else "plaintext"
    tls_note = (
        f"  TLS        every client verifies against {s.RELAY_HTTPS_CA_FILE}\n"
        if s.RELAY_HTTPS_CERT_FILE
        else ""
    )
    print(
        f"""
relay is up:
  API        {web_url("/api/relay/")}      (POST {{"message": "..."}})
  browse     {web_url("/api/")}            (the API, browsable: a form to relay a message)
  docs       {web_url("/api/docs/")}       (OpenAPI schema: /api/schema/)
  admin      {web_url("/admin/")}          ({_admin_login(stack)})
  seed       {web_url("/communication/restKafkaGRPC/")}
  health     {web_url("/healthz")}
  token      python manage.py create_api_token USERNAME   (then: Authorization: Bearer <token>)
  Kafka      {s.KAFKA_BOOTSTRAP_SERVERS} ({s.KAFKA_SECURITY_PROTOCOL})
  Redis      {hide_url_passwords(s.REDIS_URL, "***")}{" (TLS)" if s.REDIS_TLS else ""}
  gRPC       {s.GRPC_ADDRESS} ({grpc_tls})
{tls_note}  logs       {stack.log_dir}/  (transactions.log holds every transaction's seed lines)
""",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "run", "demo", "status"])
    parser.add_argument("--message", default="hello world", help="the message `demo` sends")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.development")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    stack = Stack(var_dir=settings.VAR_DIR)
    try:
        if args.command == "status":
            for name, pid in stack.status().items():
                print(f"{name:7} {'running, pid ' + str(pid) if pid else 'stopped'}")
            return 0
        if args.command == "down":
            stack.down()
            return 0
        if args.command == "demo":
            return demo(args.message)
        stack.migrate()
        stack.ensure_admin_login()
        try:
            stack.up()
        except BaseException:
            stack.down()
            raise
        _banner(stack)
        if args.command == "up":
            return 0
        # run: the demo, then the transaction log live until Ctrl-C, then stop everything.
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            status = demo(args.message)
            _say("following var/log/transactions.log; press Ctrl-C to stop the stack")
            follow_transaction_log(lambda: stopping)
        finally:
            stack.down()
        return status
    except StackError as exc:
        _say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
