"""The short form of ``make chaos-cluster``: on a cluster of its own, one of each kind of
process killed under load loses nothing, duplicates nothing, and fails no more than it may."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.test import SimpleTestCase

ROOT = Path(__file__).resolve().parent.parent.parent
# The suite's own settings live in this process's environment; the cluster has its own.
OURS = (
    "DJANGO_",
    "RELAY_",
    "KAFKA_",
    "REDIS_",
    "GRPC_",
    "HTTP_",
    "ZIPKIN_",
    "FLOWER_",
    "OTEL_",
    "DATABASE_",
)


class ChaosClusterTests(SimpleTestCase):
    def test_one_of_each_killed_under_load_loses_and_duplicates_nothing(self) -> None:
        env = {name: value for name, value in os.environ.items() if not name.startswith(OURS)}
        run = subprocess.run(
            [sys.executable, "-m", "ops.chaos", "--cluster", "--quick"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        output = run.stdout + run.stderr
        self.assertEqual(run.returncode, 0, output[-6000:])
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        self.assertGreaterEqual(summary["scenarios"], 5)
        self.assertEqual(summary["failed"], [], output[-6000:])
        self.assertEqual(summary["lost"], 0)
        self.assertEqual(summary["duplicated"], 0)
        self.assertGreater(summary["succeeded"], 0)
        # Both Kafka faults moved leadership, within the transaction's deadline.
        self.assertIsNotNone(summary["leader_move_s_max"])
        self.assertLess(summary["leader_move_s_max"], 5.0)
