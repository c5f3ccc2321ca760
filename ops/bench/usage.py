"""CPU and resident memory of the stack's services, each service the process trees of its
processes (gunicorn's workers, Celery's pool, ...), read with psutil."""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import psutil

# A stack process that counts as another service's: the proxy in front of the web servers
# does the web's work. The others are named by their process less its number (``web-2``).
SERVICE_OF = {"proxy": "web"}
MB = 1024 * 1024


def service(process: str) -> str:
    """The service the stack's process ``process`` counts for."""
    name = re.sub(r"-\d+$", "", process)
    return SERVICE_OF.get(name, name)


def trees(roots: Iterable[int]) -> list[psutil.Process]:
    """The processes ``roots`` and all their descendants that run now."""
    found = []
    for pid in roots:
        with suppress(psutil.NoSuchProcess):  # it ended meanwhile
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)]
    return found


def cpu_seconds(roots: Iterable[int]) -> float:
    """User and system CPU seconds so far of the process trees at ``roots``: not those of
    their children that ended, which a tree no longer holds."""
    total = 0.0
    for process in trees(roots):
        with suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class Usage:
    """The stack's services (``processes``: name to pid, as ``Stack.status()`` says) measured
    as a whole: each service's CPU over a block, and its peak memory sampled meanwhile."""

    def __init__(self, processes: dict[str, int | None]) -> None:
        self.roots: dict[str, list[int]] = defaultdict(list)
        for name, pid in processes.items():
            if pid:
                self.roots[service(name)].append(pid)
        self.peak_mb: dict[str, float] = {}

    def sample(self) -> dict[int, float]:
        """Each process's resident memory (MB) now; each service's peak so far updated."""
        per_process = {}
        for name, roots in self.roots.items():
            tree = {}
            for process in trees(roots):
                with suppress(psutil.NoSuchProcess):
                    tree[process.pid] = process.memory_info().rss / MB
            per_process.update(tree)
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), round(sum(tree.values()), 1))
        return per_process

    def take_peaks(self) -> dict[str, float]:
        """The peaks since the last time they were taken."""
        peaks, self.peak_mb = self.peak_mb, {}
        return peaks

    @contextmanager
    def measured(self) -> Iterator[dict[str, float]]:
        """Each service's CPU seconds inside the block (filled in when it ends), and its
        memory sampled every quarter of a second meanwhile."""
        used: dict[str, float] = {}
        stop = threading.Event()

        def sample_until_stopped() -> None:
            while not stop.wait(0.25):
                self.sample()

        thread = threading.Thread(target=sample_until_stopped, daemon=True)
        before = {name: cpu_seconds(roots) for name, roots in self.roots.items()}
        thread.start()
        try:
            yield used
        finally:
            stop.set()
            thread.join()
            used.update(
                {name: cpu_seconds(roots) - before[name] for name, roots in self.roots.items()}
            )
