"""One bench run: its stack, its levels in order, its results file and chart.

The stack runs as in production (production settings, gunicorn, the Celery worker with the
pool the settings choose) on its own ports and data (``var/bench/``). A separate client process
(``ops/bench/client.py``) drives ``POST /api/relay/`` one at a time, then at concurrency 8, 32
and 128, and checks every answer's text. The one-at-a-time figures come from rounds that
alternate the relay with both baselines (``ops/bench/baselines.py``), so a burst of noise from
the machine's other tenants falls on all three alike. Baseline (b) also runs 32 at a time: the
most transactions per second any relay of five Celery tasks can reach on this machine, and
the CPU such a chain costs, to set the relay's CPU per transaction at 32 against.

After the 128 level comes an overload level: 256 clients in a closed loop for a fixed time,
far past what the relay can serve, every answer classed (``client.classify``); the figures are
the slowest answers against the deadline (RELAY_DEADLINE_SECONDS) and the goodput against the
throughput at 32. The full run ends with a soak: how much each process's memory grew.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from ops.bench import figures
from ops.bench.client import CLASSES, TOKEN_VARIABLE
from ops.bench.usage import Usage
from ops.processes import ROOT

BENCH_DIR = ROOT / "var" / "bench"
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
SOAK_TRANSACTIONS = 10_000


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def drive(concurrency: int, *, count: int | None = None, duration: float | None = None) -> Any:
    """``python -m ops.bench load`` apart, so its CPU is not the bench's or the stack's: its
    outcomes, the JSON object on its last line."""
    if TOKEN_VARIABLE not in os.environ:
        raise RuntimeError(f"{TOKEN_VARIABLE} is not set: the bench makes the token first")
    options = ["--concurrency", str(concurrency)]
    options += ["--count", str(count)] if duration is None else ["--duration", str(duration)]
    client = subprocess.run(
        [sys.executable, "-m", "ops.bench", "load", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed:\n{client.stderr[-3000:]}")
    return json.loads(client.stdout.strip().splitlines()[-1])


def run_level(concurrency: int, count: int, usage: Usage) -> dict[str, Any]:
    """One load level, its CPU and memory measured meanwhile."""
    with usage.running(), usage.cpu() as cpu:
        run = drive(concurrency, count=count)
    level = figures.level(concurrency, [run], cpu, usage.take_peaks())
    say(
        f"  p50 {level['p50_ms']} ms  p90 {level['p90_ms']} ms  p99 {level['p99_ms']} ms"
        f"  {level['tps']} tx/s  errors {level['errors']}  timeouts {level['timeouts']}"
    )
    say(f"  CPU ms per transaction: {level['cpu_ms_per_tx_total']} ({level['cpu_ms_per_tx']})")
    return level


def one_at_a_time(mode: str, usage: Usage) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The relay one at a time, and both baselines, in alternating rounds."""
    from ops.bench.baselines import bare_hops, one_noop_chain, timed

    rounds, per_round = SEQUENTIAL_ROUNDS[mode]
    say("one at a time: the relay, (a) the seven hops bare, (b) a bare chain of five")
    runs, bare, chained, relay_cpu = [], [], [], dict.fromkeys(usage.roots, 0.0)
    with bare_hops() as bare_transaction:
        timed(bare_transaction, range(20))  # warm up connections first
        timed(one_noop_chain, range(20))
        for number in range(1, rounds + 1):
            say(f"  round {number} of {rounds}: {per_round} each, relay then (a) then (b)")
            with usage.running(), usage.cpu() as cpu:
                runs.append(drive(1, count=per_round))
            relay_cpu = {name: relay_cpu[name] + cpu[name] for name in relay_cpu}
            bare += timed(bare_transaction, range(per_round))
            chained += timed(one_noop_chain, range(per_round))
    level = figures.level(1, runs, relay_cpu, usage.take_peaks())
    baselines = {
        "bare_hops": figures.latencies(bare),
        "celery_chain_of_five": figures.latencies(chained),
    }
    say(
        f"  relay p50 {level['p50_ms']} ms, (a) p50 {baselines['bare_hops']['p50_ms']} ms,"
        f" (b) p50 {baselines['celery_chain_of_five']['p50_ms']} ms"
    )
    say(f"  the relay's time, p50 of each part: {level['timeline_p50_ms']}")
    return level, baselines


def ceiling(mode: str, *, worker: int, usage: Usage) -> dict[str, Any]:
    """Baseline (b) at concurrency 32, with the CPU of its worker, Redis and client."""
    from ops.bench.baselines import chain_ceiling

    say("baseline (b) at concurrency 32")
    if not usage.roots.get("redis"):
        raise RuntimeError("the stack's Redis is not running: no CPU for baseline (b)")
    redis = usage.roots["redis"][0]
    chains = chain_ceiling(32, CHAIN_CEILING_CHAINS[mode], worker=worker, redis=redis)
    say(f"  {chains['tps']} chains/s, p99 {chains['p99_ms']} ms")
    say(f"  CPU ms per chain: {chains['cpu_ms_per_chain_total']} ({chains['cpu_ms_per_chain']})")
    return chains


