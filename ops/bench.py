"""``make bench``: the relay under load over HTTP, against two baselines measured in the same run.

The stack runs as in production (production settings, gunicorn, the Celery worker with
the pool the settings choose) on its own ports and data (``var/bench/``). A separate client
process drives ``POST /api/relay/`` sequentially, then at concurrency 8, 32 and 128, and
checks every answer's text. Baselines, on the same Kafka, Redis and gRPC server:

  (a) the seven hops bare in one process: kafka-python and grpcio, no Django, no Celery;
  (b) a bare Celery chain of five no-op tasks (``ops/bench_noop.py``), on a worker with the
      relay's pool; also driven 32 at a time, which gives the most transactions per second
      any relay of five Celery tasks can reach on this machine, and the CPU such a chain
      costs (its worker, Redis and the client that starts and awaits it) to set the relay's
      CPU per transaction at 32 (all the stack's services) against.

The sequential figures come from rounds that alternate the relay with both baselines, so a
burst of noise from the machine's other tenants falls on all three alike.

After the 128 level comes an overload level: 256 clients in a closed loop for a fixed time,
far past what the relay can serve. Every answer is classed (200 with the right text, 503 with
``Retry-After``, which the client obeys, other 503, 504, other status, no answer); the figures
are the slowest answers against the deadline (RELAY_DEADLINE_SECONDS), and the goodput
against the throughput at 32. ``targets_met`` in the headline says which targets were met.

Figures go to ``var/bench/results.json`` and ``var/bench/latency.png``; the last line
printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
PYTHON = sys.executable

# The bench stack's own ports, so it never meets a running `make up` stack or a test run.
BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "project.settings.production",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "RELAY_VAR_DIR": str(BENCH_DIR),
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:39092",
    "REDIS_URL": "redis://127.0.0.1:36379/0",
    "GRPC_ADDRESS": "127.0.0.1:35051",
    "RELAY_HTTP_ADDRESS": "127.0.0.1:38000",
    "RELAY_WORKER_METRICS_ADDRESS": "127.0.0.1:39464",
    "RELAY_GRPC_METRICS_ADDRESS": "127.0.0.1:39474",
    "RELAY_TRANSACTION_LOG_CONSOLE": "false",
    # As behind a TLS-terminating proxy: the load client sends X-Forwarded-Proto: https.
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    # The throttle still runs (a Redis round trip per request), at a rate the bench never reaches.
    "RELAY_THROTTLE_RATE": "100000/second",
    # Every hop on loopback, in plaintext on purpose: the bench measures the relay's own cost.
    "RELAY_ALLOW_PLAINTEXT": "true",
}
# With --tracing: every process traced, its spans sent to the bench stack's own collector.
TRACING_ENV = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:39318",
    "RELAY_TRACE_COLLECTOR_ADDRESS": "127.0.0.1:39318",
}
# The load client's API token, handed from the bench to its process.
TOKEN_VARIABLE = "RELAY_BENCH_TOKEN"  # noqa: S105 - the variable's name, not a token

# (rounds, transactions per round) of relay, baseline (a) and baseline (b), one at a time.
SEQUENTIAL_ROUNDS = {"full": (6, 50), "quick": (2, 30)}
# (concurrency, transactions) per level under load.
LOAD_LEVELS = {
    "full": [(8, 800), (32, 2000), (128, 2000)],
    "quick": [(8, 160), (32, 320), (128, 384)],
}
# Baseline (b) at concurrency 32: how many chains.
CHAIN_CEILING_CHAINS = {"full": 1000, "quick": 300}
# The overload level: (concurrency, seconds), a closed loop of clients for a fixed time.
OVERLOAD = {"full": (256, 40.0), "quick": (256, 15.0)}
# Each overload client's socket timeout: longer than any answer the deadline allows.
OVERLOAD_TIMEOUT = 10.0
# After a request that got no answer, an overload client waits this long before it reconnects:
# a refused connection fails at once, and 256 clients retrying in a tight loop would take the
# machine's CPU from the stack.
OVERLOAD_RECONNECT_PAUSE = 0.1
# How the overload client classes each request (``classify``), in the order reported.
OVERLOAD_CLASSES = (
    "ok",
    "shed_503",
    "other_503",
    "timeouts_504",
    "wrong_text",
    "other",
    "connection_errors",
)
# Targets: relay CPU per transaction at 32 against baseline (b)'s CPU per chain at 32; relay
# throughput at 32 against (b)'s; the one-at-a-time latency ratio; overload against deadline.
TARGET_CPU_FACTOR = 1.7
TARGET_TPS_RATIO = 0.65
TARGET_LATENCY_RATIO = 1.5
TARGET_OVERLOAD_P99_MARGIN_S = 0.5
TARGET_OVERLOAD_MAX_MARGIN_S = 1.5
TARGET_OVERLOAD_GOODPUT_RATIO = 0.9
SOAK_TRANSACTIONS = 10_000

SAMPLES = [
    "hello world",
    "café crème, naïve façade",
    "Καλημέρα κόσμε",
    "你好世界",
    "emoji 🚀🔥",
    "שלום עולם",
    'quotes "double" and \\ backslash',
]


def _say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_ms, 50), 2),
        "p90_ms": round(percentile(latencies_ms, 90), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
        "mean_ms": round(statistics.fmean(latencies_ms), 2) if latencies_ms else 0.0,
    }


# --- the load client (its own process) -------------------------------------------------------


def load(address: str, concurrency: int, count: int, timeout: float) -> dict[str, Any]:
    """Send ``count`` transactions, ``concurrency`` at a time; check every answer's text."""
    from ops.client import Credentials, post_message
    from relay_app.hops import expected_final_message

    credentials = Credentials(os.environ[TOKEN_VARIABLE], behind_tls_proxy=True)

    host, port = address.rsplit(":", 1)
    local = threading.local()
    latencies: list[float] = []
    timelines: list[dict[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        message = f"{SAMPLES[i % len(SAMPLES)]} #{i}"
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        started = time.perf_counter()
        try:
            status, answer = post_message(local.connection, message, credentials)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                problem = f"HTTP {status}: {str(answer)[:200]}"
            elif answer["message"] != expected_final_message(message):
                problem = f"wrong text for {message!r}"
            else:
                problem = ""
                with lock:
                    timelines.append(timeline(answer, elapsed))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            local.connection.close()
            del local.connection
            elapsed, problem = (
                (time.perf_counter() - started) * 1000,
                f"{type(exc).__name__}: {exc}",
            )
        with lock:
            latencies.append(elapsed)
            if problem:
                errors.append(problem)

    seconds = _concurrently(one, concurrency, count)
    return {
        "latencies_ms": latencies,
        "timelines_ms": timelines,
        "errors": len(errors),
        "error_samples": errors[:5],
        "timeouts": sum("timed out" in e or "504" in e for e in errors),
        "seconds": seconds,
    }


def timeline(answer: dict[str, Any], elapsed_ms: float) -> dict[str, float]:
    """Where one transaction's time went, from the hop timings in its answer.

    ``hops``: the work of hops 2-7 (Kafka writes and reads, the gRPC server). ``between_hops``:
    from the end of hop 1 to the start of hop 8, less that work: Celery handing each task on,
    recording each hop, the gRPC round trip. ``view_and_http``: the rest, the HTTP exchange
    and the view's own reads and writes.
    """
    hops = answer["hops"]
    first_done = datetime.fromisoformat(hops[0]["finished_at"])
    last_started = datetime.fromisoformat(hops[-1]["started_at"])
    span = (last_started - first_done).total_seconds() * 1000
    work = sum(hop["duration_ms"] for hop in hops[1:-1])
    return {"hops": work, "between_hops": span - work, "view_and_http": elapsed_ms - span}


def classify(
    status: int, retry_after: str | None, body: bytes, expected: str
) -> tuple[str, float, str]:
    """One overload answer's class (one of ``OVERLOAD_CLASSES``), how long the client must wait
    before its next request (``Retry-After``), and a short description for the report.

    A 200 counts only with the right text, as in ``load()``. A 503 counts as shed only with a
    ``Retry-After`` the client can obey (seconds, int or float): the relay's promise to clients.
    """
    if status == 200:
        try:
            text = json.loads(body)["message"]
        except (ValueError, TypeError, KeyError):
            return "wrong_text", 0.0, "HTTP 200 with a body that is not the relay's answer"
        if text != expected:
            return "wrong_text", 0.0, f"wrong text {str(text)[:80]!r} for {expected[:80]!r}"
        return "ok", 0.0, ""
    detail = f"HTTP {status}: {body[:200].decode(errors='replace')}"
    if status == 503:
        if retry_after is None:
            return "other_503", 0.0, detail
        try:
            pause = float(retry_after)
        except ValueError:
            pause = -1.0
        if not 0 <= pause < float("inf"):
            return "other_503", 0.0, f"{detail} (Retry-After {retry_after!r})"
        return "shed_503", pause, detail
    if status == 504:
        return "timeouts_504", 0.0, detail
    return "other", 0.0, detail


def overload(address: str, concurrency: int, duration: float, timeout: float) -> dict[str, Any]:
    """``concurrency`` clients in a closed loop for ``duration`` seconds, far past what the relay
    serves: how it sheds load, and how slow its slowest answers get meanwhile.

    Each client thread keeps its own connection (a new one after a request that got no answer,
    ``OVERLOAD_RECONNECT_PAUSE`` later, and after any wait), sends its next request as soon as
    it has the last answer, or after the ``Retry-After`` of a 503, and stops sending once
    ``duration`` is over.
    A latency runs from just before the request is sent (with the connection's setup, when it
    needs one) to the whole answer read.
    """
    from ops.client import Credentials, send_message
    from relay_app.hops import expected_final_message

    credentials = Credentials(os.environ[TOKEN_VARIABLE], behind_tls_proxy=True)
    host, port = address.rsplit(":", 1)
    counts = dict.fromkeys(OVERLOAD_CLASSES, 0)
    latencies: list[float] = []
    retry_after: list[float] = []
    samples: dict[str, list[str]] = {}
    lock = threading.Lock()
    began = time.perf_counter()
    stop_at = began + duration

    def client(number: int) -> None:
        connection: http.client.HTTPConnection | None = None
        sent = 0
        while time.perf_counter() < stop_at:
            message = f"{SAMPLES[(number + sent) % len(SAMPLES)]} #{number}-{sent}"
            expected = expected_final_message(message)
            sent += 1
            if connection is None:
                connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
            started = time.perf_counter()
            try:
                reply = send_message(connection, message, credentials)
                kind, pause, detail = classify(
                    reply.status, reply.headers.get("Retry-After"), reply.body, expected
                )
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                connection = None
                kind, detail = "connection_errors", f"{type(exc).__name__}: {exc}"
                pause = OVERLOAD_RECONNECT_PAUSE
            elapsed = time.perf_counter() - started
            with lock:
                counts[kind] += 1
                latencies.append(elapsed)
                if kind == "shed_503":
                    retry_after.append(pause)
                if detail and len(samples.setdefault(kind, [])) < 3:
                    samples[kind].append(detail)
            if pause > 0:  # as told, but never past the end of the level
                time.sleep(max(0.0, min(pause, stop_at - time.perf_counter())))
                # The server may have closed the idle connection meanwhile (gunicorn keeps one
                # alive 2 s): after a wait, a client starts on a new one.
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return {
        "concurrency": concurrency,
        "duration_s": duration,
        "seconds": seconds,
        "counts": counts,
        "latencies_s": latencies,
        "goodput": counts["ok"] / seconds,
        "retry_after_s": {
            "min": min(retry_after, default=0.0),
            "max": max(retry_after, default=0.0),
        },
        "samples": samples,
    }


# --- baselines -------------------------------------------------------------------------------


@contextmanager
def bare_hops() -> Iterator[Callable[[int], None]]:
    """Baseline (a): the seven hops in one process with kafka-python and grpcio alone."""
    from django.conf import settings
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from relay.v1 import relay_pb2, relay_pb2_grpc

    from relay_app.integrations.kafka_records import client_options
    from relay_app.integrations.relay_rpc import capability, open_channel

    request_topic, reply_topic = settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC
    kafka = client_options()  # the relay's brokers and transport settings
    producer = KafkaProducer(**kafka, acks="all", linger_ms=0)
    consumers = {
        topic: KafkaConsumer(**kafka, group_id=None, enable_auto_commit=False)
        for topic in (request_topic, reply_topic)
    }
    channel = open_channel(settings.GRPC_ADDRESS)
    stub = relay_pb2_grpc.RelayStub(channel)

    def publish_and_read(topic: str, key: bytes, text: str) -> str:
        metadata = producer.send(topic, key=key, value=text.encode()).get(timeout=5)
        partition = TopicPartition(topic, metadata.partition)
        consumer = consumers[topic]
        if consumer.assignment() != {partition}:
            consumer.assign([partition])
        consumer.seek(partition, metadata.offset)
        while True:
            for record in consumer.poll(timeout_ms=5000, max_records=1).get(partition, []):
                return str(record.value.decode())

    def transaction(i: int) -> None:
        transaction_id = str(uuid.uuid4())  # the gRPC server takes nothing else
        key = transaction_id.encode()
        text = "hello world from rest and Kafka publisher"
        text = publish_and_read(request_topic, key, text) + " and Kafka consumer and gRPC client"
        # The same proof the relay's worker sends: the gRPC server checks it on every call.
        proof = capability(transaction_id=transaction_id, text=text, deadline=time.time() + 5)
        text = stub.Process(
            relay_pb2.ProcessRequest(transaction_id=transaction_id, text=text),
            timeout=5,
            metadata=proof,
        ).text
        publish_and_read(reply_topic, key, text + " and Kafka publisher")

    try:
        yield transaction
    finally:
        producer.close()
        for consumer in consumers.values():
            consumer.close()
        channel.close()


def auth_cpu_ms_per_tx(repetitions: int = 2000) -> float:
    """The CPU (ms) one transaction spends authenticating its messages, measured in this
    process: its six chain payloads (the view's, and each task's result) sealed and opened,
    and its gRPC capability made and checked, on the texts of "hello world"."""
    from relay_app import tasks
    from relay_app.hops import Stage
    from relay_app.integrations.kafka_records import RecordCoordinates
    from relay_app.integrations.relay_rpc import capability, capability_refusal
    from relay_app.services.chain import ChainPayload, payload_open, payload_seal

    transaction_id, deadline, text = str(uuid.uuid4()), time.time() + 3600, "hello world"
    texts = {}
    for stage in Stage:
        texts[stage] = text = stage.spec.apply(text)
    record = RecordCoordinates(topic="CommunicationTopic", partition=1, offset=12345)
    handoffs: list[tuple[str, ChainPayload]] = [
        (task.name, {"transaction_id": transaction_id, "text": texts[after], "deadline": deadline})
        for task, after in (
            (tasks.publish_request, Stage.REST_REQUEST),
            (tasks.consume_request, Stage.KAFKA_PUBLISH_REQUEST),
            (tasks.call_grpc, Stage.KAFKA_CONSUME_REQUEST),
            (tasks.publish_reply, Stage.GRPC_SERVER),
            (tasks.consume_reply, Stage.KAFKA_PUBLISH_REPLY),
            (tasks.respond, Stage.KAFKA_CONSUME_REPLY),
        )
    ]
    for _, payload in handoffs[1::3]:  # the two consume hops read a record
        payload["record"] = record
    at_grpc = texts[Stage.GRPC_CLIENT]
    started = time.process_time()
    for _ in range(repetitions):
        for task, payload in handoffs:
            payload_open(payload_seal(payload, to=task), at=task)
        proof = capability(transaction_id=transaction_id, text=at_grpc, deadline=deadline)
        if capability_refusal(proof, transaction_id=transaction_id, text=at_grpc):
            raise RuntimeError("the gRPC capability was refused")
    return round((time.process_time() - started) * 1000 / repetitions, 4)


def one_noop_chain(i: int) -> None:
    """Baseline (b): a bare Celery chain of five no-op tasks, started and waited for."""
    from ops.bench_noop import noop_chain

    if noop_chain(str(i)).apply_async().get(timeout=10) != str(i):
        raise RuntimeError("the no-op chain answered the wrong value")


def noop_chain_ceiling(
    concurrency: int, count: int, *, worker_pid: int, redis_pid: int
) -> dict[str, Any]:
    """Baseline (b) under load: ``count`` chains, ``concurrency`` at a time; chains per second,
    and the CPU each chain cost, the yardstick for the relay's CPU per transaction.

    The CPU is that of every process a chain needs: the no-op worker (``worker_pid`` and its
    pool's children), Redis (broker and result backend) and this process, the client that
    starts each chain and waits for its result, as the relay's web server does. Only this
    process's own CPU counts: its children are the stack and the worker. Nothing else may run
    in this process meanwhile (no ``MemorySampler.running``).
    """
    latencies: list[float] = []

    def timed(i: int) -> None:
        started = time.perf_counter()
        one_noop_chain(i)
        latencies.append((time.perf_counter() - started) * 1000)

    before = _chain_cpu_seconds(worker_pid, redis_pid)
    seconds = _concurrently(timed, concurrency, count)
    after = _chain_cpu_seconds(worker_pid, redis_pid)
    cpu_ms = {part: (after[part] - before[part]) * 1000 / count for part in before}
    return {
        "concurrency": concurrency,
        "chains": count,
        **summary(latencies),
        "tps": round(count / seconds, 1),
        "cpu_ms_per_chain": {part: round(ms, 2) for part, ms in cpu_ms.items()},
        "cpu_ms_per_chain_total": round(sum(cpu_ms.values()), 2),
    }


def _chain_cpu_seconds(worker_pid: int, redis_pid: int) -> dict[str, float]:
    """CPU seconds so far of each part baseline (b) runs on.

    The client is this process alone (``time.process_time``: all its threads, not its children);
    ``_cpu_seconds(os.getpid())`` would add the whole stack, which this process started.
    """
    return {
        "worker": _cpu_seconds(worker_pid),
        "redis": _cpu_seconds(redis_pid),
        "client": time.process_time(),
    }


def _concurrently(operation: Callable[[int], None], concurrency: int, count: int) -> float:
    """Run ``operation(0..count-1)``, ``concurrency`` at a time; how many seconds it took."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(operation, range(count)))
    return time.perf_counter() - started


def _timed(operation: Callable[[int], object], samples: int) -> list[float]:
    latencies = []
    for i in range(samples):
        started = time.perf_counter()
        operation(i)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


# --- memory ----------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with suppress(OSError):  # the process ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` and its children, from ``/proc``."""
    ticks = 0
    for process in _tree(pid):
        with suppress(OSError, IndexError, ValueError):
            # Fields 14 and 15 (utime, stime); the command name in field 2 may hold spaces.
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class MemorySampler:
    """Samples the resident memory of each service (all its processes) in the background."""

    services: dict[str, int]
    peak_mb: dict[str, float] = field(default_factory=dict)

    def sample(self) -> dict[int, float]:
        per_process = {}
        for name, pid in self.services.items():
            tree = {p: _rss_mb(p) for p in _tree(pid)}
            per_process.update(tree)
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), round(sum(tree.values()), 1))
        return per_process

    @contextmanager
    def cpu(self) -> Iterator[dict[str, float]]:
        """CPU seconds each service used inside the block (filled in when it ends)."""
        before = {name: _cpu_seconds(pid) for name, pid in self.services.items()}
        used: dict[str, float] = {}
        try:
            yield used
        finally:
            for name, pid in self.services.items():
                used[name] = _cpu_seconds(pid) - before[name]

    @contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(0.25):
                self.sample()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


