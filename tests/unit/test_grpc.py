"""gRPC in this process, a real server on a free port: the server's hop, health, reflection
and what it refuses (a call without a worker's capability first); the relay's client
(relay_app/integrations/relay_rpc.py) against it."""

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from django.conf import settings
from django.test import SimpleTestCase, override_settings
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from relay.v1 import relay_pb2, relay_pb2_grpc

from relay_app.errors import DependencyUnavailable
from relay_app.grpc_server import RelayServicer, build_server
from relay_app.hops import Stage, max_text_length
from relay_app.integrations import relay_rpc
from relay_app.integrations.relay_rpc import SERVICE_NAME

from ..support import transaction_log_lines

# The longest text that can reach the gRPC server: the longest message after hops 1 to 4.
LONGEST = max_text_length(settings.RELAY_MESSAGE_MAX_LENGTH, after=Stage.GRPC_CLIENT)


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@contextmanager
def serving(servicer: RelayServicer | None = None) -> Iterator[str]:
    """A relay gRPC server in this process for the block; yields its address."""
    address = free_address()
    server, _ = build_server(address, servicer=servicer)
    server.start()
    try:
        yield address
    finally:
        server.stop(0)


class SlowServicer(RelayServicer):
    """Answers only after a client with a short deadline has given up."""

    def Process(  # noqa: N802 - the proto's name
        self, request: relay_pb2.ProcessRequest, context: grpc.ServicerContext
    ) -> relay_pb2.ProcessResponse:
        time.sleep(1.0)
        return super().Process(request, context)


