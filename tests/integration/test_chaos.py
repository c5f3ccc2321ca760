"""A short form of ``make chaos`` on the suite's own stack: faults under load lose nothing."""

from django.test import TransactionTestCase

from ops.chaos.report import Report
from ops.chaos.run import run_scenario
from ops.chaos.scenarios import SCENARIOS
from ops.client import Credentials

from ..support import running_stack, user_with_token

# The full set runs with `make chaos`; these cover a crash, a broker crash, retries under a
# flapping gRPC server and duplicates.
SHORT_FORM = (
    "worker SIGKILL, then start",
    "gRPC server flapping (retries)",
    "Kafka SIGKILL, then start",
    "gRPC server slower than the deadline (SIGSTOP), then SIGCONT",
    "tasks delivered twice",
)


class ChaosTests(TransactionTestCase):
    def run_short(self, name: str) -> Report:
        scenario = next(s for s in SCENARIOS if s.name == name)
        stack = running_stack()
        _, token = user_with_token(f"chaos-{SHORT_FORM.index(name)}")
        try:
            return run_scenario(
                stack,
                scenario,
                credentials=Credentials(token),
                clients=3,
                before_seconds=1.0,
                after_seconds=1.5,
            )
        finally:
            stack.up()  # whatever the scenario left stopped

    def assert_nothing_lost(self, report: Report) -> None:
        self.assertGreater(report.sent, 0)
        self.assertGreater(report.ok, 0)
        self.assertEqual(report.lost, 0)
        self.assertEqual(report.duplicated, 0)
        self.assertEqual(report.pending, 0)
        self.assertEqual(report.hung, 0, "a client waited past the deadline")
        self.assertEqual(report.wrong_text, 0)
        self.assertEqual(report.no_answer, 0)
        self.assertIsNotNone(report.healed_after_seconds, "new requests did not succeed after it")

    def test_each_short_scenario_loses_and_duplicates_nothing(self) -> None:
        for name in SHORT_FORM:
            with self.subTest(name):
                self.assert_nothing_lost(self.run_short(name))
