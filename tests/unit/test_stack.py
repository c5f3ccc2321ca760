"""The stack runner: every port is checked before anything starts, and a port in use is
reported with the setting that moves its process."""

import socket
from typing import Any

from django.conf import settings
from django.test import SimpleTestCase, override_settings

from ops.processes import proxy_config
from ops.stack import Stack, StackError
from relay_app.api.parsers import max_body_bytes

FILES: dict[str, Any] = {
    "pid": "nginx.pid",
    "access_log": "access.log",
    "flower": ("127.0.0.1:5555", "unix:/tmp/flower.sock"),
}


class StackTests(SimpleTestCase):
    def test_every_busy_port_is_named_with_its_setting_before_anything_starts(self) -> None:
        with socket.socket() as web, socket.socket() as grpc_server:
            for squatter in (web, grpc_server):
                squatter.bind(("127.0.0.1", 0))
                squatter.listen()
            web_port, grpc_port = web.getsockname()[1], grpc_server.getsockname()[1]
            with override_settings(
                HTTP_ADDRESS=f"127.0.0.1:{web_port}", GRPC_ADDRESS=f"127.0.0.1:{grpc_port}"
            ):
                stack = Stack(var_dir=settings.RELAY_VAR_DIR / "stack-test")
            with self.assertRaises(StackError) as raised:
                stack.up()
        message = str(raised.exception)
        self.assertIn(f"127.0.0.1:{web_port} (proxy; move it with HTTP_ADDRESS)", message)
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
            KAFKA_ADDRESS="127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096",
            GRPC_ADDRESS="127.0.0.1:50051,127.0.0.1:50052",
            RELAY_GRPC_SERVERS=2,
            RELAY_GRPC_METRICS_ADDRESS="127.0.0.1:9474,127.0.0.1:9475",
            RELAY_WORKERS=2,
            RELAY_WORKER_METRICS_ADDRESS="127.0.0.1:9464,127.0.0.1:9465",
            RELAY_WEB_SERVERS=2,
            HTTP_ADDRESS="127.0.0.1:8000",
        ):
            stack = Stack(var_dir=settings.RELAY_VAR_DIR / "stack-test")
        processes, order = stack.processes, stack.start_order()
        controllers = [f"kafka-controller-{n}" for n in (1, 2, 3)]
        brokers = [f"kafka-{n}" for n in (1, 2, 3)]
        self.assertEqual(
            set(processes),
            {"redis", *controllers, *brokers, "grpc-1", "grpc-2", "worker-1", "worker-2"}
            | {"web-1", "web-2", "proxy", "zipkin", "flower"},
        )
        # The controllers form the quorum first; each listens on the port after its broker's.
        self.assertLess(max(map(order.index, controllers)), min(map(order.index, brokers)))
        self.assertEqual(processes["kafka-controller-2"].ports, [("127.0.0.1", 9095)])
        self.assertEqual(processes["kafka-2"].ports, [("127.0.0.1", 9094)])
        # One scheduler among the workers; the proxy on the front port, the web servers after
        # it, on loopback only.
        self.assertIn("--beat", processes["worker-1"].command)
        self.assertNotIn("--beat", processes["worker-2"].command)
        self.assertEqual(processes["proxy"].ports[0], ("127.0.0.1", 8000))
        self.assertEqual(processes["web-2"].ports, [("127.0.0.1", 8002)])
        self.assertLess(order.index("web-2"), order.index("proxy"))

    def test_every_profile_has_nginx_in_front_of_gunicorn_on_loopback(self) -> None:
        with override_settings(HTTP_ADDRESS="0.0.0.0:8000"):
            stack = Stack(var_dir=settings.RELAY_VAR_DIR / "stack-test")
        processes = stack.processes
        self.assertEqual(processes["proxy"].ports[0], ("0.0.0.0", 8000))
        self.assertEqual(processes["web"].ports, [("127.0.0.1", 8001)])
        self.assertEqual(processes["proxy"].after, ("web", "flower"))
        self.assertEqual(processes["web"].env["RELAY_TRUSTED_PROXY_ADDRESSES"], "127.0.0.1")

    def test_the_proxy_serves_https_where_the_settings_name_a_certificate(self) -> None:
        plain = proxy_config(listen="127.0.0.1:8000", servers=["127.0.0.1:8001"], tls=None, **FILES)
        self.assertIn("listen 127.0.0.1:8000 sndbuf=256k;", plain)
        self.assertNotIn("ssl_certificate", plain)
        secure = proxy_config(
            listen="127.0.0.1:8000", servers=["127.0.0.1:8001"], tls=("c.pem", "k.pem"), **FILES
        )
        self.assertIn("listen 127.0.0.1:8000 ssl sndbuf=256k;", secure)
        self.assertIn("ssl_certificate c.pem; ssl_certificate_key k.pem;", secure)
        # Flower behind the same proxy, staff alone let through, over TLS where the relay is.
        self.assertIn("listen 127.0.0.1:5555;", plain)
        self.assertIn("listen 127.0.0.1:5555 ssl;", secure)
        self.assertIn("auth_request /.relay-proxy/staff;", plain)
        # Both refuse a body larger than the relay reads, before reading it.
        for config in (plain, secure):
            self.assertIn(f"client_max_body_size {max_body_bytes()};", config)
            self.assertNotRegex(config, r"\$\{RELAY_PROXY_\w+\}")
