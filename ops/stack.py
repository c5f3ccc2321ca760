"""Start, check and stop the relay's stack: the processes ``ops/processes.py`` declares, run
by a supervisord of the stack's own, with their logs under the stack's var folder.

``python -m ops.stack up|down|run|demo|status`` is what ``make up``, ``down``, ``run``,
``demo`` and ``status`` call; the test runner, the bench and chaos use ``Stack`` directly.
Processes outlive the command that started them (``make up`` returns, ``make down`` stops
them later from another shell): supervisord keeps them, and restarts one that dies.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterable, Sequence
from graphlib import TopologicalSorter
from pathlib import Path
from string import Template
from typing import Any

from ops import tls
from ops.client import Credentials, issue_token, manage
from ops.processes import KAFKA_LIBS, ROOT, Process, StackError, private_folder, table
from ops.supervisor import RUNNING, STOPPED, Supervisor

__all__ = ["Stack", "StackError", "fresh_stack"]


def say(message: str) -> None:
    """A progress line; never fails, even when whoever read our output has gone (Ctrl-C on
    ``make run | tee run.log`` closes the pipe first): stopping must go on regardless."""
    try:
        print(f"[stack] {message}", flush=True)
    except (BrokenPipeError, OSError):
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


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


def interrupt_on_termination() -> None:
    """SIGTERM and SIGHUP end this tool as Ctrl-C does (KeyboardInterrupt), so that whatever it
    started is stopped on the way out (each tool stops its stack in a ``finally``)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class Stack:
    """The processes of one settings module, under ``var_dir`` (logs in ``log/``), run by a
    supervisord of their own (``ops/supervisor.py``) and started in the order of what each
    waits for."""

    def __init__(self, *, var_dir: Path, env: dict[str, str] | None = None) -> None:
        from django.conf import settings

        self.settings = settings
        self.var_dir = var_dir
        self.log_dir = var_dir / "log"
        # What every process starts with; each is then given its own identity (the table's
        # env), never this tool's (its readiness checks', main).
        stack_role = settings.RELAY_PROCESS_ROLE == "stack"
        mine = tls.role_env(Path(settings.RELAY_TLS_DIR), "stack") if stack_role else {}
        inherited = {k: v for k, v in os.environ.items() if k not in mine}
        self.env = {**inherited, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.processes = {process.name: process for process in table(settings, var_dir)}
        self.supervisor = Supervisor(var_dir / "run", self.log_dir)

    def start_order(self) -> list[str]:
        """Every process, each after what it waits for."""
        waits = {name: process.after for name, process in self.processes.items()}
        return list(TopologicalSorter(waits).static_order())

    def _state(self, name: str) -> str:
        state = self.supervisor.state(name)
        return str(state["statename"]) if state else "STOPPED"

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` while it runs."""
        state = self.supervisor.state(name)
        if state is None or state["statename"] not in RUNNING or not state["pid"]:
            return None
        return int(state["pid"])

    def status(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in self.processes}

    def manage(self, *args: str, timeout: float = 300) -> None:
        """``manage.py ARGS`` with the stack's settings and environment, its output shown."""
        private_folder(self.var_dir)
        manage(list(args), env=self.env, timeout=timeout, show=True)

    def check_ports(self, names: Iterable[str]) -> None:
        """Every port the processes ``names`` that are not running will take is free; else
        one error naming each port taken and the setting that moves it, before anything starts."""
        taken = [
            f"{host}:{port} ({name}; move it with {process.setting})"
            for name in names
            if self.pid(name) is None
            for process in [self.processes[name]]
            for host, port in process.ports
            if not _port_free(host, port)
        ]
        if taken:
            raise StackError(
                "already in use by another program: "
                + ", ".join(taken)
                + ". Stop that program, or move the process with its setting."
            )

    def up(self) -> None:
        """Start every process, each once what it waits for is ready; those already running
        are left as they are."""
        order = self.start_order()
        self.check_ports(order)
        private_folder(self.var_dir)
        self.supervisor.ensure_running([self.processes[name] for name in order], self.env)
        for name in order:
            self.start(name)

    def start(self, name: str, *, timeout: float = 90.0) -> None:
        process = self.processes[name]
        if (pid := self.pid(name)) is not None:
            say(f"{name}: already running (pid {pid})")
            return
        self.check_ports([name])
        if process.prepare:
            process.prepare()
        self.supervisor.rpc.startProcess(name, False)
        try:
            self._wait_ready(process, timeout)
        except BaseException:
            self.stop(name)
            raise

    def _wait_ready(self, process: Process, timeout: float) -> None:
        """Poll ``process.ready`` until it passes, saying every few seconds why it does not."""
        # kafka-python logs every refused connection while the broker starts; progress is ours.
        quiet = logging.getLogger("kafka")
        level, quiet.level = quiet.level, logging.CRITICAL
        started = time.monotonic()
        last_error, shown = "no answer yet", 0
        log_path = self.log_dir / f"{process.name}.log"
        try:
            while time.monotonic() - started < timeout:
                state = self.supervisor.state(process.name) or {"statename": "supervisord gone"}
                if state["statename"] not in RUNNING:
                    raise StackError(
                        f"{process.name} is {state['statename']} while starting."
                        f" Last lines of {log_path}:\n{_tail(log_path)}"
                    )
                try:
                    process.ready()
                except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
                    last_error = str(exc) or type(exc).__name__
                    if internal := getattr(exc, "internal", ""):  # a relay error's details
                        last_error += f" ({internal})"
                else:
                    seconds = time.monotonic() - started
                    say(f"{process.name}: ready in {seconds:.1f} s (pid {self.pid(process.name)})")
                    return
                if (waited := int(time.monotonic() - started)) >= shown + 5:
                    shown = waited
                    say(f"{process.name}: still starting after {waited} s ({last_error})")
                time.sleep(0.2)
        finally:
            quiet.level = level
        raise StackError(
            f"{process.name} was not ready after {timeout:.0f} s ({last_error})."
            f" Last lines of {log_path}:\n{_tail(log_path)}"
        )

    def down(self) -> None:
        """Stop every process, each before what it waits for (supervisord's priorities), then
        supervisord itself."""
        grace = max((p.stop_seconds for p in self.processes.values()), default=15.0)
        self.supervisor.shutdown(timeout=grace * 2 + 10)

    def stop(self, name: str, *, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop ``name`` and leave it stopped: supervisord restarts a process that dies, not
        one stopped on purpose. SIGTERM first (SIGKILL after its grace period); or, with
        ``sig=SIGKILL``, at once, as a crash would, with nothing left to it to clean up."""
        pid = self.pid(name)
        if pid is None:
            return
        if sig == signal.SIGKILL:
            # Frozen first, so that the stop supervisord is asked for cannot run any of the
            # process's own handlers before it is killed.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGSTOP)
        with contextlib.suppress(xmlrpc.client.Fault):
            self.supervisor.rpc.stopProcess(name, False)
        if sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        give_up = time.monotonic() + self.processes[name].stop_seconds + 5
        while self._state(name) not in STOPPED and time.monotonic() < give_up:
            time.sleep(0.1)
        say(f"{name}: stopped")


def fresh_stack(
    settings_module: str, *, user: str, env: dict[str, str] | None = None
) -> tuple[Stack, Credentials]:
    """A stack of its own for a tool (bench, chaos): its profile's settings (``env`` over
    them), empty data, migrated, and an API token for ``user`` (made by ``manage.py
    create_api_token``, as users do).

    Production settings need a secret key and the keys of message authentication; random
    ones are made for the run, in the tool's environment, which every process it starts has.
    """
    os.environ.update({"DJANGO_SETTINGS_MODULE": settings_module, **(env or {})})
    os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    for key in ("RELAY_CHAIN_SIGNING_KEY", "RELAY_GRPC_CAPABILITY_KEY"):
        os.environ[key] = secrets.token_urlsafe(32)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    var_dir = Path(settings.RELAY_VAR_DIR)
    stack = Stack(var_dir=var_dir)
    stack.down()  # what an interrupted run may have left running
    kafka = var_dir / "kafka"  # every node's data and the cluster's id, not Kafka's jars
    nodes = [path for path in kafka.glob("*") if path != KAFKA_LIBS] if kafka.is_dir() else []
    for target in [*nodes, *(var_dir / stale for stale in ("redis", "db.sqlite3", "log"))]:
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    stack.manage("migrate", "--noinput", "-v", "0")
    token = issue_token(user, name=f"{user} run")
    # Production settings redirect plain HTTP: the tool speaks as a TLS proxy would.
    return stack, Credentials(token, behind_tls_proxy=settings.SECURE_SSL_REDIRECT)


# --- the demo and the transaction log ---------------------------------------------------------


def lines_of(
    transaction_id: str, *, path: Path, expected: int = 12, wait: float = 2.0
) -> list[str]:
    """The lines one transaction wrote to the log at ``path`` (timestamp and text, without the
    id), waiting up to ``wait`` seconds for ``expected`` of them: what the tests check."""
    marker = f"\ttransaction_id={transaction_id}"
    give_up = time.monotonic() + wait
    while True:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        mine = [line.removesuffix(marker) for line in lines if line.endswith(marker)]
        if len(mine) >= expected or time.monotonic() > give_up:
            return mine
        time.sleep(0.05)


def demo(message: str = "hello world") -> int:
    """Relay one message through the running stack as a person does, with ``manage.py relay``
    and an API token of its own (made, used, then revoked): the original example's lines as
    the hops complete, and the command's exit code (0: relayed)."""
    from django.conf import settings

    from ops.client import revoke_token, web_url

    try:
        token = issue_token("demo", name="make demo")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        say(f"could not make an API token for the demo: {exc}")
        return 1
    say(
        f"POST {web_url('/api/relay/')} {{'message': {message!r}}} as user 'demo', with"
        " manage.py relay (Authorization: Bearer <a token from manage.py create_api_token>)"
    )
    try:
        relayed = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "relay", message],
            env={**os.environ, "RELAY_API_TOKEN": token},
            timeout=settings.RELAY_DEADLINE_SECONDS + 30,
            check=False,
        )
    finally:
        revoke_token(token)
    if relayed.returncode != 0:
        say(f"the relay did not answer as expected (manage.py relay exited {relayed.returncode})")
    return relayed.returncode


def follow_transaction_log(stop: Callable[[], bool]) -> None:
    """Print the shared transaction log as it grows until ``stop()``."""
    from django.conf import settings

    path: Path = settings.RELAY_TRANSACTION_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    with path.open(encoding="utf-8") as log:
        log.seek(0, os.SEEK_END)
        while not stop():
            if line := log.readline():
                with contextlib.suppress(BrokenPipeError, OSError):
                    print(line.rstrip("\n").partition("\ttransaction_id=")[0], flush=True)
            else:
                time.sleep(0.2)


# --- command line ---------------------------------------------------------------------------


def admin_login(settings: Any) -> str:
    """How to log into the admin and the live page under ``settings``."""
    from relay_app.auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME

    if settings.RELAY_DEVELOPMENT_SUPERUSER:
        return (
            f"log in as {DEVELOPMENT_USERNAME} / {DEVELOPMENT_PASSWORD}: the development"
            " profile, NOT FOR PRODUCTION (its keys are the repository's, anyone on this"
            " machine may use it)"
        )
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    return (
        "log in as a staff user; make one with"
        f" `DJANGO_SETTINGS_MODULE={module} .venv/bin/python manage.py createsuperuser`"
    )


def _banner(stack: Stack) -> None:
    """Where everything is, from ``ops/banner.template``."""
    from ops.client import web_url
    from relay_app.error_reports import hide_url_passwords

    s = stack.settings
    grpc_tls = "mutual TLS" if s.GRPC_SERVER_TLS_CERT_FILE or s.GRPC_TLS_CA_FILE else "plaintext"
    zipkin = (
        f"https://{s.ZIPKIN_ADDRESS}/zipkin/  (Zipkin: staff, signed in at the admin)"
        if s.ZIPKIN_BEHIND_PROXY
        else f"http://{s.ZIPKIN_ADDRESS}/zipkin/"
    )
    viewers = "".join(
        f"  {name:<10} {url}\n"
        for name, url in (
            ("traces", zipkin if s.ZIPKIN_ADDRESS else ""),
            ("Celery", f"{s.RELAY_FLOWER_URL}/  (Flower: staff, signed in at the admin)"),
        )
        if url and not url.startswith("/")
    )
    template = Template((ROOT / "ops" / "banner.template").read_text())
    say(
        template.substitute(
            {name: web_url(path) for name, path in BANNER_URLS.items()},
            login=admin_login(s),
            viewers=viewers,
            kafka=f"{s.KAFKA_ADDRESS} ({s.KAFKA_SECURITY_PROTOCOL})",
            redis=hide_url_passwords(s.REDIS_URL, "***") + (" (TLS)" if s.REDIS_TLS else ""),
            grpc=f"{s.GRPC_ADDRESS} ({grpc_tls})",
            tls=f"  TLS        clients verify against {s.HTTP_TLS_CA_FILE}\n"
            if s.HTTP_TLS_CERT_FILE
            else "",
            logs=stack.log_dir,
        )
    )


# The banner's links, on the stack's web server.
BANNER_URLS = {
    "live": "/live/",
    "api": "/api/relay/",
    "browse": "/api/",
    "admin": "/admin/",
    "health": "/healthz",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "run", "demo", "status"])
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.development")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    if settings.RELAY_TLS_DIR:
        # The profile's identities, made if missing (the cluster's as it first starts): the
        # table of processes hands them out.
        tls.ensure(Path(settings.RELAY_TLS_DIR))
    stack = Stack(var_dir=settings.RELAY_VAR_DIR)
    interrupt_on_termination()
    try:
        if args.command == "status":
            return _status(stack)
        if args.command == "down":
            stack.down()
            return 0
        if args.command == "demo":
            return demo()
        _start(stack)
        return 0 if args.command == "up" else _run(stack)
    except StackError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted: what it started is stopped")
        return 130


def _status(stack: Stack) -> int:
    """``make status``: supervisorctl's own; 3 (as supervisorctl says of a stopped process)
    when no supervisord runs."""
    if not stack.supervisor.running():
        say(f"not running ({stack.supervisor.conf} has no supervisord)")
        return 3
    return stack.supervisor.ctl("status")


def _start(stack: Stack) -> None:
    """``make up`` and ``make run``: the database migrated, every process started in order,
    the banner; on any failure, what was started is stopped again."""
    settings = stack.settings
    if settings.RELAY_TLS_DIR and settings.RELAY_PROCESS_ROLE != "stack":
        # The readiness checks (and the topics' ACLs) speak as the stack's own identity:
        # this tool runs again with it, which none of the processes it starts inherits.
        own = {**os.environ, **tls.role_env(Path(settings.RELAY_TLS_DIR), "stack")}
        argv = [sys.executable, "-m", "ops.stack", *sys.argv[1:]]
        os.execve(sys.executable, argv, own)  # noqa: S606 - this very tool again
    stack.check_ports(stack.processes)  # before migrations, or anything, start
    stack.manage("migrate", "--noinput", "-v", "0")
    if settings.RELAY_DEVELOPMENT_SUPERUSER:
        stack.manage("ensure_development_superuser", timeout=120)
    try:
        stack.up()
    except BaseException:
        stack.down()
        raise
    _banner(stack)


def _run(stack: Stack) -> int:
    """``make run``: the demo, then the transaction log live until Ctrl-C, then every process
    stopped, whatever happened to our output meanwhile."""
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a closed pipe is an error, not a death
    try:
        status = demo()
        say("following the transaction log; press Ctrl-C to stop the stack")
        follow_transaction_log(lambda: stopping)
    finally:
        stack.down()
    return status


if __name__ == "__main__":
    sys.exit(main())
