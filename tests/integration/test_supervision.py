"""The stack under supervisord: a process that dies on its own is started again within
seconds, one stopped on purpose stays stopped, and ``make status`` is supervisorctl's."""

import os
import signal
import subprocess
import sys
import time

import psutil
from django.conf import settings
from django.test import TransactionTestCase

from relay_app.hops import expected_final_message
from relay_app.services.health import grpc_serving

from ..support import running_stack, user_with_token, web


class SupervisionTests(TransactionTestCase):
    def restarted(self, name: str, killed: int, *, within: float = 15.0) -> int:
        """The new pid of ``name`` once supervisord has started it again after ``killed``."""
        stack = running_stack()
        give_up = time.monotonic() + within
        while (pid := stack.pid(name)) in (None, killed):
            if time.monotonic() > give_up:
                self.fail(f"{name} was not started again within {within:g} s")
            time.sleep(0.1)
        assert pid is not None
        return pid

    def test_a_killed_grpc_server_and_worker_are_started_again_within_seconds(self) -> None:
        stack = running_stack()
        _, token = user_with_token("supervised")
        for name in ("grpc", "worker"):
            with self.subTest(name):
                killed = stack.pid(name)
                assert killed is not None
                children = psutil.Process(killed).children(recursive=True)
                started = time.monotonic()
                os.kill(killed, signal.SIGKILL)
                self.restarted(name, killed)
                # Its own processes (the worker's pool) do not outlive it.
                _, alive = psutil.wait_procs(children, timeout=10)
                self.assertEqual(alive, [], f"{name}'s processes outlived it")
                # Up again: the stack's own readiness check of it passes, within seconds.
                while True:
                    try:
                        stack.processes[name].ready()
                        break
                    except Exception:  # noqa: BLE001 - not yet
                        self.assertLess(time.monotonic() - started, 30, f"{name} not ready")
                        time.sleep(0.2)
        grpc_serving(settings.GRPC_ADDRESS)
        answer = web(token).relay("after the crashes")
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.body["message"], expected_final_message("after the crashes"))

    def test_a_process_stopped_on_purpose_stays_stopped_and_status_says_so(self) -> None:
        stack = running_stack()
        stack.stop("grpc")
        try:
            time.sleep(3)  # longer than supervisord takes to restart a process that died
            self.assertIsNone(stack.pid("grpc"))
            status = subprocess.run(
                [sys.executable, "-m", "ops.stack", "status"],
                cwd=settings.BASE_DIR,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            lines = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()}
            self.assertEqual(lines["grpc"], "STOPPED", status.stdout)
            self.assertEqual(lines["worker"], "RUNNING", status.stdout)
        finally:
            stack.start("grpc")
