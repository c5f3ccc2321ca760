"""The faults of ``make chaos-cluster``: on a stack of the cluster profile (three Kafka brokers
and three KRaft controllers, two workers, two gRPC servers, two web servers behind nginx), one
of each kind SIGKILLed under load and started again. Beyond the checks of every scenario
(``report.py``), with answers due by the deadline plus half a second, each says how many may
fail: the Kafka partition leader and the active controller, at most 1 %, and leadership must
move (and a leader moved twice in a row, under the Kafka hops' retries); a gRPC server, none
(its calls are retried on the other); a Celery worker, at most 1 % and no more
than the tasks it had taken (they come back only after Redis's visibility timeout, past their
deadline); a web server, at most the requests it held (nginx sends each again to the other
with the same Idempotency-Key). ``--quick``, whose few hundred requests make a percentage mean
little, binds only the counts.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ops.chaos.report import say
from ops.chaos.scenarios import Profile, Scenario, crash
from ops.processes import kafka_process_name

if TYPE_CHECKING:
    from ops.kafka_tools import Leadership
    from ops.stack import Stack

# The promise: an error reaches the client within the deadline plus half a second.
ANSWER_MARGIN_SECONDS = 0.5
# How long the cluster may take to move leadership, or to bring a restarted node back in sync.
LEADERSHIP_GIVE_UP_SECONDS = 30.0
IN_SYNC_GIVE_UP_SECONDS = 90.0


def _relay_topics() -> list[str]:
    from django.conf import settings

    return [settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC]


def _leadership(admin: Any) -> Leadership | None:
    """The relay topics' leadership; None while the broker asked cannot say (it was the dead
    one, or the cluster is still electing)."""
    from kafka.errors import KafkaError

    from ops.kafka_tools import leadership

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

    def scenario(self, name: str, *, min_success_ratio: float) -> Scenario:
        return Scenario(
            f"{name} SIGKILL, then start",
            self.inject,
            self.recover,
            min_success_ratio=min_success_ratio,
            must_reroute=True,
        )

    def inject(self, stack: Stack) -> float | None:
        from ops.kafka_tools import kafka_admin, leadership

        with kafka_admin() as admin:
            self.node = self.choose(leadership(admin, _relay_topics()))
            say(f"{kafka_process_name(self.node)} is {self.what}: killing it")
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
                    say(f"leadership moved off {kafka_process_name(self.node)} in {moved:.2f} s")
                    return round(moved, 2)
                time.sleep(0.05)
        name, limit = kafka_process_name(self.node), LEADERSHIP_GIVE_UP_SECONDS
        say(f"leadership did not move off {name} in {limit:g} s")
        return None

    def recover(self, stack: Stack) -> None:
        from ops.kafka_tools import kafka_admin

        stack.start(kafka_process_name(self.node))
        give_up = time.monotonic() + IN_SYNC_GIVE_UP_SECONDS
        with kafka_admin() as admin:
            while time.monotonic() < give_up:
                if (now := _leadership(admin)) and now.fully_in_sync:
                    return
                time.sleep(0.2)
        name, limit = kafka_process_name(self.node), IN_SYNC_GIVE_UP_SECONDS
        say(f"{name}'s replicas not back in sync after {limit:g} s")


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


class LeaderMoves:
    """The partition leader killed, brought back in sync, then the new leader killed: the
    relay's records move leader twice under load; Kafka hops retry under their policies."""

    def __init__(self) -> None:
        self.first = KafkaNodeFault(
            _writing_partition_leader, "the leader of the partition written to"
        )
        self.second = KafkaNodeFault(_writing_partition_leader, "the new leader of that partition")

    def inject(self, stack: Stack) -> float | None:
        moved = self.first.inject(stack)
        self.first.recover(stack)
        again = self.second.inject(stack)
        return None if moved is None or again is None else max(moved, again)

    def recover(self, stack: Stack) -> None:
        self.second.recover(stack)


def scenarios(clients: int, ratios: bool) -> list[Scenario]:
    """The cluster's scenarios, for ``clients`` client threads (each holds one request); without
    ``ratios`` only the counts bind: what a killed worker had taken, what a web server held."""
    from django.conf import settings

    most = 0.99 if ratios else 0.0
    # The tasks a worker holds: one running per process, none reserved beyond (prefetch 1).
    held_by_worker = settings.RELAY_WORKER_CONCURRENCY * settings.CELERY_WORKER_PREFETCH_MULTIPLIER
    leader = KafkaNodeFault(_writing_partition_leader, "the leader of the partition written to")
    controller = KafkaNodeFault(_active_controller, "the active KRaft controller")
    return [
        leader.scenario("Kafka partition leader", min_success_ratio=most),
        Scenario(
            "Kafka partition leader moved twice (retries)",
            (moves := LeaderMoves()).inject,
            moves.recover,
            min_success_ratio=most,
            must_reroute=True,
        ),
        controller.scenario("Kafka active controller", min_success_ratio=most),
        crash("one gRPC server", "grpc-2", most=1.0),
        crash("one Celery worker", "worker-2", most=most, fail=held_by_worker),
        crash("one web server", "web-2", fail=clients),
    ]


PROFILE = Profile(
    "project.settings.chaos_cluster",
    scenarios,
    quick=(2.0, 3.0),
    full=(4.0, 8.0),
    margin=ANSWER_MARGIN_SECONDS,
)
