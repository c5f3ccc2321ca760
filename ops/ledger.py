"""The load the benchmark and the chaos runs drive: client threads sending ``POST /api/relay/``
in a closed loop, and the ledger of every request they sent and what each received.

One loop for both, so that a figure of the bench and a check of chaos count the same answers
the same way: a latency runs from just before the request is sent (with the connection's
setup, when it needs one) to the whole answer read.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ops.client import Credentials, send_message


@dataclass
class Entry:
    """One request of the ledger and what its client received."""

    message: str
    sent_at: float  # wall clock, to compare with the database's timestamps
    seconds: float = 0.0
    status: int = 0  # 0: no HTTP answer at all
    body: Any = None  # the answer's JSON; its text when it is not JSON
    retry_after: str | None = None
    error: str = ""  # why there was no answer

    @property
    def pause(self) -> float | None:
        """The ``Retry-After`` in seconds, when it is one a client can obey (else None)."""
        try:
            seconds = float(self.retry_after or "")
        except ValueError:
            return None
        return seconds if 0 <= seconds < float("inf") else None


@dataclass
class Ledger:
    entries: list[Entry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: Entry) -> None:
        with self.lock:
            self.entries.append(entry)


def send(connection: http.client.HTTPConnection, message: str, credentials: Credentials) -> Entry:
    """``message`` relayed on ``connection``: what came back, and how long it took."""
    entry = Entry(message=message, sent_at=time.time())
    started = time.perf_counter()
    try:
        reply = send_message(connection, message, credentials)
    except (OSError, http.client.HTTPException) as exc:
        entry.error = f"{type(exc).__name__}: {exc}"
    else:
        entry.status, entry.retry_after = reply.status, reply.headers.get("Retry-After")
        try:
            entry.body = reply.json()
        except ValueError:  # a proxy's page, say: the caller decides what it counts as
            entry.body = reply.body.decode(errors="replace")
    entry.seconds = time.perf_counter() - started
    return entry


class Load:
    """Client threads, each on a connection of its own, each sending the messages it is given
    one after the other until they run out or ``stop`` is set; every request in ``ledger``.

    After a request that got no answer a client waits ``reconnect_pause`` (a refused connection
    fails at once: many clients retrying in a tight loop would take the machine's CPU from the
    stack) and connects anew; with ``obey_retry_after`` it waits as a 503's ``Retry-After``
    asks, then on a new connection too (the server may have closed the idle one meanwhile).
    A wait ends early when ``stop`` is set.
    """

    def __init__(
        self,
        address: str,
        credentials: Credentials,
        *,
        timeout: float,
        reconnect_pause: float = 0.0,
        obey_retry_after: bool = False,
    ) -> None:
        host, port = address.rsplit(":", 1)
        self.address, self.timeout = (host, int(port)), timeout
        self.credentials, self.reconnect_pause = credentials, reconnect_pause
        self.obey_retry_after = obey_retry_after
        self.ledger, self.stop = Ledger(), threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, clients: int, messages: Callable[[int], Iterable[str]]) -> None:
        """``clients`` threads; client ``n`` sends ``messages(n)``."""
        self.threads += [
            threading.Thread(target=self._client, args=(messages(n),), daemon=True)
            for n in range(clients)
        ]
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float | None = None) -> list[Entry]:
        for thread in self.threads:
            thread.join(timeout)
        return self.ledger.entries

    def _client(self, messages: Iterable[str]) -> None:
        connection: http.client.HTTPConnection | None = None
        for message in messages:
            if self.stop.is_set():
                break
            if connection is None:
                connection = http.client.HTTPConnection(*self.address, timeout=self.timeout)
            entry = send(connection, message, self.credentials)
            self.ledger.add(entry)
            pause = self.reconnect_pause if entry.status == 0 else 0.0
            if self.obey_retry_after and entry.status == 503:
                pause = entry.pause or 0.0
            if entry.status == 0 or pause:
                connection.close()
                connection = None
            if pause:
                self.stop.wait(pause)
        if connection is not None:
            connection.close()
