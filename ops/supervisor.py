"""The stack's processes under supervisord (the ``supervisor`` package): its configuration,
rendered from the process table, and its XML-RPC interface on a socket only its owner reaches.

supervisord restarts a process that dies on its own (``autorestart``), rotates each log by size
and stops processes as a group, each before what it waited for (``priority``). It starts none
by itself (``autostart=false``): ``ops/stack.py`` starts them in order, each once what it waits
for answers, since supervisord knows when a process runs, not when it is ready.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from string import Template
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from ops.processes import PYTHON, ROOT, Process, StackError, private_file

# What supervisord calls a process that runs, or is being started again after it died.
RUNNING = {"STARTING", "RUNNING", "BACKOFF"}
STOPPED = {"STOPPED", "EXITED", "FATAL"}
TEMPLATES = ROOT / "ops"


def _quoted(value: str) -> str:
    """A value as supervisord's parser reads it back unchanged (``%`` is its interpolation)."""
    return value.replace("%", "%%")


def _environment(env: dict[str, str]) -> str:
    pairs = (
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in sorted(env.items())
    )
    return _quoted(",".join(pairs))


def render(folder: Path, log_dir: Path, processes: list[Process]) -> str:
    """supervisord's configuration for ``processes``, listed in their start order
    (``ops/supervisord*.template``)."""
    program = Template((TEMPLATES / "supervisord-program.template").read_text())
    sections = [
        Template((TEMPLATES / "supervisord.conf.template").read_text()).substitute(
            folder=folder, log_dir=log_dir
        )
    ]
    for priority, process in enumerate(processes, start=1):
        command = [sys.executable if part == PYTHON else part for part in process.command]
        sections.append(
            program.substitute(
                name=process.name,
                command=_quoted(shlex.join(command)),
                root=ROOT,
                environment=_environment(process.env),
                priority=priority,
                stop_seconds=f"{process.stop_seconds:g}",
                log_dir=log_dir,
            )
        )
    return "".join(sections)


class Supervisor:
    """One stack's supervisord: its files in ``folder``, its processes' logs in ``log_dir``."""

    def __init__(self, folder: Path, log_dir: Path) -> None:
        self.folder = folder
        self.log_dir = log_dir
        self.conf = folder / "supervisord.conf"
        self._socket = folder / "supervisor.sock"

    @property
    def rpc(self) -> Any:
        """supervisord's own interface (``supervisor.*``)."""
        transport = SupervisorTransport(serverurl=f"unix://{self._socket}")
        return xmlrpc.client.ServerProxy("http://localhost", transport=transport).supervisor

    def running(self) -> bool:
        if not self._socket.exists():
            return False
        try:
            return bool(self.rpc.getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Error):
            return False

    def ensure_running(self, processes: list[Process], env: dict[str, str]) -> None:
        """Write the configuration; start supervisord with ``env`` if it is not running, else
        have it read the configuration again (processes added or removed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        private_file(self.conf, render(self.folder, self.log_dir, processes))
        # supervisord opens its own log before it applies its umask: made private first.
        (self.log_dir / "supervisord.log").touch()
        (self.log_dir / "supervisord.log").chmod(0o600)
        if self.running():
            # Processes added or removed; a changed one stopped, to be started again in order.
            if self.ctl("update") != 0:
                raise StackError(f"supervisorctl update failed on {self.conf}: see above")
            return
        started = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        give_up = time.monotonic() + 15
        while not self.running():
            if time.monotonic() > give_up:
                raise StackError(
                    f"supervisord did not start ({self.conf}):"
                    f" {(started.stdout + started.stderr).strip()[-2000:]}"
                )
            time.sleep(0.1)

    def ctl(self, *args: str) -> int:
        """``supervisorctl ARGS`` on this supervisord, its output shown; its exit status."""
        command = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), *args]
        return subprocess.run(command, check=False, timeout=60).returncode

    def state(self, name: str) -> dict[str, Any] | None:
        """What supervisord says of ``name``; ``None`` when supervisord is not running."""
        if not self.running():
            return None
        info: dict[str, Any] = self.rpc.getProcessInfo(name)
        return info

    def shutdown(self, timeout: float) -> None:
        """Stop every process, each before what it waited for, then supervisord itself."""
        if not self.running():
            return
        with contextlib.suppress(OSError, xmlrpc.client.Error):
            self.rpc.shutdown()
        give_up = time.monotonic() + timeout
        while self._socket.exists() and time.monotonic() < give_up:
            time.sleep(0.1)
        if self._socket.exists():
            raise StackError(f"supervisord did not stop within {timeout:.0f} s ({self.conf})")