# --- the run ---------------------------------------------------------------------------------


def drive(concurrency: int, count: int) -> dict[str, Any]:
    """``count`` transactions, ``concurrency`` at a time, from a separate client process."""
    return _load_client(["--concurrency", str(concurrency), "--count", str(count)])


def drive_overload(concurrency: int, duration: float) -> dict[str, Any]:
    """The overload level (``overload``) from a separate client process."""
    return _load_client(
        ["--overload", "--concurrency", str(concurrency), "--duration", str(duration)]
    )


def _load_client(options: list[str]) -> dict[str, Any]:
    """Run ``python -m ops.bench load OPTIONS`` apart, so its CPU is not the bench's or the
    stack's; the JSON object on its last line."""
    if TOKEN_VARIABLE not in os.environ:
        raise RuntimeError(f"{TOKEN_VARIABLE} is not set: the bench makes the token first")
    client = subprocess.run(
        [PYTHON, "-m", "ops.bench", "load", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed:\n{client.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(client.stdout.strip().splitlines()[-1])
    return result


def level_figures(
    concurrency: int, runs: list[dict[str, Any]], sampler: MemorySampler, cpu: dict[str, float]
) -> dict[str, Any]:
    """One level's figures from the client's runs, with each service's CPU per transaction."""
    latencies = [latency for run in runs for latency in run["latencies_ms"]]
    timelines = [row for run in runs for row in run["timelines_ms"]]
    count = len(latencies)
    errors = sum(run["errors"] for run in runs)
    # Transactions/s and CPU count the answers that relayed (a refusal is no transaction);
    # the latencies are every answer's.
    done = max(count - errors, 1)
    level = {
        "concurrency": concurrency,
        "transactions": count,
        **summary(latencies),
        "tps": round(done / sum(run["seconds"] for run in runs), 1),
        "errors": errors,
        "timeouts": sum(run["timeouts"] for run in runs),
        "error_samples": [sample for run in runs for sample in run["error_samples"]][:5],
        "peak_rss_mb": dict(sampler.peak_mb),
        "cpu_ms_per_tx": {name: round(seconds * 1000 / done, 2) for name, seconds in cpu.items()},
        "cpu_ms_per_tx_total": round(sum(cpu.values()) * 1000 / done, 2),
        "timeline_p50_ms": {
            part: round(statistics.median(row[part] for row in timelines), 2)
            for part in (timelines[0] if timelines else {})
        },
    }
    sampler.peak_mb.clear()
    return level


def run_level(concurrency: int, count: int, sampler: MemorySampler) -> dict[str, Any]:
    """One load level, driven by a separate client process."""
    with sampler.running(), sampler.cpu() as cpu:
        run = drive(concurrency, count)
    return level_figures(concurrency, [run], sampler, cpu)


def overload_figures(
    run: dict[str, Any],
    cpu: dict[str, float],
    sampler: MemorySampler,
    *,
    tps_c32: float,
    deadline: float,
) -> dict[str, Any]:
    """The overload level's figures from its client's run: every request counts in the
    latencies, whatever its answer (or none), since a client waits for each alike."""
    latencies: list[float] = run["latencies_s"]
    counts: dict[str, int] = run["counts"]
    ok = counts["ok"]
    figures = {
        "concurrency": run["concurrency"],
        "duration_s": run["duration_s"],
        "seconds": round(run["seconds"], 2),
        "requests": len(latencies),
        **counts,
        "p50_s": round(percentile(latencies, 50), 3),
        "p90_s": round(percentile(latencies, 90), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "max_s": round(max(latencies, default=0.0), 3),
        "goodput": round(run["goodput"], 1),
        "goodput_ratio": _ratio(run["goodput"], tps_c32, 3),
        "deadline_s": deadline,
        "retry_after_s": run["retry_after_s"],
        "cpu_ms_per_ok": {
            name: round(seconds * 1000 / ok, 2) if ok else None for name, seconds in cpu.items()
        },
        "cpu_ms_per_ok_total": round(sum(cpu.values()) * 1000 / ok, 2) if ok else None,
        "peak_rss_mb": dict(sampler.peak_mb),
        "samples": run["samples"],
    }
    sampler.peak_mb.clear()
    return figures


def _ratio(numerator: float, denominator: float, digits: int) -> float | None:
    """``numerator / denominator`` rounded; None (JSON null) where there is nothing to divide by."""
    return round(numerator / denominator, digits) if denominator else None


def targets(headline: dict[str, Any], overloaded: dict[str, Any]) -> dict[str, bool]:
    """Which of the relay's targets this run met; a figure that is missing meets none."""

    def at_most(value: float | None, limit: float | None) -> bool:
        return value is not None and limit is not None and value <= limit

    deadline = headline["overload_deadline_s"]
    return {
        "cpu": at_most(
            headline["cpu_ms_per_tx"], TARGET_CPU_FACTOR * headline["baseline_chain_cpu_ms"]
        ),
        "tps": at_most(TARGET_TPS_RATIO, headline["tps_ratio_c32"]),
        "ratio": at_most(headline["ratio"], TARGET_LATENCY_RATIO),
        "overload": (
            at_most(headline["overload_p99_s"], deadline + TARGET_OVERLOAD_P99_MARGIN_S)
            and at_most(headline["overload_max_s"], deadline + TARGET_OVERLOAD_MAX_MARGIN_S)
            and at_most(TARGET_OVERLOAD_GOODPUT_RATIO, headline["overload_goodput_ratio"])
            # every answer but a 200 is a 503 with Retry-After or a 504; every 200 is right
            and not any(
                overloaded[kind]
                for kind in ("connection_errors", "other", "other_503", "wrong_text")
            )
        ),
    }


def soak(sampler: MemorySampler, transactions: int) -> dict[str, Any]:
    """``transactions`` in a row at concurrency 32: how much each process's memory grew."""
    before = sampler.sample()
    level = run_level(32, transactions, sampler)
    after = sampler.sample()
    growth = {
        str(pid): round((after[pid] - before[pid]) / before[pid] * 100, 1)
        for pid in before
        if pid in after and before[pid] > 0
    }
    return {
        "transactions": transactions,
        "errors": level["errors"],
        "tps": level["tps"],
        "rss_before_mb": {str(p): round(v, 1) for p, v in before.items()},
        "rss_after_mb": {str(p): round(v, 1) for p, v in after.items()},
        "max_growth_percent": max(growth.values(), default=0.0),
        "growth_percent": growth,
    }


def chart(levels: list[dict[str, Any]], baselines: dict[str, dict[str, Any]], path: Path) -> None:
    """Latency and throughput per concurrency, with the baselines drawn beside the relay: what
    the same hops cost bare, and what a bare chain of five Celery tasks can reach at best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bare, chain, ceiling = (
        baselines["bare_hops"],
        baselines["celery_chain_of_five"],
        baselines["celery_chain_of_five_c32"],
    )
    x = [level["concurrency"] for level in levels]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.6))
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99")):
        latency.plot(x, [level[key] for level in levels], marker="o", label=f"relay {label}")
    latency.axhline(
        bare["p50_ms"],
        color="tab:gray",
        linestyle="--",
        label="(a) seven hops bare: p50, one at a time",
    )
    latency.axhline(
        chain["p50_ms"],
        color="tab:purple",
        linestyle="--",
        label="(b) bare chain of five: p50, one at a time",
    )
    latency.plot(
        [ceiling["concurrency"]],
        [ceiling["p50_ms"]],
        marker="D",
        linestyle="none",
        color="tab:purple",
        label=f"(b) bare chain of five: p50, {ceiling['concurrency']} at a time",
    )
    latency.set(
        xscale="log", yscale="log", xlabel="concurrency", ylabel="latency (ms)", title="Latency"
    )
    latency.set_xticks(x, [str(c) for c in x])
    latency.legend(fontsize="small")
    latency.grid(alpha=0.3)
    throughput.plot(
        x, [level["tps"] for level in levels], marker="o", color="tab:green", label="relay"
    )
    throughput.axhline(
        ceiling["tps"],
        color="tab:purple",
        linestyle="--",
        label=f"Celery's ceiling: bare chain of five ({ceiling['concurrency']} at a time)",
    )
    throughput.set(xscale="log", xlabel="concurrency", ylabel="transactions/s", title="Throughput")
    throughput.set_ylim(bottom=0)
    throughput.set_xticks(x, [str(c) for c in x])
    throughput.legend(fontsize="small")
    throughput.grid(alpha=0.3)
    figure.suptitle("relay: POST /api/relay/ over HTTP, every answer checked")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def sequential(
    rounds: int, per_round: int, sampler: MemorySampler
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """The relay one at a time, and both baselines, in alternating rounds."""
    bare: list[float] = []
    chained: list[float] = []
    runs: list[dict[str, Any]] = []
    relay_cpu: dict[str, float] = {}
    with bare_hops() as bare_transaction:
        _timed(bare_transaction, 20)  # warm up connections first
        _timed(one_noop_chain, 20)
        for number in range(1, rounds + 1):
            _say(f"  round {number} of {rounds}: {per_round} each, relay then (a) then (b)")
            with sampler.running(), sampler.cpu() as cpu:
                runs.append(drive(1, per_round))
            for name, seconds in cpu.items():
                relay_cpu[name] = relay_cpu.get(name, 0.0) + seconds
            bare += _timed(bare_transaction, per_round)
            chained += _timed(one_noop_chain, per_round)
    return level_figures(1, runs, sampler, relay_cpu), summary(bare), summary(chained)


def bench(*, quick: bool, tracing: bool = False) -> dict[str, Any]:
    mode = "quick" if quick else "full"
    from django.conf import settings

    from ops.stack import fresh_stack

    traced = ", every process traced" if tracing else ""
    _say(f"{mode} run{traced}; starting the stack with production settings in {BENCH_DIR}")
    env = BENCH_ENV | (TRACING_ENV if tracing else {"OTEL_TRACES_EXPORTER": "none"})
    stack, credentials = fresh_stack(BENCH_DIR, env, user="bench")
    os.environ[TOKEN_VARIABLE] = credentials.token  # for the load client's process
    auth_cpu_ms = auth_cpu_ms_per_tx()
    _say(f"message authentication: {auth_cpu_ms} ms of CPU per transaction")
    noop_worker = None
    try:
        stack.up()
        # Baseline (b) runs on a worker with the relay worker's pool and concurrency.
        noop_worker = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "ops.bench_noop",
                "worker",
                "--loglevel",
                "WARNING",
                "--pool",
                settings.RELAY_WORKER_POOL,
                "--concurrency",
                str(settings.RELAY_WORKER_CONCURRENCY),
                "--queues",
                "bench-noop",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                "bench-noop@%h",
            ],
            cwd=ROOT,
            stdout=(BENCH_DIR / "log" / "noop-worker.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        services = {name: pid for name, pid in stack.status().items() if pid}
        sampler = MemorySampler(services)
        drive(8, 100)  # warm-up: every worker process and connection in use
        sampler.peak_mb.clear()

        rounds, per_round = SEQUENTIAL_ROUNDS[mode]
        _say("one at a time: the relay, (a) the seven hops bare, (b) a bare chain of five")
        one_at_a_time, bare, chain_five = sequential(rounds, per_round, sampler)
        _say(
            f"  relay p50 {one_at_a_time['p50_ms']} ms, (a) p50 {bare['p50_ms']} ms,"
            f" (b) p50 {chain_five['p50_ms']} ms"
        )
        _say(f"  the relay's time, p50 of each part: {one_at_a_time['timeline_p50_ms']}")
        _say("baseline (b) at concurrency 32")
        if not services.get("redis"):
            raise RuntimeError("the stack's Redis is not running: no CPU for baseline (b)")
        chain_ceiling = noop_chain_ceiling(
            32, CHAIN_CEILING_CHAINS[mode], worker_pid=noop_worker.pid, redis_pid=services["redis"]
        )
        _say(f"  {chain_ceiling['tps']} chains/s, p99 {chain_ceiling['p99_ms']} ms")
        _say(
            f"  CPU ms per chain: {chain_ceiling['cpu_ms_per_chain_total']}"
            f" ({chain_ceiling['cpu_ms_per_chain']})"
        )

        levels = [one_at_a_time]
        for concurrency, count in LOAD_LEVELS[mode]:
            _say(f"concurrency {concurrency}: {count} transactions")
            level = run_level(concurrency, count, sampler)
            _say(
                f"  p50 {level['p50_ms']} ms  p90 {level['p90_ms']} ms  p99 {level['p99_ms']} ms"
                f"  {level['tps']} tx/s  errors {level['errors']}  timeouts {level['timeouts']}"
            )
            _say(
                f"  CPU ms per transaction: {level['cpu_ms_per_tx_total']}"
                f" ({level['cpu_ms_per_tx']})"
            )
            levels.append(level)
        c32 = next(level for level in levels if level["concurrency"] == 32)
        deadline = float(settings.RELAY_DEADLINE_SECONDS)
        over_concurrency, over_seconds = OVERLOAD[mode]
        _say(
            f"overload: {over_concurrency} clients in a closed loop for {over_seconds:g} s"
            f" (deadline {deadline:g} s)"
        )
        with sampler.running(), sampler.cpu() as over_cpu:
            over_run = drive_overload(over_concurrency, over_seconds)
        overloaded = overload_figures(
            over_run, over_cpu, sampler, tps_c32=c32["tps"], deadline=deadline
        )
        _say(
            f"  p99 {overloaded['p99_s']} s  max {overloaded['max_s']} s"
            f"  goodput {overloaded['goodput']} tx/s ({overloaded['goodput_ratio']} of c32)"
            f"  ok {overloaded['ok']}  shed_503 {overloaded['shed_503']}"
            f"  other_503 {overloaded['other_503']}  timeouts_504 {overloaded['timeouts_504']}"
            f"  wrong_text {overloaded['wrong_text']}  other {overloaded['other']}"
            f"  connection_errors {overloaded['connection_errors']}"
        )
        _say(
            f"  CPU ms per 200: {overloaded['cpu_ms_per_ok_total']} ({overloaded['cpu_ms_per_ok']})"
        )
        soaked = None
        if not quick:
            _say(f"soak: {SOAK_TRANSACTIONS} transactions in a row at concurrency 32")
            soaked = soak(sampler, SOAK_TRANSACTIONS)
            _say(f"  max memory growth of a process: {soaked['max_growth_percent']} %")
    finally:
        if noop_worker is not None:
            noop_worker.terminate()
            noop_worker.wait(timeout=30)
        stack.down()

    baseline_ms = round(bare["p50_ms"] + chain_five["p50_ms"], 2)
    headline: dict[str, Any] = {
        "mode": mode,
        "tracing": tracing,
        "p50_ms": one_at_a_time["p50_ms"],
        "baseline_ms": baseline_ms,
        "ratio": round(one_at_a_time["p50_ms"] / baseline_ms, 2),
        "tps_c32": c32["tps"],
        "p99_c32_ms": c32["p99_ms"],
        "baseline_chain_tps_c32": chain_ceiling["tps"],
        "errors": sum(level["errors"] for level in levels) + (soaked["errors"] if soaked else 0),
        "timeouts_c128": levels[-1]["timeouts"],
        "cpu_ms_per_tx": c32["cpu_ms_per_tx_total"],
        "baseline_chain_cpu_ms": chain_ceiling["cpu_ms_per_chain_total"],
        "tps_ratio_c32": _ratio(c32["tps"], chain_ceiling["tps"], 3),
        "cpu_ratio": _ratio(c32["cpu_ms_per_tx_total"], chain_ceiling["cpu_ms_per_chain_total"], 2),
        "overload_p99_s": overloaded["p99_s"],
        "overload_max_s": overloaded["max_s"],
        "overload_goodput_ratio": overloaded["goodput_ratio"],
        "overload_deadline_s": overloaded["deadline_s"],
        "auth_cpu_ms_per_tx": auth_cpu_ms,
    }
    if soaked:
        headline["soak_max_growth_percent"] = soaked["max_growth_percent"]
    headline["targets_met"] = targets(headline, overloaded)
    baselines = {
        "bare_hops": bare,
        "celery_chain_of_five": chain_five,
        "celery_chain_of_five_c32": chain_ceiling,
    }
    results = {
        "headline": headline,
        "baselines": baselines,
        "levels": levels,
        "overload": overloaded,
        "soak": soaked,
        "machine": {"cores": os.cpu_count()},
        "worker_pool": {
            "pool": settings.RELAY_WORKER_POOL,
            "concurrency": settings.RELAY_WORKER_CONCURRENCY,
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2))
    chart(levels, baselines, BENCH_DIR / "latency.png")
    _say(f"figures in {BENCH_DIR / 'results.json'}, chart in {BENCH_DIR / 'latency.png'}")
    return headline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="the whole benchmark (default)")
    run.add_argument("--quick", action="store_true", help="fewer transactions, no soak")
    run.add_argument(
        "--tracing", action="store_true", help="trace every process (to measure what it costs)"
    )
    client = sub.add_parser("load", help="(internal) the load client process")
    client.add_argument("--concurrency", type=int, required=True)
    client.add_argument("--count", type=int, help="transactions to send (not with --overload)")
    client.add_argument(
        "--overload",
        action="store_true",
        help="the overload level: a closed loop for --duration seconds, every answer classed",
    )
    client.add_argument("--duration", type=float, help="seconds of the overload level")
    client.add_argument(
        "--timeout",
        type=float,
        help=f"socket timeout (default 15, with --overload {OVERLOAD_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    if args.command == "load":
        address = BENCH_ENV["RELAY_HTTP_ADDRESS"]
        if args.overload:
            if args.duration is None or args.count is not None:
                parser.error("load --overload takes --duration, not --count")
            timeout = OVERLOAD_TIMEOUT if args.timeout is None else args.timeout
            result = overload(address, args.concurrency, args.duration, timeout)
        else:
            if args.count is None or args.duration is not None:
                parser.error("load takes --count (or --overload with --duration)")
            timeout = 15.0 if args.timeout is None else args.timeout
            result = load(address, args.concurrency, args.count, timeout)
        print(json.dumps(result))
        return 0
    headline = bench(
        quick=bool(getattr(args, "quick", False)), tracing=bool(getattr(args, "tracing", False))
    )
    print(json.dumps(headline), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
