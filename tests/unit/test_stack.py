"""The stack runner: every port is checked before anything starts, and a port in use is
reported with the setting that moves its process."""

import socket

from django.conf import settings
from django.test import SimpleTestCase, override_settings

from ops.stack import Stack, StackError


class StackTests(SimpleTestCase):
    def test_every_busy_port_is_named_with_its_setting_before_anything_starts(self) -> None:
        with socket.socket() as web, socket.socket() as grpc_server:
            for squatter in (web, grpc_server):
                squatter.bind(("127.0.0.1", 0))
                squatter.listen()
            web_port, grpc_port = web.getsockname()[1], grpc_server.getsockname()[1]
            with override_settings(
                RELAY_HTTP_ADDRESS=f"127.0.0.1:{web_port}", GRPC_ADDRESS=f"127.0.0.1:{grpc_port}"
            ):
                stack = Stack(var_dir=settings.RELAY_VAR_DIR / "stack-test")
            with self.assertRaises(StackError) as raised:
                stack.up()
        message = str(raised.exception)
        self.assertIn(f"127.0.0.1:{web_port} (web; move it with RELAY_HTTP_ADDRESS)", message)
        self.assertIn(f"127.0.0.1:{grpc_port} (grpc; move it with GRPC_ADDRESS)", message)
        self.assertEqual(stack.status(), dict.fromkeys(stack.processes))  # nothing started

    def test_processes_start_after_what_they_wait_for_and_stop_before_it(self) -> None:
        stack = Stack(var_dir=settings.RELAY_VAR_DIR / "stack-test")
        order = stack.start_order()
        for name, process in stack.processes.items():
            for before in process.after:
                self.assertLess(order.index(before), order.index(name), (before, name))

    def test_the_cluster_profile_is_more_rows_of_the_same_table(self) -> None:
        with override_settings(
            KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096",
            GRPC_ADDRESS="127.0.0.1:50051,127.0.0.1:50052",
            RELAY_GRPC_SERVERS=2,
            RELAY_GRPC_METRICS_ADDRESS="127.0.0.1:9474,127.0.0.1:9475",
            RELAY_WORKERS=2,
            RELAY_WORKER_METRICS_ADDRESS="127.0.0.1:9464,127.0.0.1:9465",
            RELAY_WEB_SERVERS=2,
            RELAY_HTTP_ADDRESS="127.0.0.1:8000",
        ):
            stack = Stack(var_dir=settings.RELAY_VAR_DIR / "stack-test")
        processes, order = stack.processes, stack.start_order()
        controllers = [f"kafka-controller-{n}" for n in (1, 2, 3)]
        brokers = [f"kafka-{n}" for n in (1, 2, 3)]
        self.assertEqual(
            set(processes),
            {"redis", *controllers, *brokers, "grpc-1", "grpc-2", "worker-1", "worker-2"}
            | {"web-1", "web-2", "proxy", "traces"},
        )
        # The controllers form the quorum first; each listens on the port after its broker's.
        self.assertLess(max(map(order.index, controllers)), min(map(order.index, brokers)))
        self.assertEqual(processes["kafka-controller-2"].ports, [("127.0.0.1", 9095)])
        self.assertEqual(processes["kafka-2"].ports, [("127.0.0.1", 9094)])
        # One scheduler among the workers; the proxy on the front port, the web servers after it.
        self.assertIn("--beat", processes["worker-1"].command)
        self.assertNotIn("--beat", processes["worker-2"].command)
        self.assertEqual(processes["proxy"].ports, [("127.0.0.1", 8000)])
        self.assertEqual(processes["web-2"].ports, [("127.0.0.1", 8002)])
        self.assertLess(order.index("web-2"), order.index("proxy"))
