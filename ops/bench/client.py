"""The bench's load client: a process of its own (``python -m ops.bench load``), so that its CPU
is neither the bench's nor the stack's. It drives the relay with the shared ``ops.ledger`` load
and prints one JSON line: how long it ran, and one outcome per request, its answer classed."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from ops.client import Credentials
from ops.ledger import Entry, Load

# The load client's API token, handed from the bench to its process.
TOKEN_VARIABLE = "RELAY_BENCH_TOKEN"  # noqa: S105 - the variable's name, not a token
# How each answer is classed (``classify``), in the order reported.
KINDS = [
    "ok",
    "shed_503",
    "other_503",
    "timeouts_504",
    "wrong_text",
    "other",
    "connection_errors",
]
# Socket timeouts; the overload level's is longer than any answer its deadline allows.
LOAD_TIMEOUT = 15.0
OVERLOAD_TIMEOUT = 10.0
# After a request that got no answer, an overload client waits this long before it reconnects.
OVERLOAD_RECONNECT_PAUSE = 0.1
SAMPLES = [
    "hello world",
    "café crème, naïve façade",
    "Καλημέρα κόσμε",
    "你好世界",
    "emoji 🚀🔥",
    "שלום עולם",
    'quotes "double" and \\ backslash',
]


def classify(entry: Entry) -> tuple[str, str]:
    """One answer's class (one of ``KINDS``) and a short description for the report.

    A 200 counts only with the right text. A 503 counts as shed only with a ``Retry-After``
    the client can obey (seconds, int or float): the relay's promise to clients.
    """
    from relay_app.hops import expected_final_message

    if entry.status == 0:
        return "connection_errors", entry.error
    if entry.status == 200:
        expected = expected_final_message(entry.message)
        if not isinstance(entry.body, dict) or "message" not in entry.body:
            return "wrong_text", "HTTP 200 with a body that is not the relay's answer"
        if (text := entry.body["message"]) != expected:
            return "wrong_text", f"wrong text {str(text)[:80]!r} for {expected[:80]!r}"
        return "ok", ""
    body = entry.body if isinstance(entry.body, str) else json.dumps(entry.body, ensure_ascii=False)
    detail = f"HTTP {entry.status}: {body[:200]}"
    if entry.status == 503:
        if entry.pause is None:
            shown = "" if entry.retry_after is None else f" (Retry-After {entry.retry_after!r})"
            return "other_503", detail + shown
        return "shed_503", detail
    return ("timeouts_504" if entry.status == 504 else "other"), detail


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


def outcome(entry: Entry) -> dict[str, Any]:
    """What the bench's figures need of one request: not its whole answer."""
    kind, detail = classify(entry)
    return {
        "seconds": entry.seconds,
        "kind": kind,
        "detail": detail,
        "pause": entry.pause if kind == "shed_503" else None,
        "timeline": timeline(entry.body, entry.seconds * 1000) if kind == "ok" else None,
    }


def messages(count: int | None) -> Callable[[int], Iterator[str]]:
    """Client ``n``'s messages: the next of ``count`` numbered transactions (each sent once,
    by whichever client is free); without a count, numbered ones of its own, without end."""

    def sample(i: int) -> str:
        return SAMPLES[i % len(SAMPLES)]

    if count is None:
        return lambda n: (f"{sample(n + s)} #{n}-{s}" for s in itertools.count())
    total, numbers = count, itertools.count()
    return lambda n: (f"{sample(i)} #{i}" for i in itertools.takewhile(total.__gt__, numbers))


def run(address: str, concurrency: int, *, count: int | None, duration: float | None) -> Any:
    """``count`` transactions, ``concurrency`` at a time; or, for ``duration`` seconds, the
    overload level: ``concurrency`` clients in a closed loop, each waiting as a 503's
    ``Retry-After`` asks, far past what the relay serves."""
    overload = duration is not None
    load = Load(
        address,
        Credentials(os.environ[TOKEN_VARIABLE], behind_tls_proxy=True),
        timeout=OVERLOAD_TIMEOUT if overload else LOAD_TIMEOUT,
        reconnect_pause=OVERLOAD_RECONNECT_PAUSE if overload else 0.0,
        obey_retry_after=overload,
    )
    began = time.perf_counter()
    if duration is not None:
        threading.Timer(duration, load.stop.set).start()
    load.start(concurrency, messages(count))
    entries = load.join()
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "outcomes": [outcome(entry) for entry in entries]}