def overload(mode: str, usage: Usage, *, tps_c32: float) -> dict[str, Any]:
    """The overload level: how the relay sheds load, and how slow its slowest answers get."""
    from django.conf import settings

    deadline = float(settings.RELAY_DEADLINE_SECONDS)
    concurrency, duration = OVERLOAD[mode]
    say(
        f"overload: {concurrency} clients in a closed loop for {duration:g} s"
        f" (deadline {deadline:g} s)"
    )
    with usage.running(), usage.cpu() as cpu:
        run = drive(concurrency, duration=duration)
    over = figures.overload(
        run,
        cpu,
        usage.take_peaks(),
        concurrency=concurrency,
        duration=duration,
        tps_c32=tps_c32,
        deadline=deadline,
    )
    counts = "  ".join(f"{kind} {over[kind]}" for kind in CLASSES)
    say(
        f"  p99 {over['p99_s']} s  max {over['max_s']} s  goodput {over['goodput']} tx/s"
        f" ({over['goodput_ratio']} of c32)  {counts}"
    )
    say(f"  CPU ms per 200: {over['cpu_ms_per_ok_total']} ({over['cpu_ms_per_ok']})")
    return over


def soak(usage: Usage) -> dict[str, Any]:
    """``SOAK_TRANSACTIONS`` in a row at concurrency 32: how much each process's memory grew."""
    say(f"soak: {SOAK_TRANSACTIONS} transactions in a row at concurrency 32")
    before = usage.sample()
    level = run_level(32, SOAK_TRANSACTIONS, usage)
    after = usage.sample()
    growth = {
        str(pid): round((after[pid] - before[pid]) / before[pid] * 100, 1)
        for pid in before
        if pid in after and before[pid] > 0
    }
    soaked = {
        "transactions": SOAK_TRANSACTIONS,
        "errors": level["errors"],
        "tps": level["tps"],
        "rss_before_mb": {str(p): round(v, 1) for p, v in before.items()},
        "rss_after_mb": {str(p): round(v, 1) for p, v in after.items()},
        "max_growth_percent": max(growth.values(), default=0.0),
        "growth_percent": growth,
    }
    say(f"  max memory growth of a process: {soaked['max_growth_percent']} %")
    return soaked


def measure(mode: str, usage: Usage, *, noop_worker: int) -> dict[str, Any]:
    """Every level of the run in order, on a stack that is up: the results' figures."""
    drive(8, count=100)  # warm-up: every worker process and connection in use
    one, baselines = one_at_a_time(mode, usage)
    baselines["celery_chain_of_five_c32"] = ceiling(mode, worker=noop_worker, usage=usage)
    levels = [one]
    for concurrency, count in LOAD_LEVELS[mode]:
        say(f"concurrency {concurrency}: {count} transactions")
        levels.append(run_level(concurrency, count, usage))
    c32 = next(level for level in levels if level["concurrency"] == 32)
    return {
        "baselines": baselines,
        "levels": levels,
        "overload": overload(mode, usage, tps_c32=c32["tps"]),
        "soak": soak(usage) if mode == "full" else None,
    }


def bench(*, quick: bool, tracing: bool = False) -> dict[str, Any]:
    """The whole run on a fresh stack of its own; its headline."""
    from ops.stack import fresh_stack

    mode = "quick" if quick else "full"
    traced = ", every process traced" if tracing else ""
    say(f"{mode} run{traced}; starting the stack with production settings in {BENCH_DIR}")
    env = BENCH_ENV | (TRACING_ENV if tracing else {"OTEL_TRACES_EXPORTER": "none"})
    stack, credentials = fresh_stack(BENCH_DIR, env, user="bench")
    os.environ[TOKEN_VARIABLE] = credentials.token  # for the load client's process
    from django.conf import settings

    from ops.bench.baselines import noop_worker

    try:
        stack.up()
        with noop_worker(BENCH_DIR / "log" / "noop-worker.log") as worker:
            results = measure(mode, Usage(stack.status()), noop_worker=worker)
    finally:
        stack.down()
    headline = figures.headline(mode=mode, tracing=tracing, results=results)
    results = {
        "headline": headline,
        **results,
        "machine": {"cores": os.cpu_count()},
        "worker_pool": {
            "pool": settings.RELAY_WORKER_POOL,
            "concurrency": settings.RELAY_WORKER_CONCURRENCY,
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2))
    from ops.bench.chart import chart

    chart(results["levels"], results["baselines"], BENCH_DIR / "latency.png")
    say(f"figures in {BENCH_DIR / 'results.json'}, chart in {BENCH_DIR / 'latency.png'}")
    return headline
