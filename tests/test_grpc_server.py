"""The gRPC server the test runner started: the relay hop, health checking and reflection."""

import grpc
from django.conf import settings
from django.test import SimpleTestCase
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from relay.v1 import relay_pb2, relay_pb2_grpc


class GrpcServerTests(SimpleTestCase):
    def setUp(self) -> None:
        self.channel = grpc.insecure_channel(settings.GRPC_ADDRESS)
        self.addCleanup(self.channel.close)

    def test_process_appends_the_server_hop_and_reports_its_timing(self) -> None:
        stub = relay_pb2_grpc.RelayStub(self.channel)
        reply = stub.Process(
            relay_pb2.ProcessRequest(transaction_id="t-1", text="ping and gRPC client"), timeout=5
        )
        self.assertEqual(reply.text, "ping and gRPC client and gRPC server")
        self.assertLessEqual(reply.started_at.ToNanoseconds(), reply.finished_at.ToNanoseconds())
        self.assertGreater(reply.started_at.seconds, 0)

    def test_process_refuses_a_request_without_text(self) -> None:
        stub = relay_pb2_grpc.RelayStub(self.channel)
        with self.assertRaises(grpc.RpcError) as raised:
            stub.Process(relay_pb2.ProcessRequest(transaction_id="t-1", text=""), timeout=5)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_health_reports_serving_for_the_relay_service(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        for service in ("", "relay.v1.Relay"):
            with self.subTest(service=service):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)

    def test_reflection_lists_the_relay_service(self) -> None:
        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {service.name for service in reply.list_services_response.service}
        self.assertIn("relay.v1.Relay", names)
        self.assertIn("grpc.health.v1.Health", names)
