"""What the stack's logs and spans keep of a request: its path, never a token its client put
in the query string; the message's text only in the transaction log (the contract's lines),
never at INFO in the web servers', workers' or gRPC servers' own logs; every file its
owner's alone (docs/security.md, "Logs")."""

import secrets
import time
import uuid
from pathlib import Path

import requests
from django.conf import settings
from django.test import TransactionTestCase

from ..support import user_with_token, web

LOGS = Path(settings.RELAY_VAR_DIR) / "log"
PROCESS_LOGS = ("web.log", "worker.log", "grpc.log", "proxy.log")


def logged(name: str) -> str:
    return "\n".join(path.read_text(errors="replace") for path in LOGS.glob(f"{name}*"))


class LogHygieneTests(TransactionTestCase):
    def test_a_token_in_a_query_string_reaches_no_log_line_or_span(self) -> None:
        _, token = user_with_token("query-string")
        secret = f"query-secret-{uuid.uuid4().hex}"
        trace_id = secrets.token_hex(16)
        # Sampled: the test stack traces only what a client asks it to.
        traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        with web(token) as client:
            answer = client.get(
                f"/api/transactions/?token={secret}",
                headers={"traceparent": traceparent, "Accept": "application/json"},
            )
        self.assertEqual(answer.status, 200)
        zipkin = f"http://{settings.ZIPKIN_ADDRESS}/api/v2/trace/{trace_id}"
        deadline, spans = time.monotonic() + 15, ""
        while "/api/transactions/" not in spans and time.monotonic() < deadline:
            time.sleep(0.2)
            found = requests.get(zipkin, timeout=5)
            spans = found.text if found.status_code == 200 else ""
        self.assertIn("/api/transactions/", spans)  # the request's span, with its path
        self.assertNotIn(secret, spans)
        time.sleep(1)  # supervisord writes what the processes print as it comes
        self.assertIn("GET /api/transactions/ ", logged("proxy.log"))
        for name in PROCESS_LOGS:
            with self.subTest(name):
                self.assertNotIn(secret, logged(name))

    def test_the_processes_own_logs_hold_no_message_text(self) -> None:
        _, token = user_with_token("quiet")
        message = f"not for the logs {uuid.uuid4().hex}"
        with web(token) as client:
            answer = client.relay(message)
        self.assertEqual(answer.status, 200)
        time.sleep(1)
        self.assertIn(message, logged("transactions.log"))  # the contract's lines
        for name in PROCESS_LOGS:
            with self.subTest(name):
                self.assertNotIn(message, logged(name))
                self.assertNotIn(message.upper(), logged(name))

    def test_every_log_file_is_its_owners_alone(self) -> None:
        files = [path for path in LOGS.rglob("*") if path.is_file()]
        self.assertTrue(files)
        for path in files:
            with self.subTest(path.name):
                self.assertEqual(path.stat().st_mode & 0o077, 0, oct(path.stat().st_mode))
