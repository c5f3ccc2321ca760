"""Tracing (OpenTelemetry): one trace per transaction, across the web server, the Celery
worker and the gRPC server.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter: ``zipkin_json`` (the local stacks'
own Zipkin, or yours), ``otlp`` (HTTP/protobuf, to a collector of yours) or ``console``. The
settings read the standard ``OTEL_*`` variables (``project/settings/observability.py``). Each
entry point calls ``setup`` once per process: off, nothing is instrumented and the helpers
below do nothing.

The maintained instrumentations trace the HTTP request (Django), each Celery task's publish
and run, the gRPC call on both sides, each Redis command and each Kafka produce (its context
goes into the record's headers). By hand, here: a span for each of the eight hops where it
is performed, the view's wait for the chain, and the read-back of a Kafka record by its
coordinates (``kafka_records`` links it to the produce span whose context the record
carries), which the Kafka instrumentation cannot see since it only wraps iteration.

The transaction's id goes along as W3C baggage, and every span started under it carries it
as the ``relay.transaction_id`` attribute.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, format_span_id, format_trace_id
from opentelemetry.util.types import Attributes

from .hops import Stage

TRANSACTION_ATTRIBUTE = "relay.transaction_id"
STAGE_ATTRIBUTE = "relay.stage"
ATTEMPT_ATTRIBUTE = "relay.attempt"
OUTCOME_ATTRIBUTE = "relay.attempt.outcome"
JSON_ERRORS_MIDDLEWARE = "relay_app.api.errors.JsonErrorsMiddleware"
_EXPORTERS = ("zipkin_json", "otlp", "console")

_tracer = trace.get_tracer("relay")
_enabled = False


def enabled() -> bool:
    return _enabled


def exporter_name() -> str | None:
    """The exporter the settings name; ``None``: tracing is off."""
    if settings.OTEL_SDK_DISABLED:
        return None
    name: str = settings.OTEL_TRACES_EXPORTER
    if name in ("", "none"):
        return None
    if name not in _EXPORTERS:
        raise ImproperlyConfigured(
            f"OTEL_TRACES_EXPORTER={name!r}: the relay exports with one of"
            f" {', '.join(_EXPORTERS)}, or none (off)"
        )
    protocol = settings.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
    if name == "otlp" and protocol != "http/protobuf":
        raise ImproperlyConfigured(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: the relay's OTLP exporter speaks"
            " http/protobuf (a collector's port 4318)"
        )
    _sampled_ratio()  # refuses a ratio it cannot use, now rather than at the first request
    return name


def setup(role: Literal["web", "worker", "grpc"]) -> bool:
    """Trace this process as ``relay-<role>`` (unless ``OTEL_SERVICE_NAME`` names it) if the
    environment configures an exporter; instrument what it uses. Call before Django's
    middleware is loaded (web) and before the gRPC server or channels are made."""
    global _enabled
    name = exporter_name()
    if name is None or _enabled:
        return _enabled
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, filters
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporter = ConsoleSpanExporter() if name == "console" else _exporter(name)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.OTEL_SERVICE_NAME or f"relay-{role}"}),
        sampler=ParentBased(root=_RequestsStartTraces(_sampled_ratio())),
    )
    provider.add_span_processor(_TransactionAttribute())
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=settings.OTEL_BSP_SCHEDULE_DELAY)
    )
    trace.set_tracer_provider(provider)

    untraced_grpc = filters.negate(filters.health_check())
    if role == "web":
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument(
            excluded_urls=settings.OTEL_PYTHON_DJANGO_EXCLUDED_URLS,
            request_hook=_without_query_string,
            response_hook=_traceparent_header,
        )
        # Its middleware goes first; the API's JSON errors must stay outside it, to answer
        # for what it refuses too (a Host not allowed: relay_app/api/errors.py).
        middleware = settings.MIDDLEWARE
        middleware.insert(0, middleware.pop(middleware.index(JSON_ERRORS_MIDDLEWARE)))
    if role == "grpc":
        from opentelemetry.instrumentation.grpc import GrpcInstrumentorServer

        GrpcInstrumentorServer(filter_=untraced_grpc).instrument()
    GrpcInstrumentorClient(filter_=untraced_grpc).instrument()
    CeleryInstrumentor().instrument()
    RedisInstrumentor().instrument()
    KafkaInstrumentor().instrument()
    _enabled = True
    return True


def _sampled_ratio() -> float:
    """What share of requests start a trace: ``OTEL_TRACES_SAMPLER=parentbased_traceidratio``
    (or ``traceidratio``) with ``OTEL_TRACES_SAMPLER_ARG``; all of them by default."""
    if settings.OTEL_TRACES_SAMPLER not in ("parentbased_traceidratio", "traceidratio"):
        return 1.0
    given = settings.OTEL_TRACES_SAMPLER_ARG
    try:
        ratio = float(given)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ImproperlyConfigured(f"OTEL_TRACES_SAMPLER_ARG={given!r}: a ratio from 0 to 1")
    return ratio


def _exporter(name: str) -> Any:
    """Zipkin's JSON exporter, or OTLP over HTTP, at the endpoint the settings name.

    With a CA of its own (``OTEL_EXPORTER_OTLP_CERTIFICATE``) the exporter's session verifies
    against that CA and ignores the environment: requests would otherwise verify against
    ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) where one is set, and refuse the certificate.
    With a certificate and key of its own (``OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE``,
    ``_CLIENT_KEY``), it proves who sends the spans: the local stacks' collector takes no others.
    """
    import requests

    session = requests.Session()
    if certificate := settings.OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE:
        session.trust_env = False
        session.verify = certificate
    client = settings.OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE
    client_key = settings.OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY
    if client and client_key:
        session.cert = (client, client_key)
    if name == "zipkin_json":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter(endpoint=settings.OTEL_EXPORTER_ZIPKIN_ENDPOINT, session=session)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        certificate_file=certificate or None,
        client_certificate_file=client or None,
        client_key_file=client_key or None,
        session=session,
    )


def trace_url(trace_id: str) -> str:
    """Where a person opens the trace ``trace_id`` (``RELAY_TRACE_URL``); ``""``: nowhere."""
    template: str = settings.RELAY_TRACE_URL
    return template.format(trace_id=trace_id) if template and trace_id else ""


class _RequestsStartTraces(Sampler):
    """Sample the traces that requests (HTTP or gRPC) start, ``ratio`` of them, and no other.

    Wrapped in ``ParentBased``, so it only decides for spans without a parent: the worker's
    and the web's own Redis polling, the scheduler's sweeps and the like, started by nobody's
    request, would otherwise each become a trace of one span.
    """

    def __init__(self, ratio: float = 1.0) -> None:
        self._requests = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind == SpanKind.SERVER:
            return self._requests.should_sample(parent_context, trace_id, name, kind, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "RequestsStartTraces"


class _TransactionAttribute(SpanProcessor):
    """Every span started under a transaction's baggage carries its id as an attribute."""

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        transaction_id = baggage.get_baggage(TRANSACTION_ATTRIBUTE, parent_context)
        if transaction_id:
            span.set_attribute(TRANSACTION_ATTRIBUTE, str(transaction_id))


