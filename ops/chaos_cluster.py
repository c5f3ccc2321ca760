"""``make chaos-cluster``: kill one of several of each process under load, on the cluster profile.

The stack of its own (``var/chaos-cluster/``) runs what ``make up-cluster`` runs: three Kafka
brokers and three KRaft controllers, two workers, two gRPC servers, two web servers behind
nginx. Each scenario SIGKILLs one process under a steady load and starts it again, and the
ledger is checked as ``make chaos`` checks it (``ops/chaos.py``): nothing acknowledged lost,
nothing duplicated, no client kept waiting past the deadline plus half a second. Beyond
that, each says how many may fail:

- the Kafka broker leading the partition the relay last wrote to, and the active KRaft
  controller: at least 99 % succeed, and the figures say how long leadership took to move;
- one gRPC server: none fail, the client fails over to the other;
- one Celery worker: at least 99 % succeed, and no more fail than the tasks it had taken
  (they come back to a worker only after Redis's visibility timeout, past their deadline:
  those transactions time out);
- one web server: at most the requests it held fail, one per client. The proxy sends each
  such request again to the other web server with the same Idempotency-Key, which answers
  the transaction's outcome; only a transaction whose chain the dead server never started
  times out (504), settled by the repeated request or else by the sweep.

``--quick`` is the short form that ``make test`` runs (``tests/integration/test_chaos_cluster.py``):
fewer clients, shorter phases, and only the counts bind, not the 99 %.

The last line printed is one JSON object: ``scenarios``, ``sent``, ``succeeded``, ``lost``,
``duplicated``, ``success_ratio_min``, ``leader_move_s_max`` and which scenarios ``failed``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ops.chaos import CHAOS_ENV, ROOT, Report, Scenario, run_scenario
from ops.processes import kafka_process_name

if TYPE_CHECKING:
    from ops.stack import Stack
    from relay_app.integrations.kafka_records import Leadership

CLUSTER_DIR = ROOT / "var" / "chaos-cluster"
CLUSTER_ENV = {
    **CHAOS_ENV,
    "RELAY_VAR_DIR": str(CLUSTER_DIR),
    "RELAY_KAFKA_BROKERS": "3",
    "RELAY_WORKERS": "2",
    "RELAY_GRPC_SERVERS": "2",
    "RELAY_WEB_SERVERS": "2",
    # The first of each; the others follow (settings.environment.addresses). Below 32768, out
    # of the range Linux takes client ports from, so no client connection holds one of them.
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:31092",
    "REDIS_URL": "redis://127.0.0.1:31379/0",
    "GRPC_ADDRESS": "127.0.0.1:31051",
    "RELAY_HTTP_ADDRESS": "127.0.0.1:31080",
    "RELAY_WORKER_METRICS_ADDRESS": "127.0.0.1:31464",
    "RELAY_GRPC_METRICS_ADDRESS": "127.0.0.1:31474",
    # Untraced: what it measures is the cluster's, not tracing's.
    "OTEL_TRACES_EXPORTER": "none",
    "RELAY_TRACE_COLLECTOR_ADDRESS": "",
    # As the cluster profile: one Kafka operation may outlast a node's fencing (2 s) and a retry.
    "KAFKA_TIMEOUT_SECONDS": "3.5",
    # A transaction whose waiter died with its web server is timed out within seconds.
    "RELAY_STALE_GRACE_SECONDS": "1",
    "RELAY_SWEEP_INTERVAL_SECONDS": "2",
}
# The promise: an error reaches the client within the deadline plus half a second.
ANSWER_MARGIN_SECONDS = 0.5
# How long the cluster may take to move leadership, or to bring a restarted node back in sync.
LEADERSHIP_GIVE_UP_SECONDS = 30.0
IN_SYNC_GIVE_UP_SECONDS = 90.0


def _say(message: str) -> None:
    print(f"[chaos-cluster] {message}", flush=True)


def _relay_topics() -> list[str]:
    from django.conf import settings

    return [settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC]


def _leadership(admin: Any) -> Leadership | None:
    """The relay topics' leadership; None while the broker asked cannot say (it was the dead
    one, or the cluster is still electing)."""
    from kafka.errors import KafkaError

    from relay_app.integrations.kafka_records import leadership

    try:
        return leadership(admin, _relay_topics())
    except KafkaError:
        return None


class KafkaNodeFault:
    """SIGKILL the Kafka node ``choose`` picks from the cluster's leadership; measure how long
    until no relay partition and not the controller is led by it; start it again and wait
    until every replica is back in sync, so the next scenario starts from a whole cluster."""

    def __init__(self, choose: Callable[[Leadership], int], what: str) -> None:
        self.choose, self.what, self.node = choose, what, 0

    def inject(self, stack: Stack) -> float | None:
        from relay_app.integrations.kafka_records import kafka_admin, leadership

        with kafka_admin() as admin:
            self.node = self.choose(leadership(admin, _relay_topics()))
            _say(f"{kafka_process_name(self.node)} is {self.what}: killing it")
            stack.stop(kafka_process_name(self.node), sig=signal.SIGKILL)
            killed_at = time.monotonic()
            while time.monotonic() - killed_at < LEADERSHIP_GIVE_UP_SECONDS:
                now = _leadership(admin)  # blocks while the quorum elects a controller
                moved = time.monotonic() - killed_at
                if (
                    now
                    and now.controller not in (-1, self.node)
                    and all(leader not in (-1, self.node) for leader in now.leaders.values())
                ):
                    _say(f"leadership moved off {kafka_process_name(self.node)} in {moved:.2f} s")
                    return round(moved, 2)
                time.sleep(0.05)
        name, limit = kafka_process_name(self.node), LEADERSHIP_GIVE_UP_SECONDS
        _say(f"leadership did not move off {name} in {limit:g} s")
        return None

    def recover(self, stack: Stack) -> None:
        from relay_app.integrations.kafka_records import kafka_admin

        stack.start(kafka_process_name(self.node))
        give_up = time.monotonic() + IN_SYNC_GIVE_UP_SECONDS
        with kafka_admin() as admin:
            while time.monotonic() < give_up:
                if (now := _leadership(admin)) and now.fully_in_sync:
                    return
                time.sleep(0.2)
        name, limit = kafka_process_name(self.node), IN_SYNC_GIVE_UP_SECONDS
        _say(f"{name}'s replicas not back in sync after {limit:g} s")


def _writing_partition_leader(now: Leadership) -> int:
    """The leader of the request topic's partition that the relay wrote to last."""
    from django.conf import settings

    from relay_app.models import Hop

    topic = settings.KAFKA_REQUEST_TOPIC
    last = Hop.objects.filter(kafka_topic=topic).order_by("-id").first()
    partition = last.kafka_partition if last and last.kafka_partition is not None else 0
    return now.leaders[(topic, partition)]


