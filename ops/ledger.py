"""The load the benchmark and the chaos runs drive, and its ledger: every request the clients
sent and what each received, counted the same way for a figure of the bench and a check of
chaos. A latency runs from just before the request is sent (with the connection's setup, when
it needs one) to the whole answer read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ops.client import Credentials
from relay_app.integrations.relay_api import RelayClient


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


def send(client: RelayClient, message: str) -> Entry:
    """``message`` relayed by ``client``: what came back, and how long it took."""
    entry = Entry(message=message, sent_at=time.time())
    started = time.perf_counter()
    try:
        answer = client.relay(message)
    except OSError as exc:  # requests' errors among them
        entry.error = f"{type(exc).__name__}: {exc}"
    else:
        entry.status, entry.retry_after = answer.status, answer.headers.get("Retry-After")
        # A body that is not JSON (a proxy's page, say): its text, for the caller to judge.
        not_json = answer.body is None and answer.raw
        entry.body = answer.raw.decode(errors="replace") if not_json else answer.body
    entry.seconds = time.perf_counter() - started
    return entry


@dataclass
class Load:
    """Client threads, each with a client (a connection) of its own, each sending its messages
    one after the other until they run out or ``stop`` is set; every request in ``entries``,
    the ledger.

    After a request that got no answer a client waits ``reconnect_pause`` (a refused connection
    fails at once: many clients retrying in a tight loop would take the machine's CPU from the
    stack); with ``obey_retry_after`` it waits as a 503's ``Retry-After`` asks. After a wait it
    connects anew (the server may have closed the idle connection), and a wait ends at ``stop``.
    """

    address: str
    credentials: Credentials
    timeout: float
    reconnect_pause: float = 0.0
    obey_retry_after: bool = False
    entries: list[Entry] = field(default_factory=list)  # list.append is atomic: no lock
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int, messages: Callable[[int], Iterable[str]]) -> None:
        """``clients`` threads; client ``n`` sends ``messages(n)``."""
        for n in range(clients):
            thread = threading.Thread(target=self._client, args=(messages(n),), daemon=True)
            self.threads.append(thread)
            thread.start()

    def join(self, timeout: float | None = None) -> list[Entry]:
        for thread in self.threads:
            thread.join(timeout)
        return self.entries

    def _client(self, messages: Iterable[str]) -> None:
        client: RelayClient | None = None
        for message in messages:
            if self.stop.is_set():
                break
            if client is None:
                client = RelayClient(
                    f"http://{self.address}",
                    token=self.credentials.token,
                    timeout=self.timeout,
                    behind_tls_proxy=self.credentials.behind_tls_proxy,
                )
            self.entries.append(entry := send(client, message))
            pause = self.reconnect_pause if entry.status == 0 else 0.0
            if self.obey_retry_after and entry.status == 503:
                pause = entry.pause or 0.0
            if entry.status == 0 or pause:
                client.close()
                client = None
                self.stop.wait(pause)
        if client is not None:
            client.close()
