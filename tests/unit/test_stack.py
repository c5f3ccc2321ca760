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
