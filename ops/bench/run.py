"""One bench run: a fresh stack of its own, its levels in order, its results file and chart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from ops.bench import figures
from ops.bench.client import KINDS, TOKEN_VARIABLE
from ops.bench.refusals import RefusalMeter
from ops.bench.usage import Usage, cpu_seconds
from ops.processes import ROOT
from project.settings.profiles import BENCH, traced_to_zipkin

BENCH_DIR = Path(BENCH["RELAY_VAR_DIR"])
# With --tracing: every process traced, its spans sent to the bench stack's own Zipkin.
TRACING_ENV = traced_to_zipkin(22411)


class Mode(NamedTuple):
    sequential: tuple[int, int]  # rounds, and transactions a round of the relay, (a) and (b)
    levels: list[tuple[int, int]]  # (concurrency, transactions) under load
    chains: int  # of (b) at concurrency 32
    overload: tuple[int, float]  # concurrency, and seconds of the closed loop
    soak: bool  # SOAK_TRANSACTIONS at concurrency 32 at the end


MODES = {
    "full": Mode((6, 50), [(8, 800), (32, 2000), (128, 2000)], 1000, (256, 40.0), soak=True),
    "quick": Mode((2, 30), [(8, 160), (32, 320), (128, 384)], 300, (256, 15.0), soak=False),
}
SOAK_TRANSACTIONS = 10_000
# Parts that run alone (``--only``), to measure one figure again quickly: each with what its
# figure is read against.
PARTS = ("burst", "plain_c128", "overload")
# A burst after a quiet spell: relays at a low concurrency, seconds of quiet, then at once.
BURST = (60, 8, 10.0, 100)


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def drive(concurrency: int, *, count: int | None = None, duration: float | None = None) -> Any:
    """The load client's outcomes, from ``python -m ops.bench load`` apart, so that its CPU is
    neither the bench's nor the stack's."""
    if TOKEN_VARIABLE not in os.environ:
        raise RuntimeError(f"{TOKEN_VARIABLE} is not set: the bench makes the token first")
    amount = ["--count", str(count)] if duration is None else ["--duration", str(duration)]
    client = subprocess.run(
        [sys.executable, "-m", "ops.bench", "load", "--concurrency", str(concurrency), *amount],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed:\n{client.stderr[-3000:]}")
    return json.loads(client.stdout.strip().splitlines()[-1])


def run_level(concurrency: int, count: int, usage: Usage, meter: RefusalMeter) -> dict[str, Any]:
    """One level under load, each service's CPU and memory, and what its refusals cost,
    measured meanwhile."""
    say(f"concurrency {concurrency}: {count} transactions")
    with usage.measured() as cpu, meter.measured() as refusals:
        run = drive(concurrency, count=count)
    level = figures.level(concurrency, [run], cpu, usage.take_peaks())
    level["refusals"] = figures.refusal_parts(refusals, len(run["outcomes"]))
    say(
        f"  p50 {level['p50_ms']} ms  p90 {level['p90_ms']} ms  p99 {level['p99_ms']} ms"
        f"  {level['tps']} tx/s  errors {level['errors']}  timeouts {level['timeouts']}"
    )
    say(f"  CPU ms per transaction: {level['cpu_ms_per_tx_total']} ({level['cpu_ms_per_tx']})")
    if level["refused"]:
        say(f"  refusals: {level['refusals']}")
    return level


def one_at_a_time(rounds: int, per_round: int, usage: Usage) -> tuple[dict[str, Any], ...]:
    """The relay one at a time, and both baselines, in alternating rounds, so that a burst of
    noise from the machine's other tenants falls on all three alike."""
    from ops.bench.baselines import bare_hops, one_noop_chain, timed

    say("one at a time: the relay, (a) the seven hops bare, (b) a bare chain of five")
    runs, bare, chained, cpu = [], [], [], dict.fromkeys(usage.roots, 0.0)
    bare_cpu = dict.fromkeys(bare_hops_cpu(usage), 0.0)
    with bare_hops() as bare_transaction:
        timed(bare_transaction, range(20))  # warm up connections first
        timed(one_noop_chain, range(20))
        for number in range(1, rounds + 1):
            say(f"  round {number} of {rounds}: {per_round} each, relay then (a) then (b)")
            with usage.measured() as used:
                runs.append(drive(1, count=per_round))
            cpu = {name: seconds + used[name] for name, seconds in cpu.items()}
            before = bare_hops_cpu(usage)
            bare += timed(bare_transaction, range(per_round))
            after = bare_hops_cpu(usage)
            bare_cpu = {
                name: seconds + after[name] - before[name] for name, seconds in bare_cpu.items()
            }
            chained += timed(one_noop_chain, range(per_round))
    level = figures.level(1, runs, cpu, usage.take_peaks())
    a = figures.latencies(bare) | figures.cpu_per(bare_cpu, len(bare), "tx")
    b = figures.latencies(chained)
    say(f"  relay p50 {level['p50_ms']} ms, (a) p50 {a['p50_ms']} ms, (b) p50 {b['p50_ms']} ms")
    say(f"  the relay's time, p50 of each part: {level['timeline_p50_ms']}")
    say(f"  (a)'s CPU ms per transaction: {a['cpu_ms_per_tx_total']} ({a['cpu_ms_per_tx']})")
    return level, a, b


