"""The gRPC server the test runner started: the relay hop, health checking and reflection,
and what it refuses."""

import socket
import uuid

import grpc
from django.conf import settings
from django.test import SimpleTestCase, override_settings
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from relay.v1 import relay_pb2, relay_pb2_grpc

from relay_app.grpc_server import build_server
from relay_app.hops import Stage, max_text_length

from .support import transaction_log_lines

# The longest text that can reach the gRPC server: the longest message after hops 1 to 4.
LONGEST = max_text_length(settings.RELAY_MESSAGE_MAX_LENGTH, after=Stage.GRPC_CLIENT)


class GrpcServerTests(SimpleTestCase):
    def setUp(self) -> None:
        self.channel = grpc.insecure_channel(settings.GRPC_ADDRESS)
        self.addCleanup(self.channel.close)

    def process(self, transaction_id: str, text: str) -> relay_pb2.ProcessResponse:
        stub = relay_pb2_grpc.RelayStub(self.channel)
        request = relay_pb2.ProcessRequest(transaction_id=transaction_id, text=text)
        reply: relay_pb2.ProcessResponse = stub.Process(request, timeout=5)
        return reply

    def assert_refused(self, transaction_id: str, text: str, code: grpc.StatusCode) -> str:
        with self.assertRaises(grpc.RpcError) as raised:
            self.process(transaction_id, text)
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

    def test_health_reports_serving_for_the_relay_service(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        for service in ("", "relay.v1.Relay"):
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
        with socket.socket() as probe:  # a free port for a server of this test's own
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server, _ = build_server(f"127.0.0.1:{port}")
        server.start()
        self.addCleanup(server.stop, 0)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            names = list_services(channel)
        self.assertIn("relay.v1.Relay", names)
        self.assertIn("grpc.health.v1.Health", names)


def list_services(channel: grpc.Channel) -> set[str]:
    """What server reflection says the server serves."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return {service.name for service in reply.list_services_response.service}