def traceparent(span: trace.Span) -> str | None:
    """The W3C ``traceparent`` of ``span``, ``None`` if it is not being traced."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{format_trace_id(ctx.trace_id)}-{format_span_id(ctx.span_id)}-{ctx.trace_flags:02x}"


# The attributes of a request's span that may hold its query string (old and new conventions).
_URL_ATTRIBUTES = ("http.target", "http.url", "url.full")


def _without_query_string(span: trace.Span, request: Any) -> None:
    """A request's span names the path it served, never its query string: a client may put a
    token there (docs/security.md, "Logs")."""
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        if isinstance(value := attributes.get(name), str) and "?" in value:
            span.set_attribute(name, value.partition("?")[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def _traceparent_header(span: trace.Span, request: Any, response: Any) -> None:
    """The response tells its client which trace it was: a ``traceparent`` header."""
    if value := traceparent(span):
        response["traceparent"] = value


def current_trace_id() -> str:
    """The id of the trace being recorded here (32 hex digits), or ``""``."""
    ctx = trace.get_current_span().get_span_context()
    return format_trace_id(ctx.trace_id) if ctx.is_valid and ctx.trace_flags.sampled else ""


def current_transaction_id() -> str | None:
    """The transaction whose trace is being recorded here (its baggage), if any."""
    value = baggage.get_baggage(TRANSACTION_ATTRIBUTE)
    return str(value) if value else None


@contextmanager
def transaction_traced(transaction_id: str) -> Iterator[None]:
    """Everything in the block, and whatever it causes in other processes, carries
    ``transaction_id``: on the current span, and as baggage for the spans that follow."""
    if not _enabled:
        yield
        return
    trace.get_current_span().set_attribute(TRANSACTION_ATTRIBUTE, transaction_id)
    token = context.attach(baggage.set_baggage(TRANSACTION_ATTRIBUTE, transaction_id))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def span(
    name: str, attributes: Mapping[str, str | int] | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[trace.Span]:
    """A span of the relay's own, current for the block (the view's wait, for one); an
    exception marks it failed. Off: nothing is made."""
    if not _enabled:
        yield trace.INVALID_SPAN
        return
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


def hop_span(stage: Stage, transaction_id: str | None = None) -> AbstractContextManager[trace.Span]:
    """A span for hop ``stage`` where it is performed."""
    attributes: dict[str, str | int] = {STAGE_ATTRIBUTE: stage.slug, "relay.hop": int(stage)}
    if transaction_id:
        attributes[TRANSACTION_ATTRIBUTE] = transaction_id
    return span(f"hop {int(stage)} {stage.slug}", attributes)


def attempt_span(stage: Stage, number: int) -> AbstractContextManager[trace.Span]:
    """A span for one attempt of hop ``stage``, under the hop's span; ``attempt_outcome``
    says how it ended."""
    # Not ``relay.stage``: that marks the hop's own span, which this one is under.
    attributes: dict[str, str | int] = {
        "relay.attempt.stage": stage.slug,
        ATTEMPT_ATTRIBUTE: number,
    }
    return span(f"attempt {number} of hop {int(stage)}", attributes)


def attempt_outcome(current: trace.Span, outcome: str, error: str = "") -> None:
    """Mark an attempt's span with how it ended (and why, when it did not succeed)."""
    if not _enabled or not current.is_recording():
        return
    current.set_attribute(OUTCOME_ATTRIBUTE, outcome)
    if error:
        current.set_status(trace.Status(trace.StatusCode.ERROR, error))


def kafka_read_span(topic: str, partition: int, offset: int) -> AbstractContextManager[trace.Span]:
    """The read-back of one record by its coordinates: a consumer span; ``record_read`` then
    links it to the produce span the record's headers name."""
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
        "messaging.operation.type": "receive",
    }
    return span(f"{topic} receive", attributes, SpanKind.CONSUMER)


def record_read(current: trace.Span, headers: Sequence[tuple[str, bytes | None]]) -> None:
    """Link the read-back span to the span that produced the record (its ``traceparent``
    header), as OpenTelemetry's messaging conventions link a receive to its send."""
    if not _enabled or not current.is_recording():
        return
    carrier = {key: value.decode() for key, value in headers if value is not None}
    produced = trace.get_current_span(extract(carrier)).get_span_context()
    if produced.is_valid:
        current.add_link(produced, {"relay.link": "produced_by"})
