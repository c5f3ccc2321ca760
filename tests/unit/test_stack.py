"""The stack runner: a port in use is reported with the setting that moves the service."""

import socket

from django.conf import settings
from django.test import SimpleTestCase

from ops.stack import Stack, StackError


class StackTests(SimpleTestCase):
    def test_a_port_in_use_is_reported_not_reused(self) -> None:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            port = squatter.getsockname()[1]
            stack = Stack(var_dir=settings.VAR_DIR / "stack-test")
            stack.services["grpc"].ports = [("127.0.0.1", port)]
            with self.assertRaises(StackError) as raised:
                stack.start("grpc")
        message = str(raised.exception)
        self.assertIn(f"127.0.0.1:{port} is already in use", message)
        self.assertIn("GRPC_ADDRESS", message)
        self.assertIsNone(stack.pid("grpc"))
