"""``python -m ops.bench profile``: where the relay's CPU goes under steady load.

The bench's stack (production settings, its ports and folder) at 32 in flight for a minute,
while py-spy samples the Celery worker (its pool processes too), the web servers and Flower.
py-spy samples only the thread holding each process's GIL (``--gil``): that is the thread
running Python, where a profile without it also counts threads blocked in a wait (py-spy
cannot tell them apart here). Each service's collapsed stacks go to
``var/bench/profile/``, and a table of CPU per transaction by part of the code (``GROUPS``)
is printed: each part's share of that service's samples times the service's CPU per
transaction, measured with psutil meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ops.bench.run import BENCH_DIR, drive, say
from ops.bench.usage import Usage, cpu_seconds

PROFILE_DIR = BENCH_DIR / "profile"
# Services sampled: the stack's processes whose trees hold the relay's Python code.
SAMPLED = {"worker": "worker", "web": "web", "flower": "flower"}
# A stack's part of the code, by the first of these found in its frames, innermost first:
# the innermost library that the time is spent in, then who asked for it.
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("logging (handlers, file lock)", ("logging/__init__.py", "logging/handlers.py", "/fcntl")),
    ("HMAC sealing and opening", ("relay_app/services/sealing", "hmac.py", "relay_app/seal")),
    ("prometheus metrics", ("prometheus_client",)),
    ("OpenTelemetry", ("opentelemetry",)),
    ("database (Django ORM, sqlite3)", ("django/db/", "sqlite3")),
    ("Kafka client (kafka-python)", ("kafka/",)),
    ("gRPC client (grpcio)", ("grpc/", "grpc_")),
    ("Redis (redis-py)", ("redis/",)),
    ("kombu (messages, transport)", ("kombu/",)),
    ("Celery (worker, app, events)", ("celery/", "billiard/", "vine/", "amqp/")),
    ("Flower (event handling, state)", ("flower/", "tornado/")),
    ("DRF (views, serializers, auth)", ("rest_framework/",)),
    ("Django (handlers, middleware, templates)", ("django/",)),
    ("gunicorn (HTTP)", ("gunicorn/",)),
    ("json", ("json/",)),
    ("the relay's own code", ("relay_app/", "project/")),
]


def group(stack: str) -> str:
    """The part of the code a collapsed stack (``frame;frame;...``, outermost first) is in."""
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, markers in GROUPS:
            if any(marker in frame for marker in markers):
                return name
    return "other (Python runtime, threading, select)"


def collapsed(path: Path) -> Counter[str]:
    """Samples per stack from py-spy's ``--format raw`` output (``stack count`` a line)."""
    counts: Counter[str] = Counter()
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stack] += int(count)
    return counts


def by_group(counts: Counter[str]) -> Counter[str]:
    groups: Counter[str] = Counter()
    for stack, samples in counts.items():
        groups[group(stack)] += samples
    return groups


def record(pid: int, output: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` and its children for ``seconds``: the thread holding the GIL
    in each, without pausing them."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking"]
    command += ["--format", "raw", "--rate", "100", "--duration", str(int(seconds))]
    command += ["--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def table(cpu_ms: dict[str, float], groups: dict[str, Counter[str]]) -> dict[str, Any]:
    """Each sampled service's CPU per transaction split by part, in ms."""
    split: dict[str, Any] = {}
    for service, counts in groups.items():
        total = sum(counts.values()) or 1
        split[service] = {
            "cpu_ms_per_tx": round(cpu_ms.get(service, 0.0), 2),
            "samples": total,
            "parts_ms": {
                name: round(cpu_ms.get(service, 0.0) * samples / total, 2)
                for name, samples in counts.most_common()
            },
        }
    return split


def profile(*, seconds: float, concurrency: int) -> dict[str, Any]:
    """The stack under ``concurrency`` in flight for ``seconds``, sampled; the split printed."""
    from ops.bench.client import TOKEN_VARIABLE
    from ops.stack import fresh_stack

    say(f"profile: {concurrency} in flight for {seconds:g} s, py-spy on {', '.join(SAMPLED)}")
    stack, credentials = fresh_stack("project.settings.bench", user="bench")
    os.environ[TOKEN_VARIABLE] = credentials.token
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        stack.up()
        drive(8, count=100)  # warm-up: every worker process and connection in use
        pids = stack.status()
        usage = Usage(pids)
        spies = []
        for process, pid in pids.items():
            name = process.split("-")[0]
            if pid and name in SAMPLED:
                output = PROFILE_DIR / f"{process}.txt"
                output.unlink(missing_ok=True)
                spies.append(record(pid, output, seconds))
        time.sleep(1.0)  # py-spy attached to every process before the load starts
        roots = {process: pid for process, pid in pids.items() if pid is not None}
        before = {process: cpu_seconds([pid]) for process, pid in roots.items()}
        with usage.measured() as cpu:
            run = drive(concurrency, duration=seconds - 2)
        used = {process: cpu_seconds([pid]) - before[process] for process, pid in roots.items()}
        for spy in spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=10)
    finally:
        stack.down()
    served = sum(1 for entry in run["outcomes"] if entry.get("kind") == "ok") or 1
    cpu_ms = {service: seconds_used * 1000 / served for service, seconds_used in cpu.items()}
    groups: dict[str, Counter[str]] = {}
    for path in PROFILE_DIR.glob("*.txt"):
        service = path.stem.split("-")[0]
        groups.setdefault(service, Counter()).update(by_group(collapsed(path)))
    split = table(cpu_ms, groups)
    result = {
        "concurrency": concurrency,
        "seconds": seconds,
        "served": served,
        "cpu_ms_per_tx": {service: round(ms, 2) for service, ms in sorted(cpu_ms.items())},
        "cpu_ms_per_tx_by_process": {
            process: round(seconds * 1000 / served, 2) for process, seconds in sorted(used.items())
        },
        "split": split,
    }
    (PROFILE_DIR / "split.json").write_text(json.dumps(result, indent=2))
    for service, figures in split.items():
        say(f"{service}: {figures['cpu_ms_per_tx']} ms per transaction")
        for name, ms in figures["parts_ms"].items():
            say(f"  {ms:7.2f}  {name}")
    say(f"CPU ms per transaction by process: {result['cpu_ms_per_tx_by_process']}")
    say(f"collapsed stacks and split.json in {PROFILE_DIR}")
    return result
