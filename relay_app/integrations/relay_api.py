"""The relay's own HTTP API as a client program uses it (``manage.py relay``, the tests):
relay a message, and read a transaction's Server-Sent Events as they come.

The standard library only (``http.client``), with a timeout on every socket operation.
"""

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: its name (``hop``, ``settled``), id and data."""

    name: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


#: What ``read_events`` yields for a comment line (the server's ``: heartbeat``).
COMMENT = ServerEvent(name="", data="")


@dataclass(frozen=True)
class Answer:
    """An answer of the API: its status, headers and decoded JSON body (None if not JSON)."""

    status: int
    headers: http.client.HTTPMessage
    body: Any


def connect(base_url: str, *, timeout: float, cafile: str = "") -> http.client.HTTPConnection:
    """A connection to the web server at ``base_url`` (``http://host:port``; over https the
    server's certificate is verified, against ``cafile`` if given)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    context = ssl.create_default_context(cafile=cafile or None)
    return http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=timeout, context=context
    )


def request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request; the whole answer, its body decoded when it is JSON."""
    sent = {"Accept": "application/json", **(headers or {})}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    connection.request(method, path, payload, sent)
    response = connection.getresponse()
    raw = response.read()
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = None
    return Answer(response.status, response.headers, decoded)


def open_events(
    connection: http.client.HTTPConnection,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    last_event_id: int = 0,
) -> http.client.HTTPResponse:
    """Open an event stream; the response, to read with ``read_events`` if its status is 200."""
    sent = {"Accept": "text/event-stream", **(headers or {})}
    if last_event_id:
        sent["Last-Event-ID"] = str(last_event_id)
    connection.request("GET", path, headers=sent)
    return connection.getresponse()


def read_events(response: http.client.HTTPResponse) -> Iterator[ServerEvent]:
    """Each event of a text/event-stream as it arrives (``COMMENT`` for a comment line),
    until the server ends the stream."""
    name, event_id = "", None
    data: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n")
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