class GrpcServerTests(SimpleTestCase):
    def setUp(self) -> None:
        self.channel = grpc.insecure_channel(self.enterContext(serving()))
        self.addCleanup(self.channel.close)

    def process(
        self,
        transaction_id: str,
        text: str,
        *,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> relay_pb2.ProcessResponse:
        """Call the server, by default with the capability a worker would send."""
        if metadata is None:
            metadata = relay_rpc.capability(
                transaction_id=transaction_id, text=text, deadline=time.time() + 5
            )
        stub = relay_pb2_grpc.RelayStub(self.channel)
        request = relay_pb2.ProcessRequest(transaction_id=transaction_id, text=text)
        reply: relay_pb2.ProcessResponse = stub.Process(request, timeout=5, metadata=metadata)
        return reply

    def assert_refused(
        self,
        transaction_id: str,
        text: str,
        code: grpc.StatusCode,
        *,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> str:
        with self.assertRaises(grpc.RpcError) as raised:
            self.process(transaction_id, text, metadata=metadata)
        error = raised.exception
        self.assertEqual(error.code(), code, error.details())
        return str(error.details())

    def test_process_appends_the_server_hop_and_reports_its_timing(self) -> None:
        reply = self.process(str(uuid.uuid4()), "ping and gRPC client")
        self.assertEqual(reply.text, "ping and gRPC client and gRPC server")
        self.assertLessEqual(reply.started_at.ToNanoseconds(), reply.finished_at.ToNanoseconds())
        self.assertGreater(reply.started_at.seconds, 0)

    def test_the_longest_text_the_relay_can_send_is_taken(self) -> None:
        reply = self.process(str(uuid.uuid4()), "é" * LONGEST)
        self.assertEqual(len(reply.text), LONGEST + len(" and gRPC server"))

    def test_what_the_relay_could_not_have_sent_is_refused_and_logs_nothing(self) -> None:
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        cases = [
            ("no text", str(uuid.uuid4()), "", invalid, "text is required"),
            ("an id that is no UUID", "t-1", "ping", invalid, "UUID"),
            ("an empty id", "", "ping", invalid, "UUID"),
            ("a UUID in braces", f"{{{uuid.uuid4()}}}", "ping", invalid, "canonical"),
            ("an uppercase UUID", str(uuid.uuid4()).upper(), "ping", invalid, "canonical"),
            ("a text too long", str(uuid.uuid4()), "x" * (LONGEST + 1), invalid, "at most"),
            # Larger than the server reads at all: refused before it is even parsed.
            (
                "a message too large",
                str(uuid.uuid4()),
                "é" * (4 * LONGEST),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "",
            ),
        ]
        for case, transaction_id, text, code, reason in cases:
            with self.subTest(case):
                self.assertIn(reason, self.assert_refused(transaction_id, text, code))
                if transaction_id:
                    self.assertEqual(transaction_log_lines(transaction_id, wait=0.3), [])

    def test_a_call_without_the_workers_capability_is_refused_and_logs_nothing(self) -> None:
        transaction_id, text = str(uuid.uuid4()), "ping and gRPC client"
        soon = time.time() + 5

        def proof(**changed: object) -> tuple[tuple[str, str], ...]:
            fields: dict[str, Any] = {"transaction_id": transaction_id, "text": text}
            return relay_rpc.capability(**{**fields, "deadline": soon, **changed})

        with override_settings(RELAY_GRPC_CAPABILITY_KEY="another-key-" + "k" * 32):
            another_key = proof()
        denied = grpc.StatusCode.PERMISSION_DENIED
        cases = [
            ("none", (), denied, "no relay capability"),
            ("a seal without its deadline", proof()[1:], denied, "no relay capability"),
            ("made with another key", another_key, denied, "does not match"),
            ("for another transaction", proof(transaction_id=str(uuid.uuid4())), denied, "match"),
            ("for another text", proof(text="forged and gRPC client"), denied, "match"),
            (
                "its deadline moved",
                ((relay_rpc.CAPABILITY_DEADLINE_HEADER, repr(soon + 60)), proof()[1]),
                denied,
                "match",
            ),
            (
                "expired",
                proof(deadline=time.time() - 1),
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "expired",
            ),
        ]
        for case, metadata, code, reason in cases:
            with self.subTest(case):
                details = self.assert_refused(transaction_id, text, code, metadata=metadata)
                self.assertIn(reason, details)
        # Checked first: without the capability, a bad request learns nothing more.
        self.assert_refused("t-1", "", denied, metadata=())
        self.assertEqual(transaction_log_lines(transaction_id, wait=0.3), [])
        self.assertEqual(self.process(transaction_id, text).text, text + " and gRPC server")

    def test_health_reports_serving_for_the_relay_service(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        for service in ("", SERVICE_NAME):
            with self.subTest(service=service):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)

    def test_reflection_is_off_outside_development(self) -> None:
        self.assertFalse(settings.RELAY_GRPC_REFLECTION)
        with self.assertRaises(grpc.RpcError) as raised:
            list_services(self.channel)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    @override_settings(RELAY_GRPC_REFLECTION=True)
    def test_development_serves_reflection_listing_the_relay_service(self) -> None:
        with serving() as address, grpc.insecure_channel(address) as channel:
            names = list_services(channel)
        self.assertIn(SERVICE_NAME, names)
        self.assertIn("grpc.health.v1.Health", names)


class RelayClientTests(SimpleTestCase):
    """The worker's side of hops 4 and 5: a call, a deadline, a server that is not there."""

    def call(self, *, timeout: float = 2.0) -> relay_rpc.ProcessResult:
        return relay_rpc.process(
            transaction_id=str(uuid.uuid4()),
            text="ping and gRPC client",
            timeout=timeout,
            connect_timeout=0.5,
            deadline=time.time() + timeout,
        )

    def test_a_call_returns_the_servers_text_and_timing(self) -> None:
        with serving() as address, override_settings(GRPC_ADDRESS=address):
            result = self.call()
        self.assertEqual(result.text, "ping and gRPC client and gRPC server")
        self.assertLessEqual(result.started_at, result.finished_at)

    def test_a_server_slower_than_the_deadline_is_a_deadline_not_an_outage(self) -> None:
        with (
            serving(SlowServicer()) as address,
            override_settings(GRPC_ADDRESS=address),
            self.assertRaises(relay_rpc.GrpcDeadlineExceeded),
        ):
            self.call(timeout=0.3)

    def test_no_server_is_an_outage_within_the_connect_timeout_that_names_no_address(self) -> None:
        address = free_address()
        with override_settings(GRPC_ADDRESS=address):
            started = time.monotonic()
            with self.assertRaises(DependencyUnavailable) as raised:
                self.call()
        self.assertLess(time.monotonic() - started, 1.5)
        reason = str(raised.exception)
        self.assertTrue(reason.startswith("gRPC server is unavailable: "), reason)
        self.assertNotIn(address.rpartition(":")[2], reason)  # the port: for the log only
        self.assertIn(address, raised.exception.internal)


def list_services(channel: grpc.Channel) -> set[str]:
    """What server reflection says the server serves."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return {service.name for service in reply.list_services_response.service}


class TargetTests(SimpleTestCase):
    """How GRPC_ADDRESS becomes the channel's target, which round_robin balances over."""

    def test_one_name_is_resolved_by_dns_to_every_server(self) -> None:
        self.assertEqual(relay_rpc.target("grpc:50051"), "grpc:50051")

    def test_several_addresses_of_one_family_are_listed(self) -> None:
        self.assertEqual(
            relay_rpc.target("127.0.0.1:50051, 127.0.0.1:50052"),
            "ipv4:127.0.0.1:50051,127.0.0.1:50052",
        )
        self.assertEqual(
            relay_rpc.target("[::1]:50051,[::1]:50052"), "ipv6:[::1]:50051,[::1]:50052"
        )

    def test_several_names_or_mixed_families_are_refused_with_the_reason(self) -> None:
        with self.assertRaisesMessage(ValueError, "list IP addresses, or give one name"):
            relay_rpc.target("a:50051,b:50051")
        with self.assertRaisesMessage(ValueError, "mixes IPv4 and IPv6"):
            relay_rpc.target("127.0.0.1:50051,[::1]:50051")
