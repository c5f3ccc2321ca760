"""One trace per transaction, through the real stack: the client's span (an in-memory exporter,
in this process), then the web server, the Celery worker and the gRPC server, whose spans
reach the stack's own Zipkin and are read back through its API (ops/traces.py)."""

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import requests
from django.conf import settings
from django.test import TransactionTestCase
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from relay.v1 import relay_pb2

from ops.traces import spans_of, tree
from relay_app.grpc_server import RelayServicer, build_server
from relay_app.hops import Stage
from relay_app.integrations.relay_api import Answer
from relay_app.models import Transaction

from ..support import service_stopped, user_with_token, web

Span = dict[str, Any]
TRANSACTION = "relay.transaction_id"
# Where each hop is performed.
HOP_SERVICES = {
    Stage.REST_REQUEST: "relay-web",
    Stage.KAFKA_PUBLISH_REQUEST: "relay-worker",
    Stage.KAFKA_CONSUME_REQUEST: "relay-worker",
    Stage.GRPC_CLIENT: "relay-worker",
    Stage.GRPC_SERVER: "relay-grpc",
    Stage.KAFKA_PUBLISH_REPLY: "relay-worker",
    Stage.KAFKA_CONSUME_REPLY: "relay-worker",
    Stage.REST_RESPONSE: "relay-web",
}


class SlowerThanTheDeadline(RelayServicer):
    """Hop 5, done only after the relay's deadline has passed."""

    def Process(  # noqa: N802 - the proto's name
        self, request: relay_pb2.ProcessRequest, context: grpc.ServicerContext
    ) -> relay_pb2.ProcessResponse:
        time.sleep(settings.RELAY_DEADLINE_SECONDS + 1)
        return super().Process(request, context)


class TracingTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("traced")
        self.exporter = InMemorySpanExporter()
        # Sampled: the stack traces only what a client asks it to (settings/test.py).
        provider = TracerProvider(sampler=ALWAYS_ON)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("tests")

    def relay(self, message: str, **extra: str) -> tuple[Answer, str, str]:
        """Relay ``message`` inside a client span whose context the request carries (with
        ``extra`` headers); the answer, the trace id and the client span's id."""
        with self.tracer.start_as_current_span("client relays", kind=SpanKind.CLIENT) as span:
            headers: dict[str, str] = dict(extra)
            inject(headers)
            answer = web(self.token).relay(message, headers=headers)
        context = span.get_span_context()
        self.assertEqual([s.name for s in self.exporter.get_finished_spans()], ["client relays"])
        return answer, format_trace_id(context.trace_id), format_span_id(context.span_id)

    def spans(self, trace_id: str, done: Callable[[list[Span]], bool]) -> list[Span]:
        """The trace's spans Zipkin has, once ``done`` says all expected arrived."""
        deadline = time.monotonic() + 15
        while True:
            spans = spans_of(trace_id, zipkin=settings.ZIPKIN_ADDRESS)
            if done(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.2)

    def assert_one_tree(self, spans: list[Span], *, client_span: str, transaction_id: str) -> Span:
        """Every span hangs off the client's: one root, the web's request, child of the
        client span; no span names a parent outside the trace. Returns the root."""
        ids = {s["span_id"] for s in spans}
        roots = [s for s in spans if s["parent_span_id"] not in ids]
        self.assertEqual(len(roots), 1, [s["name"] for s in roots])
        root = roots[0]
        self.assertEqual(root["parent_span_id"], client_span)
        self.assertEqual((root["service"], root["kind"]), ("relay-web", "server"))
        self.assertEqual(root["attributes"][TRANSACTION], transaction_id)
        # Every span the worker and the gRPC server made says which transaction it served.
        for span in spans:
            if span["service"] != "relay-web":
                self.assertEqual(span["attributes"].get(TRANSACTION), transaction_id, span)
        return root

    def complete(self, spans: list[Span]) -> bool:
        """All eight hops are there, and the web's request, which ends last."""
        return len(self.hops(spans)) == 8 and any(
            (s["service"], s["kind"]) == ("relay-web", "server") for s in spans
        )

    def hops(self, spans: list[Span]) -> dict[Stage, Span]:
        return {
            Stage[s["attributes"]["relay.stage"].upper()]: s
            for s in spans
            if "relay.stage" in s["attributes"]
        }

    def parent(self, spans: list[Span], span: Span) -> Span:
        return next(s for s in spans if s["span_id"] == span["parent_span_id"])

    def ancestors(self, spans: list[Span], span: Span) -> list[Span]:
        found = []
        while span["parent_span_id"] in {s["span_id"] for s in spans}:
            span = self.parent(spans, span)
            found.append(span)
        return found

    def test_a_succeeded_transaction_is_one_trace_over_eight_hops_and_four_processes(
        self,
    ) -> None:
        answer, trace_id, client_span = self.relay("traced")
        self.assertEqual(answer.status, 200, answer.body)
        transaction_id = answer.body["transaction_id"]
        # The trace id: in the answer, its traceparent header, and on the record.
        self.assertEqual(answer.body["trace_id"], trace_id)
        self.assertRegex(answer.headers["traceparent"], rf"^00-{trace_id}-[0-9a-f]{{16}}-0[13]$")
        self.assertEqual(Transaction.objects.get(id=transaction_id).trace_id, trace_id)
        # ... and a link to it in the stack's Zipkin, whose UI opens it.
        link = answer.body["trace_url"]
        self.assertEqual(link, f"http://{settings.ZIPKIN_ADDRESS}/zipkin/traces/{trace_id}")
        page = requests.get(link, timeout=5)
        self.assertEqual(page.status_code, 200)
        self.assertIn("text/html", page.headers["Content-Type"])

        spans = self.spans(trace_id, self.complete)
        root = self.assert_one_tree(spans, client_span=client_span, transaction_id=transaction_id)
        self.assertEqual(root["attributes"].get("http.status_code"), "200")
        hops = self.hops(spans)
        self.assertEqual(sorted(hops), list(Stage))
        for stage, span in hops.items():
            self.assertEqual(span["service"], HOP_SERVICES[stage], stage)
            self.assertEqual(span["status"], "unset", span)
        starts = [hops[stage]["start_ns"] for stage in Stage]
        self.assertEqual(starts, sorted(starts), "the hops' spans start in the hops' order")
        # Four processes: this client, the web server, the worker, the gRPC server.
        self.assertEqual({s["service"] for s in spans}, {"relay-web", "relay-worker", "relay-grpc"})

        # Each Celery task ran under the span that published it, in another process.
        runs = [s for s in spans if s["name"].startswith("run/")]
        self.assertEqual(len(runs), 5, [s["name"] for s in runs])
        for run in runs:
            published = self.parent(spans, run)
            self.assertEqual(published["kind"], "producer")
            self.assertEqual(published["name"], run["name"].replace("run/", "apply_async/"))
        # Hop 5 ran under the gRPC server's span, which the worker's call is the parent of,
        # made by hop 4.
        server = self.parent(spans, hops[Stage.GRPC_SERVER])
        self.assertEqual((server["service"], server["kind"]), ("relay-grpc", "server"))
        call = self.parent(spans, server)
        self.assertEqual((call["service"], call["kind"]), ("relay-worker", "client"))
        self.assertIn(hops[Stage.GRPC_CLIENT], self.ancestors(spans, call))
        # Each produce, then the read-back of that very record by its coordinates.
        recorded = {hop["position"]: hop["kafka"] for hop in answer.body["hops"]}
        for publish, consume in [
            (Stage.KAFKA_PUBLISH_REQUEST, Stage.KAFKA_CONSUME_REQUEST),
            (Stage.KAFKA_PUBLISH_REPLY, Stage.KAFKA_CONSUME_REPLY),
        ]:
            sends = [
                s
                for s in spans
                if s["kind"] == "producer" and hops[publish] in self.ancestors(spans, s)
            ]
            receives = [
                s
                for s in spans
                if s["kind"] == "consumer"
                and s["name"].endswith(" receive")
                and hops[consume] in self.ancestors(spans, s)
            ]
            self.assertEqual(len(sends), 1, publish)
            self.assertEqual(len(receives), 1, consume)
            tags = receives[0]["attributes"]
            read = recorded[consume]
            self.assertEqual(tags["messaging.destination.name"], read["topic"])
            self.assertEqual(tags["messaging.destination.partition.id"], str(read["partition"]))
            self.assertEqual(tags["messaging.kafka.offset"], str(read["offset"]))
            self.assertLess(sends[0]["start_ns"], receives[0]["start_ns"])
        # The web waited for the chain under a span of its own, then did hop 8.
        wait = next(s for s in spans if s["name"] == "wait for the chain")
        self.assertEqual(self.parent(spans, hops[Stage.REST_RESPONSE]), root)
        self.assertLessEqual(wait["end_ns"], hops[Stage.REST_RESPONSE]["start_ns"])

        # make trace's tree shows it, hop by hop.
        printed = "\n".join(tree(spans))
        for stage in Stage:
            self.assertIn(f"hop {int(stage)} {stage.slug}", printed)

    def test_an_asynchronous_relay_is_one_trace_too_its_last_hop_in_the_worker(self) -> None:
        answer, trace_id, client_span = self.relay("traced, not waited for", Prefer="respond-async")
        self.assertEqual(answer.status, 202, answer.body)
        self.assertEqual(answer.body["trace_id"], trace_id)
        transaction_id = answer.body["transaction_id"]

        spans = self.spans(trace_id, self.complete)
        root = self.assert_one_tree(spans, client_span=client_span, transaction_id=transaction_id)
        self.assertEqual(root["attributes"].get("http.status_code"), "202")
        hops = self.hops(spans)
        self.assertEqual(sorted(hops), list(Stage))
        # Nobody waits in the web: the chain's last task does hop 8.
        self.assertEqual(hops[Stage.REST_RESPONSE]["service"], "relay-worker")
        self.assertEqual(self.parent(spans, hops[Stage.REST_RESPONSE])["name"], "run/relay.respond")
        self.assertFalse(any(s["name"] == "wait for the chain" for s in spans))
        self.assertEqual(
            Transaction.objects.get(id=transaction_id).status, Transaction.Status.SUCCEEDED
        )

    def test_a_failed_transaction_is_traced_to_the_hop_that_failed(self) -> None:
        with service_stopped("grpc"):
            answer, trace_id, client_span = self.relay("traced, failing")
        # Retried (each attempt a span under the hop's) until the deadline (504), or until
        # too little was left for another attempt (503).
        self.assertIn(answer.status, (503, 504), answer.body)
        transaction_id = answer.body["transaction_id"]
        self.assertEqual(answer.body["trace_id"], trace_id)
        self.assertIn(trace_id, answer.headers["traceparent"])

        # Zipkin writes span names in lower case.
        dead_letter = f"{settings.KAFKA_REQUEST_TOPIC}.DLT dead letter".lower()
        spans = self.spans(
            trace_id,
            lambda found: (
                Stage.GRPC_CLIENT in self.hops(found)
                and any(s["name"] == dead_letter for s in found)
            ),
        )
        root = self.assert_one_tree(spans, client_span=client_span, transaction_id=transaction_id)
        self.assertEqual(root["attributes"].get("http.status_code"), str(answer.status))
        # Its dead letter, written by the worker after the answer, is in the same trace.
        [written] = [s for s in spans if s["name"] == dead_letter]
        self.assertEqual((written["service"], written["kind"]), ("relay-worker", "producer"))
        self.assertIn("messaging.kafka.offset", written["attributes"])
        hops = self.hops(spans)
        self.assertEqual(sorted(hops), [Stage(n) for n in range(1, 5)])
        self.assertEqual(hops[Stage.GRPC_CLIENT]["status"], "error")
        self.assertIn("gRPC server is unavailable", hops[Stage.GRPC_CLIENT]["status_message"])
        attempts = [s for s in spans if s["name"].endswith(" of hop 5")]
        self.assertGreaterEqual(len(attempts), 2, [s["name"] for s in spans])
        for attempt in attempts:
            self.assertEqual(
                self.parent(spans, attempt)["span_id"], hops[Stage.GRPC_CLIENT]["span_id"]
            )
            self.assertIn(attempt["attributes"]["relay.attempt.outcome"], ("failed", "timed_out"))
        # The call never left the worker: its channel knew the server was gone.
        self.assertEqual({s["service"] for s in spans}, {"relay-web", "relay-worker"})

    def test_a_timed_out_transaction_is_traced_to_the_hop_it_waited_on(self) -> None:
        # A gRPC server that takes the call and answers after the deadline. (A stopped one,
        # SIGSTOP, is not this: a channel that must connect anew gives up connecting first.)
        with service_stopped("grpc"):
            server, _ = build_server(settings.GRPC_ADDRESS, servicer=SlowerThanTheDeadline())
            server.start()
            try:
                answer, trace_id, client_span = self.relay("traced, too slow")
                # The web may answer just before the worker's call reaches its own deadline:
                # the server stays until then (stopped, it would end the call UNAVAILABLE).
                time.sleep(1.5)
            finally:
                server.stop(0).wait(10)  # its port free again before the stack's server starts
        self.assertEqual(answer.status, 504, answer.body)
        self.assertEqual(answer.body["failed_stage"], Stage.GRPC_SERVER.slug)
        transaction_id = answer.body["transaction_id"]

        def waited(found: list[Span]) -> bool:
            # The call's own span ends when gRPC's future does, apart from the hop's; an
            # earlier attempt's (UNAVAILABLE, the replaced server) may come first.
            return (
                Stage.GRPC_CLIENT in self.hops(found)
                and any(s["name"] == "wait for the chain" for s in found)
                and any(s["attributes"].get("rpc.grpc.status_code") == "4" for s in found)
            )

        spans = self.spans(trace_id, waited)
        root = self.assert_one_tree(spans, client_span=client_span, transaction_id=transaction_id)
        self.assertEqual(root["attributes"].get("http.status_code"), "504")
        hops = self.hops(spans)
        self.assertEqual(hops[Stage.GRPC_CLIENT]["status"], "error")
        self.assertNotIn(Stage.REST_RESPONSE, hops)
        # The client's deadline, carried to the gRPC call: DEADLINE_EXCEEDED (4).
        calls = [s for s in spans if s["kind"] == "client" and s["service"] == "relay-worker"]
        self.assertTrue(
            any(s["attributes"].get("rpc.grpc.status_code") == "4" for s in calls),
            json.dumps(calls, indent=1),
        )
        wait = next(s for s in spans if s["name"] == "wait for the chain")
        self.assertEqual(self.parent(spans, wait), root)
