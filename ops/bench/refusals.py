"""What refusals cost the stack, read where it is spent.

A refusal reaches the proxy and one web server's thread. The web server counts the CPU its
threads spend on each request admission refused, from parsing it to its answer's last byte,
and the refusals themselves (``relay_refusal_cpu_seconds_total`` and
``relay_refused_requests_total{reason="at_capacity"}``, project/webserver.py). The bench reads
them from the web servers' metrics files, as their ``/metrics`` would add them up, so that
reading them costs the web servers nothing. Beside them it reads what every request costs
alike, a refusal as much as any small request: the CPU of gunicorn's main threads (their
poller hands each request of a kept-alive connection to a thread, and takes the connection
back once answered) and the proxy's, each read per request the level sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
from prometheus_client.multiprocess import MultiProcessCollector

from ops.bench.usage import cpu_seconds, service, trees

REFUSAL_CPU = "relay_refusal_cpu_seconds_total"
REFUSED = "relay_refused_requests_total"


def web_counts(folders: list[Path]) -> tuple[float, float]:
    """The web servers' refusal CPU seconds and refusals at capacity so far, from their
    metrics folders (a folder not there yet counts none)."""
    seconds = refused = 0.0
    for folder in folders:
        if not folder.is_dir():
            continue
        collector = MultiProcessCollector(None, path=str(folder))  # type: ignore[no-untyped-call]
        for metric in collector.collect():  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                if sample.name == REFUSAL_CPU:
                    seconds += sample.value
                elif sample.name == REFUSED and sample.labels.get("reason") == "at_capacity":
                    refused += sample.value
    return seconds, refused


def main_threads_cpu(roots: list[int]) -> float:
    """CPU seconds so far of the main threads of the web servers' worker processes (not of
    the servers themselves, ``roots``, whose arbiters serve no request)."""
    total = 0.0
    for process in trees(roots):
        if process.pid in roots:
            continue
        with suppress(psutil.NoSuchProcess):
            for thread in process.threads():
                if thread.id == process.pid:  # the main thread's id is its process's
                    total += thread.user_time + thread.system_time
    return total


class RefusalMeter:
    """The stack's processes (name to pid, as ``Stack.status()`` says) and its web servers'
    metrics folders (``<var_dir>/metrics/<name>``), read before and after a block."""

    def __init__(self, processes: dict[str, int | None], metrics_dir: Path) -> None:
        # The web servers alone: the proxy counts for the web service too (``service``).
        webs = {
            name: pid
            for name, pid in processes.items()
            if pid and name != "proxy" and service(name) == "web"
        }
        self.folders = [metrics_dir / name for name in webs]
        self.web_roots = list(webs.values())
        proxy = processes.get("proxy")
        self.proxy_roots = [proxy] if proxy else []

    def read(self) -> dict[str, float]:
        """Each figure so far: seconds of CPU, and refusals."""
        seconds, refused = web_counts(self.folders)
        return {
            "refusal_cpu_s": seconds,
            "refused": refused,
            "main_thread_cpu_s": main_threads_cpu(self.web_roots),
            "proxy_cpu_s": cpu_seconds(self.proxy_roots),
        }

    @contextmanager
    def measured(self) -> Iterator[dict[str, float]]:
        """Each figure's growth inside the block (filled in when it ends)."""
        grown: dict[str, float] = {}
        before = self.read()
        try:
            yield grown
        finally:
            after = self.read()
            grown.update({name: after[name] - before[name] for name in before})
