"""The relay's HTTP API as a program uses it: ``RelayClient``, the one client of it that
``manage.py relay``, the operations tools (demo, readiness, bench and chaos load) and the
tests share.

On ``requests``: one ``Session`` per client (keep-alive), so one client per thread, since a
``Session`` is not meant to be shared between threads. Every call has a timeout. Redirects
are answers, not followed: a client sees what the relay said. ``requests.RequestException``
(an ``OSError``) means there was no answer.
"""

import json
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import requests


@dataclass(frozen=True)
class Answer:
    """An answer of the API: its status, headers (case-insensitive), the body decoded when it
    is JSON (else None), the body as it came, and the seconds from sending to the whole
    answer read."""

    status: int
    headers: Mapping[str, str]
    body: Any
    raw: bytes
    seconds: float


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: its name (``attempt``, ``hop``, ``settled``, ``cancelled``),
    id and data."""

    name: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


#: What an ``EventStream`` yields for a comment line (the server's ``: heartbeat``).
COMMENT = ServerEvent(name="", data="")


class RelayClient:
    """A client of the relay's API at ``base_url`` (``http(s)://host:port``).

    ``token``: sent as ``Authorization: Bearer``. ``ca_file``: over HTTPS, the server's
    certificate is verified against it alone; without it, against the system's CAs (the
    environment's ``REQUESTS_CA_BUNDLE`` where set). ``timeout``: seconds to connect, and to
    wait for the server at any one moment. ``behind_tls_proxy``: the client speaks as the
    TLS-terminating proxy in front of a stack under production settings would, with
    ``X-Forwarded-Proto: https`` (such a stack trusts it and redirects plain HTTP).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        ca_file: str = "",
        timeout: float = 30.0,
        behind_tls_proxy: bool = False,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if behind_tls_proxy:
            self.session.headers["X-Forwarded-Proto"] = "https"
        # The environment (its CA bundle, proxies, .netrc) only for HTTPS without a CA of our
        # own: it would replace that CA, send loopback requests to a proxy, or a token with
        # .netrc's password; and reading it costs every request ~0.15 ms of CPU here.
        self.session.trust_env = parts.scheme == "https" and not ca_file
        if ca_file:
            self.session.verify = ca_file

    def relay(
        self,
        message: str,
        *,
        respond_async: bool = False,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """``POST /api/relay/`` with ``message``: blocking until the transaction ends, or
        answered at once (202) with ``respond_async``."""
        sent = {"Prefer": "respond-async"} if respond_async else {}
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        return self.request(
            "POST",
            "/api/relay/",
            json_body={"message": message},
            headers={**sent, **(headers or {})},
        )

    def cancel(self, transaction_id: str, *, reason: str = "") -> Answer:
        """``POST /api/transactions/<id>/cancel/``: 200 with the cancelled transaction, 409
        if it had already ended, 404 if it is not the client's to cancel. ``reason`` goes
        into the audit trail."""
        return self.request(
            "POST",
            f"/api/transactions/{transaction_id}/cancel/",
            json_body={"reason": reason} if reason else None,
        )

    def rerun(
        self,
        transaction_id: str,
        *,
        from_hop: int | None = None,
        reason: str = "",
        respond_async: bool = False,
        idempotency_key: str | None = None,
    ) -> Answer:
        """``POST /api/transactions/<id>/rerun/``: the rerun once it ended, or at once (202)
        with ``respond_async``; 409 (or 400, 403) with why it was refused."""
        sent = {"Prefer": "respond-async"} if respond_async else {}
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        body: dict[str, Any] = {"reason": reason}
        if from_hop is not None:
            body["from_hop"] = from_hop
        return self.request(
            "POST", f"/api/transactions/{transaction_id}/rerun/", json_body=body, headers=sent
        )

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> Answer:
        """``GET path``."""
        return self.request("GET", path, headers=headers)

    def post(
        self, path: str, body: bytes = b"", *, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """``POST path`` with ``body`` sent byte for byte, and no content type but one in
        ``headers``: for bodies no well-behaved client sends (the tests' bad input)."""
        return self.request("POST", path, body=body, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request; the whole answer. ``json_body`` is sent as JSON, ``body`` as it is."""
        started = time.perf_counter()
        response = self.session.request(
            method,
            self.base_url + path,
            data=body,
            json=json_body,
            headers=dict(headers or {}),
            timeout=self.timeout,
            allow_redirects=False,
        )
        raw = response.content
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        return Answer(
            response.status_code, response.headers, decoded, raw, time.perf_counter() - started
        )

    def events(
        self, path: str, *, last_event_id: int = 0, headers: Mapping[str, str] | None = None
    ) -> "EventStream":
        """Open the event stream at ``path`` (from after ``last_event_id``, if given)."""
        sent = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id:
            sent["Last-Event-ID"] = str(last_event_id)
        started = time.perf_counter()
        response = self.session.get(
            self.base_url + path,
            headers=sent,
            timeout=self.timeout,
            stream=True,
            allow_redirects=False,
        )
        return EventStream(response, started)

    def close(self) -> None:
        """Close the client's connections (a later call opens new ones)."""
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventStream:
    """An open event stream: ``status`` at once; if 200, its events as they arrive when
    iterated (``COMMENT`` for a comment line), each read within the client's timeout, until
    the server ends it; else ``answer()``, the refusal."""

    def __init__(self, response: requests.Response, started: float) -> None:
        self.response = response
        self.status = response.status_code
        self.started = started

    def answer(self) -> Answer:
        """The whole answer (for a stream refused: its JSON reason)."""
        raw = self.response.content
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        seconds = time.perf_counter() - self.started
        return Answer(self.status, self.response.headers, decoded, raw, seconds)

    def __iter__(self) -> Iterator[ServerEvent]:
        name, event_id = "", None
        data: list[str] = []
        for line in self._lines():
            if not line:
                if data:
                    yield ServerEvent(name=name or "message", data="\n".join(data), id=event_id)
                name, data = "", []
                continue
            if line.startswith(":"):
                yield COMMENT
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value

    def _lines(self) -> Iterator[str]:
        """Each line as it arrives: a chunk at a time (``chunk_size=None``), never waiting
        for more bytes than the server sent."""
        pending = b""
        for chunk in self.response.iter_content(chunk_size=None):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode("utf-8")

    def close(self) -> None:
        """Leave the stream now, also under the feet of a reader blocked on it in another
        thread (the socket is shut down, which wakes it)."""
        connection = self.response.raw.connection if self.response.raw is not None else None
        if connection is not None and connection.sock is not None:
            with suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        self.response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
