"""The stack's local trace collector, and the reader behind ``make trace``.

``python -m ops.traces collect --address HOST:PORT --file PATH`` takes OTLP over HTTP (what
the relay's processes export with ``OTEL_TRACES_EXPORTER=otlp``, protobuf, gzip or not) and
appends every span to ``PATH`` as one JSON object a line. It stands in for a real collector
(Jaeger, Tempo, the OpenTelemetry Collector) on a machine that has none; point
``OTEL_EXPORTER_OTLP_ENDPOINT`` at one of those instead and the relay needs nothing else.

``python -m ops.traces show [TRANSACTION_ID]`` prints a transaction's trace (by default the
last transaction's) as an indented tree, each span with its process and duration.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import ssl
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACES_PATH = "/v1/traces"
MAX_BODY_BYTES = 16 * 1024 * 1024
# The file starts over (the previous one kept as .1) past this size.
MAX_FILE_BYTES = 64 * 1024 * 1024
TRANSACTION_ATTRIBUTE = "relay.transaction_id"
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


# --- spans as JSON lines -----------------------------------------------------------------------


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(each) for each in value.array_value.values]
    if kind == "kvlist_value":
        return {each.key: _value(each.value) for each in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def spans_of(request: ExportTraceServiceRequest) -> Iterator[dict[str, Any]]:
    """Each span of an OTLP export, flat: its ids, process, times, attributes and links."""
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "name": span.name,
                    "kind": _KINDS.get(span.kind, str(span.kind)),
                    "service": resource.get("service.name", "?"),
                    "pid": resource.get("process.pid"),
                    "scope": scope_spans.scope.name,
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "status": {0: "unset", 1: "ok", 2: "error"}.get(span.status.code, "?"),
                    "status_message": span.status.message or None,
                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                    "links": [
                        {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                        for link in span.links
                    ],
                }


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Every span the collector wrote to ``path`` (and its previous file), oldest first."""
    spans: list[dict[str, Any]] = []
    for each in (path.with_name(path.name + ".1"), path):
        if each.exists():
            with each.open(encoding="utf-8") as lines:
                spans += [json.loads(line) for line in lines if line.endswith("\n")]
    return spans


# --- the collector -----------------------------------------------------------------------------


class _Sink:
    """Appends spans to the file, one writer at a time, starting over past its size limit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, spans: Iterable[dict[str, Any]]) -> int:
        lines = [json.dumps(span, separators=(",", ":")) + "\n" for span in spans]
        with self.lock:
            if self.path.exists() and self.path.stat().st_size > MAX_FILE_BYTES:
                self.path.replace(self.path.with_name(self.path.name + ".1"))
            with self.path.open("a", encoding="utf-8") as file:
                file.writelines(lines)
        return len(lines)


class _Handler(BaseHTTPRequestHandler):
    server_version = "relay-trace-collector"
    sink: _Sink

    def do_GET(self) -> None:
        self._answer(200, b"relay's local trace collector: POST OTLP to /v1/traces\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?")[0] != TRACES_PATH:
            self._answer(404, b"only /v1/traces is collected here\n", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(413, b"export larger than 16 MB\n", "text/plain")
            return
        body = self.rfile.read(length)
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            if not self.headers.get("Content-Type", "").startswith("application/x-protobuf"):
                raise ValueError("send application/x-protobuf (OTLP/HTTP's protobuf encoding)")
            request = ExportTraceServiceRequest.FromString(body)
        except (OSError, ValueError, EOFError, DecodeError) as exc:
            self._answer(400, f"not an OTLP trace export: {exc}\n".encode(), "text/plain")
            return
        self.sink.write(spans_of(request))
        reply = ExportTraceServiceResponse().SerializeToString()
        self._answer(200, reply, "application/x-protobuf")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Only what went wrong: every export would be a line a second per process."""
        if args and str(args[1]).startswith(("4", "5")):
            super().log_message(format, *args)


def collector(
    address: str, path: Path, *, certfile: str = "", keyfile: str = ""
) -> ThreadingHTTPServer:
    """The collector's server, bound to ``address`` (port 0: any free one), not yet serving."""
    host, _, port = address.rpartition(":")
    handler = type("Handler", (_Handler,), {"sink": _Sink(path), "timeout": 30})
    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), handler)
    server.daemon_threads = True
    if certfile:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(certfile, keyfile or None)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    return server


