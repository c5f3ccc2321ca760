"""The bench's figures, each computed in one place: percentiles of latencies in any unit,
each level's and the overload level's figures from the load client's outcomes, the headline,
and which targets a run met."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from ops.bench.client import KINDS

# Targets: relay CPU per transaction at 32 against baseline (b)'s CPU per chain at 32; relay
# throughput at 32 against (b)'s; the one-at-a-time latency ratio; overload against deadline.
TARGET_CPU_FACTOR = 1.7
TARGET_TPS_RATIO = 0.65
TARGET_LATENCY_RATIO = 1.5
TARGET_OVERLOAD_P99_MARGIN_S = 0.5
TARGET_OVERLOAD_MAX_MARGIN_S = 1.5
TARGET_OVERLOAD_GOODPUT_RATIO = 0.9
# Of the burst's relays sent at once after a quiet spell, at least this many served.
TARGET_BURST_ADMITTED = 95
# Plain clients (they ignore Retry-After) at 128 at a time: 200s per second over the rate at 32.
TARGET_PLAIN_C128_GOODPUT_RATIO = 0.8
# A refusal's CPU at most this share of a transaction's; the relay's own CPU (beyond the bare
# chain's) at most this many times the bare hops'.
TARGET_REFUSAL_CPU_SHARE = 0.05
TARGET_OWN_CPU_FACTOR = 2.0
# The services a refusal reaches: it is answered in the web server, behind the proxy.
REFUSING_SERVICES = ("web",)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latencies(seconds: list[float], unit: str = "ms") -> dict[str, float]:
    """p50, p90, p99, mean and max of latencies given in ``seconds``, in ``unit`` ("ms", to
    two decimals, or "s", to three): ``{"p50_ms": ..., ...}``."""
    scale, digits = (1000, 2) if unit == "ms" else (1, 3)
    values = [value * scale for value in seconds]
    figures = {f"p{p}_{unit}": round(percentile(values, p), digits) for p in (50, 90, 99)}
    figures[f"mean_{unit}"] = round(statistics.fmean(values), digits) if values else 0.0
    figures[f"max_{unit}"] = round(max(values, default=0.0), digits)
    return figures


def ratio(numerator: float | None, denominator: float | None, digits: int) -> float | None:
    """``numerator / denominator`` rounded; None (JSON null) where there is nothing to divide."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


def difference(minuend: float | None, subtrahend: float | None) -> float | None:
    """``minuend - subtrahend`` to two decimals; None where either is missing."""
    if minuend is None or subtrahend is None:
        return None
    return round(minuend - subtrahend, 2)


def cpu_per(cpu: dict[str, float], count: int, what: str) -> dict[str, Any]:
    """CPU seconds per service as ms per one ``what`` of ``count`` (None when there is none):
    ``cpu_ms_per_<what>`` per service, and ``cpu_ms_per_<what>_total``."""
    return {
        f"cpu_ms_per_{what}": {name: ratio(sec * 1000, count, 2) for name, sec in cpu.items()},
        f"cpu_ms_per_{what}_total": ratio(sum(cpu.values()) * 1000, count, 2),
    }


def level(
    concurrency: int, runs: list[dict[str, Any]], cpu: dict[str, float], peaks: dict[str, float]
) -> dict[str, Any]:
    """One level's figures from the load client's runs. Transactions/s and CPU count the
    answers that relayed (a refusal is no transaction); the latencies are every answer's."""
    outcomes = [outcome for run in runs for outcome in run["outcomes"]]
    failed = [outcome for outcome in outcomes if outcome["kind"] != "ok"]
    timelines = [outcome["timeline"] for outcome in outcomes if outcome["timeline"]]
    done = max(len(outcomes) - len(failed), 1)
    refused = sum(outcome["kind"] == "shed_503" for outcome in failed)
    return {
        "concurrency": concurrency,
        "transactions": len(outcomes),
        **latencies([outcome["seconds"] for outcome in outcomes]),
        "tps": round(done / sum(run["seconds"] for run in runs), 1),
        "errors": len(failed),
        "timeouts": sum(
            outcome["kind"] == "timeouts_504" or "timed out" in outcome["detail"]
            for outcome in failed
        ),
        "error_samples": [outcome["detail"] for outcome in failed[:5]],
        "peak_rss_mb": peaks,
        **cpu_per(cpu, done, "tx"),
        "refused": refused,
        "cpu_ms": {name: round(seconds * 1000, 1) for name, seconds in cpu.items()},
        "timeline_p50_ms": {
            part: round(statistics.median(row[part] for row in timelines), 2)
            for part in (timelines[0] if timelines else {})
        },
    }


