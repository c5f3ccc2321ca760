"""Tracing's configuration, sampling and off state (relay_app/tracing.py), in this process."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.checks import Tags, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings
from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import INVALID_SPAN, SpanKind

from relay_app import tracing
from relay_app.hops import Stage

from .test_settings import SECURE_TRANSPORT

# The tracing settings as an environment without any OTEL_* variable gives them.
UNSET = {
    "OTEL_SDK_DISABLED": False,
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:4318/v1/traces",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "http://localhost:9411/api/v2/spans",
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    "OTEL_TRACES_SAMPLER_ARG": "1.0",
}


@contextmanager
def otel(**values: object) -> Iterator[None]:
    """The tracing settings with these values alone (the test settings set some)."""
    with override_settings(**{**UNSET, **values}):
        yield


class ConfigurationTests(SimpleTestCase):
    def test_off_unless_an_exporter_is_named(self) -> None:
        off: list[dict[str, object]] = [
            {},
            {"OTEL_TRACES_EXPORTER": "none"},
            {"OTEL_SDK_DISABLED": True},
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": True},
        ]
        for values in off:
            with self.subTest(values), otel(**values):
                self.assertIsNone(tracing.exporter_name())
        for name in ("zipkin_json", "otlp", "console"):
            with self.subTest(name), otel(OTEL_TRACES_EXPORTER=name):
                self.assertEqual(tracing.exporter_name(), name)

    def test_what_it_cannot_honour_is_refused_with_the_reason(self) -> None:
        cases = {
            "zipkin": ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
            "a ratio above 1": (
                {
                    "OTEL_TRACES_EXPORTER": "otlp",
                    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": "10",
                },
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            "OTLP over gRPC": (
                {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
                "http/protobuf",
            ),
        }
        for case, (variables, named) in cases.items():
            with self.subTest(case), otel(**variables):
                with self.assertRaisesMessage(ImproperlyConfigured, named):
                    tracing.exporter_name()
                ids = {message.id for message in run_checks()}
                self.assertIn("relay.E006", ids)

    def test_the_exporter_sends_its_own_certificate_where_it_has_one(self) -> None:
        with override_settings(
            OTEL_EXPORTER_ZIPKIN_ENDPOINT="https://127.0.0.1:9411/api/v2/spans",
            OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE="/tls/ca.pem",
            OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE="/tls/worker.pem",
            OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY="/tls/worker-key.pem",
        ):
            exporter = tracing._exporter("zipkin_json")
        self.assertEqual(exporter.session.verify, "/tls/ca.pem")
        self.assertEqual(exporter.session.cert, ("/tls/worker.pem", "/tls/worker-key.pem"))
        with override_settings(OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE=""):
            self.assertIsNone(tracing._exporter("zipkin_json").session.cert)


@override_settings(RELAY_ENVIRONMENT="production", **SECURE_TRANSPORT)
class ProductionCheckTests(SimpleTestCase):
    def test_spans_to_another_host_in_plaintext_fail_the_check(self) -> None:
        def fired(**values: str) -> bool:
            with otel(**values):
                return "relay.E005" in {m.id for m in run_checks(tags=[Tags.security])}

        self.assertTrue(
            fired(
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://otel:4318/v1/traces",
            )
        )
        self.assertTrue(
            fired(
                OTEL_TRACES_EXPORTER="zipkin_json",
                OTEL_EXPORTER_ZIPKIN_ENDPOINT="http://zipkin:9411/api/v2/spans",
            )
        )
        self.assertTrue(
            fired(
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://collector.example/v1/traces",
            )
        )
        self.assertFalse(
            fired(
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://otel:4318/v1/traces",
            )
        )
        self.assertFalse(
            fired(
                OTEL_TRACES_EXPORTER="zipkin_json",
                OTEL_EXPORTER_ZIPKIN_ENDPOINT="http://127.0.0.1:9411/api/v2/spans",
            )
        )
        self.assertFalse(fired(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://otel:4318/v1/traces"))


class SpanTests(SimpleTestCase):
    def provider(self) -> tuple[TracerProvider, InMemorySpanExporter]:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=ParentBased(root=tracing._RequestsStartTraces()))
        provider.add_span_processor(tracing._TransactionAttribute())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider, exporter

    def test_only_requests_start_traces_and_their_children_follow(self) -> None:
        provider, exporter = self.provider()
        tracer = provider.get_tracer("test")
        # A worker's polling, and what runs under it; a request, and what runs under it.
        with (
            tracer.start_as_current_span("BRPOP", kind=SpanKind.CLIENT),
            tracer.start_as_current_span("under it"),
        ):
            pass
        with (
            tracer.start_as_current_span("POST api/relay/", kind=SpanKind.SERVER),
            tracer.start_as_current_span("LPUSH", kind=SpanKind.CLIENT),
        ):
            pass
        self.assertEqual(
            sorted(span.name for span in exporter.get_finished_spans()),
            ["LPUSH", "POST api/relay/"],
        )

    def test_a_ratio_samples_that_share_of_requests(self) -> None:
        for ratio, expected in ((0.0, 0), (1.0, 50)):
            exporter = InMemorySpanExporter()
            provider = TracerProvider(sampler=ParentBased(root=tracing._RequestsStartTraces(ratio)))
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            for _ in range(50):
                with provider.get_tracer("test").start_as_current_span(
                    "request", kind=SpanKind.SERVER
                ):
                    pass
            self.assertEqual(len(exporter.get_finished_spans()), expected, ratio)
        with otel(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1"):
            self.assertEqual(tracing._sampled_ratio(), 0.1)
        with otel(OTEL_TRACES_SAMPLER="always_on", OTEL_TRACES_SAMPLER_ARG="0.1"):
            self.assertEqual(tracing._sampled_ratio(), 1.0)

    def test_spans_under_a_transactions_baggage_carry_its_id(self) -> None:
        provider, exporter = self.provider()
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("request", kind=SpanKind.SERVER):
            token = context.attach(baggage.set_baggage(tracing.TRANSACTION_ATTRIBUTE, "t-1"))
            try:
                with tracer.start_as_current_span("hop"):
                    pass
            finally:
                context.detach(token)
        spans = {span.name: span for span in exporter.get_finished_spans()}
        self.assertEqual(spans["hop"].attributes, {tracing.TRANSACTION_ATTRIBUTE: "t-1"})
        self.assertNotIn(tracing.TRANSACTION_ATTRIBUTE, spans["request"].attributes or {})

    def test_off_every_helper_is_a_no_op(self) -> None:
        self.assertFalse(tracing.enabled())
        with tracing.hop_span(Stage.GRPC_CLIENT, "t-1") as span:
            self.assertIs(span, INVALID_SPAN)
        with tracing.transaction_traced("t-1"):
            self.assertIsNone(baggage.get_baggage(tracing.TRANSACTION_ATTRIBUTE))
        self.assertEqual(tracing.current_trace_id(), "")
        self.assertIsNone(tracing.traceparent(INVALID_SPAN))