def bare_hops_cpu(usage: Usage) -> dict[str, float]:
    """CPU seconds so far of what baseline (a) runs on: this process (its own threads and
    kafka-python's, not its children, which are the stack), Kafka and the gRPC server."""
    servers = {name: cpu_seconds(usage.roots[name]) for name in ("kafka", "grpc")}
    return {"client": time.process_time(), **servers}


def overload(
    concurrency: int, duration: float, usage: Usage, meter: RefusalMeter, *, tps_c32: float
) -> Any:
    """Far past what the relay serves: how it sheds load, and how slow its slowest answers get."""
    from django.conf import settings

    deadline = float(settings.RELAY_DEADLINE_SECONDS)
    say(
        f"overload: {concurrency} clients in a closed loop for {duration:g} s"
        f" (deadline {deadline:g} s)"
    )
    with usage.measured() as cpu, meter.measured() as refusals:
        run = drive(concurrency, duration=duration)
    over = figures.overload(run, cpu, usage.take_peaks(), tps_c32=tps_c32, deadline=deadline)
    over = {"concurrency": concurrency, "duration_s": duration, **over}
    over["refusals"] = figures.refusal_parts(refusals, len(run["outcomes"]))
    counts = "  ".join(f"{kind} {over[kind]}" for kind in KINDS)
    say(
        f"  p99 {over['p99_s']} s  max {over['max_s']} s  goodput {over['goodput']} tx/s"
        f" ({over['goodput_ratio']} of c32)  {counts}"
    )
    say(f"  CPU ms per 200: {over['cpu_ms_per_ok_total']} ({over['cpu_ms_per_ok']})")
    say(f"  refusals: {over['refusals']}")
    return over


def burst() -> dict[str, Any]:
    """How many relays sent at once after a quiet spell are served: what admission learned
    about the stack before the pause should not be forgotten over it."""
    before, in_flight, quiet, count = BURST
    say(f"burst: {before} at {in_flight} in flight, {quiet:g} s of quiet, then {count} at once")
    drive(in_flight, count=before)
    time.sleep(quiet)
    run = drive(count, count=count)
    counts = figures.kinds(run["outcomes"])
    say("  " + "  ".join(f"{kind} {number}" for kind, number in counts.items()))
    return {"sent": count, **counts}


def soak(usage: Usage, meter: RefusalMeter) -> dict[str, Any]:
    """Transactions in a row at concurrency 32: how much each process's memory grew."""
    say(f"soak: {SOAK_TRANSACTIONS} transactions in a row at concurrency 32")
    before = usage.sample()
    level = run_level(32, SOAK_TRANSACTIONS, usage, meter)
    after = usage.sample()
    growth = {
        str(pid): round((after[pid] - before[pid]) / before[pid] * 100, 1)
        for pid in before
        if pid in after and before[pid] > 0
    }
    say(f"  max memory growth of a process: {max(growth.values(), default=0.0)} %")
    return {
        "transactions": SOAK_TRANSACTIONS,
        "errors": level["errors"],
        "tps": level["tps"],
        "rss_before_mb": {str(p): round(v, 1) for p, v in before.items()},
        "rss_after_mb": {str(p): round(v, 1) for p, v in after.items()},
        "max_growth_percent": max(growth.values(), default=0.0),
        "growth_percent": growth,
    }