def kinds(outcomes: list[dict[str, Any]]) -> dict[str, int]:
    """How many answers of each class (``KINDS``, in their order) the outcomes hold."""
    counts = Counter(outcome["kind"] for outcome in outcomes)
    return {kind: counts[kind] for kind in KINDS}


def overload(
    run: dict[str, Any],
    cpu: dict[str, float],
    peaks: dict[str, float],
    *,
    tps_c32: float,
    deadline: float,
) -> dict[str, Any]:
    """The overload level's figures: every request counts in the latencies, whatever its
    answer (or none), since a client waits for each alike."""
    outcomes = run["outcomes"]
    counts = kinds(outcomes)
    pauses = [outcome["pause"] for outcome in outcomes if outcome["kind"] == "shed_503"]
    samples: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome["detail"] and len(samples.setdefault(outcome["kind"], [])) < 3:
            samples[outcome["kind"]].append(outcome["detail"])
    goodput = counts["ok"] / run["seconds"]
    return {
        "seconds": round(run["seconds"], 2),
        "requests": len(outcomes),
        **counts,
        **latencies([outcome["seconds"] for outcome in outcomes], "s"),
        "goodput": round(goodput, 1),
        "goodput_ratio": ratio(goodput, tps_c32, 3),
        "deadline_s": deadline,
        "retry_after_s": {"min": min(pauses, default=0.0), "max": max(pauses, default=0.0)},
        **cpu_per(cpu, counts["ok"], "ok"),
        "cpu_ms": {name: round(seconds * 1000, 1) for name, seconds in cpu.items()},
        "peak_rss_mb": peaks,
        "samples": samples,
    }


def refusal_parts(grown: dict[str, float], requests: int) -> dict[str, Any]:
    """What a level's refusals cost, as ``RefusalMeter.measured`` read it over the level
    (seconds of CPU, refusals), with the requests the level sent: in ms, and counts."""
    return {
        "refused": round(grown["refused"]),
        "requests": requests,
        "refusal_cpu_ms": round(grown["refusal_cpu_s"] * 1000, 2),
        "main_thread_cpu_ms": round(grown["main_thread_cpu_s"] * 1000, 2),
        "proxy_cpu_ms": round(grown["proxy_cpu_s"] * 1000, 2),
    }


