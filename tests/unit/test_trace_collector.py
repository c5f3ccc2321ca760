"""The local trace collector (ops/traces.py) against OpenTelemetry's own OTLP/HTTP exporter."""

import gzip
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import requests
from django.test import SimpleTestCase
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from ops.traces import _Handler, collector, read_spans, trace_of, tree


class CollectorTests(SimpleTestCase):
    def setUp(self) -> None:
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.path = Path(folder.name) / "traces" / "spans.jsonl"
        server = collector("127.0.0.1:0", self.path)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"

    def export(self, compression: Compression) -> None:
        """Two spans of one trace, one failed, sent as the relay's processes send them."""
        session = requests.Session()
        session.trust_env = False  # loopback, whatever proxy the environment names
        exporter = OTLPSpanExporter(endpoint=self.url, compression=compression, session=session)
        provider = TracerProvider(
            resource=Resource.create({"service.name": "relay-test"}), sampler=ALWAYS_ON
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("POST api/relay/", kind=SpanKind.SERVER) as root:
            root.set_attribute("relay.transaction_id", f"t-{compression.value}")
            with tracer.start_as_current_span("hop 4 grpc_client") as hop:
                hop.set_attribute("relay.transaction_id", f"t-{compression.value}")
                hop.set_status(Status(StatusCode.ERROR, "the gRPC server is unavailable\\nmore"))
        provider.shutdown()

    def test_spans_sent_over_otlp_http_come_back_as_a_tree(self) -> None:
        for compression in (Compression.NoCompression, Compression.Gzip):
            self.export(compression)
        spans = read_spans(self.path)
        self.assertEqual(len(spans), 4)
        last = trace_of(spans, None)
        self.assertEqual({s["attributes"]["relay.transaction_id"] for s in last}, {"t-gzip"})
        root, hop = sorted(last, key=lambda s: s["start_ns"])
        self.assertEqual(
            (root["kind"], root["service"], root["parent_span_id"]), ("server", "relay-test", None)
        )
        self.assertEqual(hop["parent_span_id"], root["span_id"])
        self.assertEqual(hop["status"], "error")
        lines = tree(trace_of(spans, "t-none"))
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith("POST api/relay/ "))
        self.assertTrue(lines[1].startswith("  hop 4 grpc_client "))
        self.assertTrue(lines[1].endswith("ERROR the gRPC server is unavailable\\nmore"))

    def test_what_is_not_an_otlp_export_is_refused_and_writes_nothing(self) -> None:
        cases = {
            "another path": (self.url.replace("/v1/traces", "/v1/logs"), b"", {}, 404),
            "JSON": (self.url, b"{}", {"Content-Type": "application/json"}, 400),
            "broken gzip": (
                self.url,
                b"not gzip",
                {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
                400,
            ),
            "not protobuf": (
                self.url,
                gzip.compress(b"\\xff\\xff\\xff"),
                {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
                400,
            ),
        }
        for case, (url, body, headers, status) in cases.items():
            # The collector logs each refusal to its stderr: not to the suite's output.
            with self.subTest(case), mock.patch.object(_Handler, "log_message") as logged:
                request = urllib.request.Request(  # noqa: S310 - loopback
                    url, data=body, headers=headers, method="POST"
                )
                with self.assertRaises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
                self.assertEqual(refused.exception.code, status)
                logged.assert_called_once()
        self.assertFalse(self.path.exists())
