"""``manage.py relay``: a person's command line against the running stack, as they run it
(a separate process, talking HTTP), with its exit codes."""

import json
import os
import pty
import re
import subprocess
import sys
import uuid
from pathlib import Path

from django.conf import settings
from django.test import TransactionTestCase

from relay_app.hops import expected_final_message
from relay_app.management.commands.relay import (
    BAD_INPUT,
    TIMED_OUT,
    UNAVAILABLE,
    UNREACHABLE,
)
from relay_app.models import Transaction

from ..support import expected_log_lines, service_stopped, user_with_token

MANAGE = Path(settings.BASE_DIR) / "manage.py"
STAMP = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} ")


def command_env(**extra: str) -> dict[str, str]:
    """This suite's addresses (the environment, or test settings' defaults), no token."""
    env = {k: v for k, v in os.environ.items() if k != "RELAY_API_TOKEN"}
    return {**env, "DJANGO_SETTINGS_MODULE": "project.settings.test", **extra}


def relay_command(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), "relay", *args],
        env=env or command_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class RelayCommandTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("command-line")

    def test_prints_the_original_log_lines_then_the_banner_and_exits_0(self) -> None:
        run = relay_command("hello world", "--token", self.token)
        self.assertEqual(run.returncode, 0, run.stderr)
        lines = run.stdout.splitlines()
        for line in lines:
            self.assertRegex(line, STAMP)
        self.assertEqual([STAMP.sub("", line) for line in lines], expected_log_lines("hello world"))
        self.assertNotIn("\r", run.stdout)  # no progress bar when not on a terminal

    def test_the_token_may_come_from_the_environment(self) -> None:
        run = relay_command("ping", env=command_env(RELAY_API_TOKEN=self.token))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(STAMP.sub("", run.stdout.splitlines()[-2]), expected_final_message("ping"))

    def test_json_prints_the_final_transaction_only(self) -> None:
        run = relay_command("ping", "--json", "--token", self.token)
        self.assertEqual(run.returncode, 0, run.stderr)
        body = json.loads(run.stdout)
        self.assertEqual(body["status"], "succeeded")
        self.assertEqual(body["message"], expected_final_message("ping"))
        self.assertEqual(len(body["hops"]), 8)

    def test_async_prints_the_id_and_returns(self) -> None:
        run = relay_command("ping", "--async", "--token", self.token)
        self.assertEqual(run.returncode, 0, run.stderr)
        transaction_id = run.stdout.strip()
        self.assertEqual(str(uuid.UUID(transaction_id)), transaction_id)
        self.assertTrue(Transaction.objects.filter(id=transaction_id).exists())

    def test_a_terminal_gets_a_progress_bar(self) -> None:
        controller, terminal = pty.openpty()
        try:
            run = subprocess.run(
                [sys.executable, str(MANAGE), "relay", "ping", "--token", self.token],
                env=command_env(),
                stdout=terminal,
                stderr=subprocess.PIPE,
                timeout=60,
                check=False,
            )
            os.close(terminal)
            output = b""
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal's other end is closed: all read
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            os.close(controller)
        self.assertEqual(run.returncode, 0, run.stderr)
        text = output.decode()
        self.assertIn("[########] 8/8 hops", text)
        self.assertIn("\r\x1b[K", text)
        self.assertIn(expected_final_message("ping"), text)

    def test_exit_codes_tell_the_failures_apart(self) -> None:
        cases = [
            ("bad input", relay_command("   ", "--token", self.token), BAD_INPUT),
            ("bad token", relay_command("ping", "--token", "not-a-token"), UNREACHABLE),
            (
                "nobody there",
                relay_command("ping", "--token", self.token, "--url", "http://127.0.0.1:9"),
                UNREACHABLE,
            ),
        ]
        with service_stopped("redis"):
            cases.append(("Redis down", relay_command("ping", "--token", self.token), UNAVAILABLE))
        with service_stopped("worker"):
            cases.append(("no worker", relay_command("ping", "--token", self.token), TIMED_OUT))
        for name, run, code in cases:
            with self.subTest(name):
                self.assertEqual(run.returncode, code, run.stdout + run.stderr)
                self.assertIn("CommandError", run.stderr)
        # The reasons, in the API's words, one line for each.
        self.assertIn("\n  message: May not be empty or only whitespace.\n", cases[0][1].stderr)