def measure(mode: str, usage: Usage, meter: RefusalMeter, *, noop_worker: int) -> dict[str, Any]:
    """Every level of the run in order, on a stack that is up: the results' figures."""
    from ops.bench.baselines import chain_ceiling

    shape = MODES[mode]
    drive(8, count=100)  # warm-up: every worker process and connection in use
    one, bare, chain = one_at_a_time(*shape.sequential, usage)
    say("baseline (b) at concurrency 32")
    if not usage.roots.get("redis"):
        raise RuntimeError("the stack's Redis is not running: no CPU for baseline (b)")
    ceiling = chain_ceiling(32, shape.chains, worker=noop_worker, redis=usage.roots["redis"][0])
    say(f"  {ceiling['tps']} chains/s, p99 {ceiling['p99_ms']} ms")
    say(f"  CPU ms per chain: {ceiling['cpu_ms_per_chain_total']} ({ceiling['cpu_ms_per_chain']})")
    levels = [one] + [run_level(c, count, usage, meter) for c, count in shape.levels]
    c32 = next(level for level in levels if level["concurrency"] == 32)
    return {
        "baselines": {
            "bare_hops": bare,
            "celery_chain_of_five": chain,
            "celery_chain_of_five_c32": ceiling,
        },
        "levels": levels,
        "burst": burst(),
        "overload": overload(*shape.overload, usage, meter, tps_c32=c32["tps"]),
        "soak": soak(usage, meter) if shape.soak else None,
    }


def measure_part(part: str, mode: str, usage: Usage, meter: RefusalMeter) -> dict[str, Any]:
    """One part of the run alone (``PARTS``) on a stack that is up, after the same warm-up."""
    drive(8, count=100)
    if part == "burst":
        return {"burst": burst()}
    levels = dict(MODES[mode].levels)
    if part == "overload":
        c32 = run_level(32, levels[32], usage, meter)
        return {
            "levels": [c32],
            "overload": overload(*MODES[mode].overload, usage, meter, tps_c32=c32["tps"]),
        }
    return {"levels": [run_level(c, levels[c], usage, meter) for c in (32, 128)]}


def bench(*, quick: bool, tracing: bool = False, only: str | None = None) -> dict[str, Any]:
    """The whole run; its headline, the rest in results.json and the chart."""
    from ops.stack import fresh_stack

    mode = "quick" if quick else "full"
    traced = ", every process traced" if tracing else ""
    say(f"{mode} run{traced}; starting the stack with production settings in {BENCH_DIR}")
    env = TRACING_ENV if tracing else {}
    stack, credentials = fresh_stack("project.settings.bench", user="bench", env=env)
    os.environ[TOKEN_VARIABLE] = credentials.token  # for the load client's process
    from django.conf import settings

    from ops.bench.baselines import auth_cpu_ms_per_tx, noop_worker  # once settings are the stack's
    from ops.bench.chart import chart

    auth_cpu_ms = None if only else auth_cpu_ms_per_tx()
    if auth_cpu_ms is not None:
        say(f"message authentication: {auth_cpu_ms} ms of CPU per transaction")
    try:
        stack.up()
        processes = stack.status()
        usage, meter = Usage(processes), RefusalMeter(processes, BENCH_DIR / "metrics")
        if only:
            results = measure_part(only, mode, usage, meter)
        else:
            with noop_worker(BENCH_DIR / "log" / "noop-worker.log") as worker:
                results = measure(mode, usage, meter, noop_worker=worker)
    finally:
        stack.down()
    if only:
        (BENCH_DIR / f"results-{only}.json").write_text(json.dumps(results, indent=2))
        return figures.part_line(mode=mode, part=only, results=results)
    results["auth_cpu_ms_per_tx"] = auth_cpu_ms
    results["refusal_cpu"] = figures.refusal_cpu(results)
    headline = figures.headline(mode=mode, tracing=tracing, results=results)
    pool = {"pool": settings.RELAY_WORKER_POOL, "concurrency": settings.RELAY_WORKER_CONCURRENCY}
    results = {"headline": headline, **results, "machine": {"cores": os.cpu_count()}}
    results |= {"worker_pool": pool, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2))
    chart(results["levels"], results["baselines"], BENCH_DIR / "latency.png")
    say(f"figures in {BENCH_DIR / 'results.json'}, chart in {BENCH_DIR / 'latency.png'}")
    return headline
