"""The bench's chart (``var/bench/latency.png``): latency and throughput per concurrency, with
the baselines drawn beside the relay: what the same hops cost bare, and what a bare chain of
five Celery tasks can reach at best."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chart(levels: list[dict[str, Any]], baselines: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bare, chain = baselines["bare_hops"], baselines["celery_chain_of_five"]
    ceiling = baselines["celery_chain_of_five_c32"]
    at, x = ceiling["concurrency"], [level["concurrency"] for level in levels]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.6))
    for p in ("p50", "p90", "p99"):
        latency.plot(x, [level[f"{p}_ms"] for level in levels], marker="o", label=f"relay {p}")
    at_32 = f"(b) bare chain of five: p50, {at} at a time"
    celery = f"Celery's ceiling: bare chain of five ({at} at a time)"
    latency.plot([at], [ceiling["p50_ms"]], "D", color="tab:purple", label=at_32)
    throughput.plot(x, [level["tps"] for level in levels], "o-", color="tab:green", label="relay")
    for axes, y, colour, label in (
        (latency, bare["p50_ms"], "tab:gray", "(a) seven hops bare: p50, one at a time"),
        (latency, chain["p50_ms"], "tab:purple", "(b) bare chain of five: p50, one at a time"),
        (throughput, ceiling["tps"], "tab:purple", celery),
    ):
        axes.axhline(y, color=colour, ls="--", label=label)
    latency.set(yscale="log", ylabel="latency (ms)", title="Latency")
    throughput.set(ylabel="transactions/s", title="Throughput")
    throughput.set_ylim(bottom=0)
    for axes in (latency, throughput):
        axes.set(xscale="log", xlabel="concurrency")
        axes.set_xticks(x, [str(c) for c in x])
        axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    figure.suptitle("relay: POST /api/relay/ over HTTP, every answer checked")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