def refusal_cost(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The CPU (ms) of one refusal over levels' ``refusal_parts`` together: the web server's
    thread's CPU per refusal, plus what any request costs gunicorn's main thread and the
    proxy, per request; ``cpu_ms_per_refusal`` None where none was refused."""
    refused = sum(int(part["refused"]) for part in parts)
    requests = sum(int(part["requests"]) for part in parts)
    thread = ratio(sum(float(part["refusal_cpu_ms"]) for part in parts), refused, 3)
    main = ratio(sum(float(part["main_thread_cpu_ms"]) for part in parts), requests, 3)
    proxy = ratio(sum(float(part["proxy_cpu_ms"]) for part in parts), requests, 3)
    total = None if thread is None else round(thread + (main or 0.0) + (proxy or 0.0), 3)
    return {
        "cpu_ms_per_refusal": total,
        "web_thread_cpu_ms_per_refusal": thread,
        "web_main_thread_cpu_ms_per_request": main,
        "proxy_cpu_ms_per_request": proxy,
        "refused": refused,
        "requests": requests,
    }


def cpu_ms_per_refusal_derived(
    spent: dict[str, float], *, served: int, refused: int, c32: dict[str, Any]
) -> float | None:
    """A refusal's CPU (ms) derived from a level's whole CPU (``spent``, ms per service): what
    the services a refusal reaches spent beyond what its ``served`` transactions cost them at
    32 at a time, per refusal; None where none was refused. It puts on the refusals whatever
    else the level cost more than the level at 32 (more connections, relays in line), so it
    reads high when few are refused: kept to compare with ``refusal_cost``."""
    if not refused:
        return None
    used = sum(float(spent.get(name, 0.0)) for name in REFUSING_SERVICES)
    per_tx = sum(float(c32["cpu_ms_per_tx"].get(name) or 0.0) for name in REFUSING_SERVICES)
    return round(max(0.0, used - served * per_tx) / refused, 3)


def refusal_cpu(results: dict[str, Any]) -> dict[str, Any]:
    """A refusal's CPU over the refusals of the 128 plain clients and the overload together,
    part by part, and derived at each of them as before."""
    levels, overloaded = results["levels"], results["overload"]
    c32 = next(level for level in levels if level["concurrency"] == 32)
    plain = levels[-1]
    parts = [found for found in (plain.get("refusals"), overloaded.get("refusals")) if found]
    return refusal_cost(parts) | {
        "cpu_ms_per_refusal_derived": cpu_ms_per_refusal_derived(
            plain["cpu_ms"],
            served=plain["transactions"] - plain["errors"],
            refused=plain["refused"],
            c32=c32,
        ),
        "cpu_ms_per_refusal_derived_overload": cpu_ms_per_refusal_derived(
            overloaded.get("cpu_ms", {}),
            served=overloaded["ok"],
            refused=overloaded["shed_503"],
            c32=c32,
        ),
    }


def headline(*, mode: str, tracing: bool, results: dict[str, Any]) -> dict[str, Any]:
    """The run's one line of figures (keep every field: scripts read them)."""
    bare, chain = results["baselines"]["bare_hops"], results["baselines"]["celery_chain_of_five"]
    ceiling = results["baselines"]["celery_chain_of_five_c32"]
    levels, overloaded, soaked = results["levels"], results["overload"], results["soak"]
    one, c32 = levels[0], next(level for level in levels if level["concurrency"] == 32)
    baseline_ms = round(bare["p50_ms"] + chain["p50_ms"], 2)
    line: dict[str, Any] = {
        "mode": mode,
        "tracing": tracing,
        "p50_ms": one["p50_ms"],
        "baseline_ms": baseline_ms,
        "ratio": round(one["p50_ms"] / baseline_ms, 2),
        "tps_c32": c32["tps"],
        "p99_c32_ms": c32["p99_ms"],
        "baseline_chain_tps_c32": ceiling["tps"],
        "errors": sum(level["errors"] for level in levels) + (soaked["errors"] if soaked else 0),
        "timeouts_c128": levels[-1]["timeouts"],
        "cpu_ms_per_tx": c32["cpu_ms_per_tx_total"],
        "baseline_chain_cpu_ms": ceiling["cpu_ms_per_chain_total"],
        "tps_ratio_c32": ratio(c32["tps"], ceiling["tps"], 3),
        "cpu_ratio": ratio(c32["cpu_ms_per_tx_total"], ceiling["cpu_ms_per_chain_total"], 2),
        "overload_p99_s": overloaded["p99_s"],
        "overload_max_s": overloaded["max_s"],
        "overload_goodput_ratio": overloaded["goodput_ratio"],
        "overload_deadline_s": overloaded["deadline_s"],
        "auth_cpu_ms_per_tx": results["auth_cpu_ms_per_tx"],
        "burst_admitted": results["burst"]["ok"],
        "plain_c128_goodput_ratio": ratio(levels[-1]["tps"], c32["tps"], 3),
        "cpu_ms_per_refusal": refusal_cpu(results)["cpu_ms_per_refusal"],
        "hops_cpu_ms": bare.get("cpu_ms_per_tx_total"),
        "own_cpu_ms": difference(c32["cpu_ms_per_tx_total"], ceiling["cpu_ms_per_chain_total"]),
    }
    if soaked:
        line["soak_max_growth_percent"] = soaked["max_growth_percent"]
    line["targets_met"] = targets(line, overloaded)
    return line


def part_line(*, mode: str, part: str, results: dict[str, Any]) -> dict[str, Any]:
    """The line of a part run alone (``run --only``): its figures as the whole run's line names
    them, and its target."""
    line: dict[str, Any] = {"mode": mode, "only": part}
    if part == "burst":
        line |= {"burst_admitted": results["burst"]["ok"], "burst": results["burst"]}
        line["targets_met"] = {"burst": line["burst_admitted"] >= TARGET_BURST_ADMITTED}
        return line
    if part == "overload":
        over = results["overload"]
        line |= {
            "tps_c32": results["levels"][0]["tps"],
            "overload_p99_s": over["p99_s"],
            "overload_max_s": over["max_s"],
            "overload_goodput_ratio": over["goodput_ratio"],
            "overload_deadline_s": over["deadline_s"],
            "overload": {kind: over[kind] for kind in KINDS},
        }
        c32 = results["levels"][0]
        line |= part_refusal_cpu(c32, over, served=over["ok"], refused=over["shed_503"])
        line["targets_met"] = {"overload": overload_met(line, over)}
        return line
    c32, c128 = results["levels"]
    line |= {
        "tps_c32": c32["tps"],
        "plain_c128_goodput_ratio": ratio(c128["tps"], c32["tps"], 3),
        "timeouts_c128": c128["timeouts"],
        "refused_c128": c128["refused"],
    }
    served = c128["transactions"] - c128["errors"]
    line |= part_refusal_cpu(c32, c128, served=served, refused=c128["refused"])
    met = at_least(line["plain_c128_goodput_ratio"], TARGET_PLAIN_C128_GOODPUT_RATIO)
    line["targets_met"] = {"plain_c128": met and line["timeouts_c128"] == 0}
    return line


def part_refusal_cpu(
    c32: dict[str, Any], loaded: dict[str, Any], *, served: int, refused: int
) -> dict[str, Any]:
    """A part's refusal CPU at its ``loaded`` level (the 128 plain clients, or the overload),
    measured and derived, beside the CPU per transaction at 32 its limit is a share of."""
    cost = refusal_cost([loaded["refusals"]] if "refusals" in loaded else [])
    derived = cpu_ms_per_refusal_derived(
        loaded.get("cpu_ms", {}), served=served, refused=refused, c32=c32
    )
    return {
        "cpu_ms_per_tx": c32["cpu_ms_per_tx_total"],
        "cpu_ms_per_refusal": cost["cpu_ms_per_refusal"],
        "cpu_ms_per_refusal_derived": derived,
        "refusal_cpu": cost,
    }


def at_least(value: float | None, floor: float) -> bool:
    """Whether ``value`` is there and at least ``floor``."""
    return value is not None and value >= floor


def targets(line: dict[str, Any], overloaded: dict[str, Any]) -> dict[str, bool]:
    """Which of the relay's targets this run met; a figure that is missing meets none."""

    def at_most(value: float | None, limit: float | None) -> bool:
        return value is not None and limit is not None and value <= limit

    def times(factor: float, value: float | None) -> float | None:
        return None if value is None else factor * value

    return {
        "cpu": at_most(line["cpu_ms_per_tx"], TARGET_CPU_FACTOR * line["baseline_chain_cpu_ms"]),
        "tps": at_most(TARGET_TPS_RATIO, line["tps_ratio_c32"]),
        "ratio": at_most(line["ratio"], TARGET_LATENCY_RATIO),
        "burst": at_most(TARGET_BURST_ADMITTED, line["burst_admitted"]),
        "plain_c128": at_most(TARGET_PLAIN_C128_GOODPUT_RATIO, line["plain_c128_goodput_ratio"])
        and line["timeouts_c128"] == 0,
        "refusal_cpu": at_most(
            line["cpu_ms_per_refusal"], times(TARGET_REFUSAL_CPU_SHARE, line["cpu_ms_per_tx"])
        ),
        "own_cpu": at_most(line["own_cpu_ms"], times(TARGET_OWN_CPU_FACTOR, line["hops_cpu_ms"])),
        "overload": overload_met(line, overloaded),
    }


def overload_met(line: dict[str, Any], overloaded: dict[str, Any]) -> bool:
    """Whether the overload level met its target: p99 and slowest within their margins of the
    deadline, goodput against the rate at 32, and every answer a right 200, a 503 with
    ``Retry-After`` or a 504 (no connection error, no other status)."""
    deadline = line["overload_deadline_s"]
    p99, slowest, goodput = (
        line["overload_p99_s"],
        line["overload_max_s"],
        line["overload_goodput_ratio"],
    )
    return (
        p99 is not None
        and p99 <= deadline + TARGET_OVERLOAD_P99_MARGIN_S
        and slowest is not None
        and slowest <= deadline + TARGET_OVERLOAD_MAX_MARGIN_S
        and at_least(goodput, TARGET_OVERLOAD_GOODPUT_RATIO)
        and not any(
            overloaded[kind] for kind in ("connection_errors", "other", "other_503", "wrong_text")
        )
    )