def _active_controller(now: Leadership) -> int:
    if now.controller == -1:
        raise RuntimeError("no active KRaft controller to kill: the quorum has no leader")
    return now.controller


def _kill(name: str) -> Callable[[Stack], None]:
    return lambda stack: stack.stop(name, sig=signal.SIGKILL)


def _start(name: str) -> Callable[[Stack], None]:
    return lambda stack: stack.start(name)


def scenarios(clients: int, *, ratios: bool = True) -> list[Scenario]:
    """The cluster's scenarios, for ``clients`` client threads (each holds one request).

    Without ``ratios`` (the short form, whose few hundred requests make a percentage mean
    little) only the counts bind: what a killed worker had taken, what a web server held.
    """
    from django.conf import settings

    leader = KafkaNodeFault(_writing_partition_leader, "the leader of the partition written to")
    controller = KafkaNodeFault(_active_controller, "the active KRaft controller")
    most = 0.99 if ratios else 0.0
    # The tasks a worker holds: one running per process, none reserved beyond (prefetch 1).
    held_by_worker = settings.RELAY_WORKER_CONCURRENCY * settings.CELERY_WORKER_PREFETCH_MULTIPLIER
    return [
        Scenario(
            "Kafka partition leader SIGKILL, then start",
            leader.inject,
            leader.recover,
            min_success_ratio=most,
            must_reroute=True,
        ),
        Scenario(
            "Kafka active controller SIGKILL, then start",
            controller.inject,
            controller.recover,
            min_success_ratio=most,
            must_reroute=True,
        ),
        Scenario(
            "one gRPC server SIGKILL, then start",
            _kill("grpc-2"),
            _start("grpc-2"),
            min_success_ratio=1.0,
        ),
        Scenario(
            "one Celery worker SIGKILL, then start",
            _kill("worker-2"),
            _start("worker-2"),
            min_success_ratio=most,
            max_failures=held_by_worker,
        ),
        Scenario(
            "one web server SIGKILL, then start",
            _kill("web-2"),
            _start("web-2"),
            max_failures=clients,
        ),
    ]


def summarize(reports: list[Report]) -> dict[str, Any]:
    """The run's one line: the issue's figures, and which scenarios failed."""
    moves = [report.leader_move_s for report in reports if report.leader_move_s is not None]
    return {
        "scenarios": len(reports),
        "sent": sum(report.sent for report in reports),
        "succeeded": sum(report.ok for report in reports),
        "lost": sum(report.lost for report in reports),
        "duplicated": sum(report.duplicated for report in reports),
        "success_ratio_min": min((report.success_ratio for report in reports), default=0.0),
        "leader_move_s_max": max(moves, default=None),
        "passed": sum(report.passed for report in reports),
        "failed": [report.scenario for report in reports if not report.passed],
    }


def chaos_cluster(*, quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    from ops.stack import fresh_stack

    stack, credentials = fresh_stack(CLUSTER_DIR, CLUSTER_ENV, user="chaos")
    clients = 4 if quick else 8
    chosen = [
        scenario
        for scenario in scenarios(clients, ratios=not quick)
        if not only or any(word in scenario.name for word in only)
    ]
    reports = []
    try:
        stack.up()
        for scenario in chosen:
            reports.append(
                run_scenario(
                    stack,
                    scenario,
                    credentials=credentials,
                    clients=clients,
                    before_seconds=2.0 if quick else 4.0,
                    after_seconds=3.0 if quick else 8.0,
                    answer_margin=ANSWER_MARGIN_SECONDS,
                )
            )
            stack.up()  # every process back, whatever the scenario did
    finally:
        stack.down()
    summary = summarize(reports)
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    (CLUSTER_DIR / "results.json").write_text(
        json.dumps({"summary": summary, "scenarios": [r.__dict__ for r in reports]}, indent=2)
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos_cluster", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer clients, shorter phases")
    parser.add_argument(
        "--only", action="append", help="run the scenarios whose name holds this (repeatable)"
    )
    args = parser.parse_args(argv)
    summary = chaos_cluster(quick=args.quick, only=args.only)
    print(json.dumps(summary), flush=True)
    return 0 if summary["scenarios"] and not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
