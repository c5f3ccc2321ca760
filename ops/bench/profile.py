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
from collections.abc import Callable
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
    ("HMAC sealing and opening", ("relay_app/signing.py", "hmac.py")),
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


# What the time was spent for, by the first of these found anywhere in a stack, whatever
# library does the work; a stack with none of them goes by the innermost library it is in
# (``group``). A worker's stack outside every task is Celery's: its main process (one
# ``process`` frame, the pool's parent) or a pool process around the task.
PURPOSES: list[tuple[str, tuple[str, ...]]] = [
    ("notices to event streams (Redis PUBLISH)", ("integrations/notices.py",)),
    ("transaction log and other log lines", ("logging/__init__.py", "concurrent_log_handler")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("sealing and opening payloads (HMAC)", ("relay_app/signing.py",)),
    ("Kafka client (kafka-python, its threads too)", ("kafka/",)),
    ("gRPC client (grpcio, its threads too)", ("grpc/",)),
    ("authentication (API token lookup)", ("api/authentication.py",)),
    ("reading the transaction back for the answer", ("transaction_get", "api/serializers.py")),
    (
        "recording the transaction and its hops (database)",
        (
            *("services/transactions.py", "hop_progress", "attempt_next_number"),
            *("hop_chain_end", "transaction_find", "transaction_status", "django/db/"),
        ),
    ),
    ("starting the chain and waiting for its result (Celery)", ("services/relay.py",)),
    ("the relay's hop code (payloads, texts, attempts)", ("relay_app/tasks.py",)),
]
BY_LIBRARY = {
    "gunicorn (HTTP)": "gunicorn (HTTP)",
    "Django (handlers, middleware, templates)": "Django and DRF (request, view, response)",
    "DRF (views, serializers, auth)": "Django and DRF (request, view, response)",
    "Flower (event handling, state)": "Flower's own (event handling, state)",
    "the relay's own code": "the relay's own code, elsewhere",
}
CELERY_MAIN = "Celery's main process (receiving, handing to the pool, events, acks)"
CELERY_TASKS = "Celery around each task (trace, publishing the next task, its result)"


def purpose(stack: str) -> str:
    """What a collapsed stack's time was spent for (``PURPOSES``)."""
    for name, markers in PURPOSES:
        if any(marker in stack for marker in markers):
            return name
    library = group(stack)
    if library in BY_LIBRARY:
        return BY_LIBRARY[library]
    if any(marker in stack for marker in ("celery/", "kombu/", "billiard/", "flower/")):
        if "flower/" in stack:
            return BY_LIBRARY["Flower (event handling, state)"]
        main = sum(frame.startswith("process ") for frame in stack.split(";")) == 1
        return CELERY_MAIN if main else CELERY_TASKS
    return "other (Python runtime, threads)"


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


def by_group(counts: Counter[str], of: Callable[[str], str]) -> Counter[str]:
    groups: Counter[str] = Counter()
    for stack, samples in counts.items():
        groups[of(stack)] += samples
    return groups


def record(pid: int, output: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` and its children for ``seconds``: the thread holding the GIL
    in each, without pausing them."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: run `make setup`")
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
    measured = {
        "concurrency": concurrency,
        "seconds": seconds,
        "served": served,
        "cpu_ms_per_tx": {name: round(used * 1000 / served, 2) for name, used in cpu.items()},
        "cpu_ms_per_tx_by_process": {
            process: round(seconds_used * 1000 / served, 2)
            for process, seconds_used in sorted(used.items())
        },
    }
    (PROFILE_DIR / "measured.json").write_text(json.dumps(measured, indent=2))
    return summary()


def summary() -> dict[str, Any]:
    """The split of the last profile's samples (``var/bench/profile/``), by library and by
    purpose, printed and written to ``split.json``."""
    measured = json.loads((PROFILE_DIR / "measured.json").read_text())
    cpu_ms: dict[str, float] = measured["cpu_ms_per_tx"]
    stacks: dict[str, Counter[str]] = {}
    for path in sorted(PROFILE_DIR.glob("*.txt")):
        stacks.setdefault(path.stem.split("-")[0], Counter()).update(collapsed(path))
    result = {
        **measured,
        "by_library": table(cpu_ms, {s: by_group(c, group) for s, c in stacks.items()}),
        "by_purpose": table(cpu_ms, {s: by_group(c, purpose) for s, c in stacks.items()}),
    }
    (PROFILE_DIR / "split.json").write_text(json.dumps(result, indent=2))
    say(f"{measured['served']} served in {measured['seconds']:g} s at {measured['concurrency']}")
    say(f"CPU ms per transaction by process: {measured['cpu_ms_per_tx_by_process']}")
    for kind in ("by_library", "by_purpose"):
        for service, figures in result[kind].items():
            what = kind.replace("_", " ")
            say(f"{service}, {what}: {figures['cpu_ms_per_tx']} ms per transaction")
            for name, ms in figures["parts_ms"].items():
                say(f"  {ms:7.2f}  {name}")
    say(f"collapsed stacks and split.json in {PROFILE_DIR}")
    return result