def collect(address: str, path: Path, *, certfile: str = "", keyfile: str = "") -> None:
    server = collector(address, path, certfile=certfile, keyfile=keyfile)
    scheme = "https" if certfile else "http"
    print(f"[traces] collecting OTLP on {scheme}://{address}{TRACES_PATH} into {path}", flush=True)
    server.serve_forever()


# --- the reader --------------------------------------------------------------------------------


def trace_of(spans: list[dict[str, Any]], transaction_id: str | None) -> list[dict[str, Any]]:
    """The spans of the trace of ``transaction_id``, or of the last transaction traced."""
    tagged = [s for s in spans if s["attributes"].get(TRANSACTION_ATTRIBUTE)]
    if transaction_id:
        tagged = [s for s in tagged if s["attributes"][TRANSACTION_ATTRIBUTE] == transaction_id]
    if not tagged:
        return []
    trace_id = max(tagged, key=lambda s: s["start_ns"])["trace_id"]
    return [s for s in spans if s["trace_id"] == trace_id]


def tree(spans: list[dict[str, Any]]) -> list[str]:
    """One line a span, children indented under their parent, in the order they started."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children[parent].append(span)
    start = min(s["start_ns"] for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children[parent], key=lambda s: s["start_ns"]):
            ms = (span["end_ns"] - span["start_ns"]) / 1e6
            at = (span["start_ns"] - start) / 1e6
            failed = (
                f"  ERROR {span['status_message'] or ''}".rstrip()
                if span["status"] == "error"
                else ""
            )
            label = f"{'  ' * depth}{span['name']}"
            lines.append(f"{label:<58} {span['service']:<13} +{at:8.1f} ms {ms:8.1f} ms{failed}")
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return lines


def show(path: Path, transaction_id: str | None, *, wait: float) -> int:
    """Print the trace; wait up to ``wait`` seconds for its spans to arrive (processes export
    in batches, every half second on the local stack)."""
    deadline = time.monotonic() + wait
    spans: list[dict[str, Any]] = []
    while True:
        spans = trace_of(read_spans(path), transaction_id) if path.exists() else []
        settled = spans and any(s["parent_span_id"] is None for s in spans)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if not spans:
        what = f"transaction {transaction_id}" if transaction_id else "any transaction"
        print(
            f"no trace of {what} in {path}: is the stack up with tracing on"
            " (make up; then make demo)?",
            file=sys.stderr,
        )
        return 1
    first = spans[0]
    transaction = next(
        s["attributes"][TRANSACTION_ATTRIBUTE]
        for s in spans
        if s["attributes"].get(TRANSACTION_ATTRIBUTE)
    )
    services = sorted({s["service"] for s in spans})
    print(f"trace {first['trace_id']}  transaction {transaction}")
    print(f"{len(spans)} spans from {', '.join(services)}\n")
    print("\n".join(tree(spans)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.traces", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    collector = commands.add_parser("collect", help="serve OTLP/HTTP, append spans to a file")
    collector.add_argument("--address", required=True, help="host:port to listen on")
    collector.add_argument("--file", required=True, type=Path, help="the JSON-lines file")
    collector.add_argument("--certfile", default="", help="serve HTTPS with this certificate")
    collector.add_argument("--keyfile", default="", help="... and this key")
    reader = commands.add_parser("show", help="print a transaction's trace as a tree")
    reader.add_argument("transaction_id", nargs="?", help="default: the last one traced")
    reader.add_argument(
        "--file", type=Path, help="the collector's file (default: RELAY_TRACES_FILE's)"
    )
    reader.add_argument("--wait", type=float, default=5.0, help="seconds to wait for spans")
    args = parser.parse_args(argv)
    if args.command == "collect":
        try:
            collect(args.address, args.file, certfile=args.certfile, keyfile=args.keyfile)
        except KeyboardInterrupt:
            return 0
        return 0
    return show(args.file or _settings_file(), args.transaction_id, wait=args.wait)


def _settings_file() -> Path:
    """Where the stack's collector writes, by the profile's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.development")
    from django.conf import settings

    return Path(settings.RELAY_TRACES_FILE)


if __name__ == "__main__":
    sys.exit(main())
