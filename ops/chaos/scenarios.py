"""The faults of ``make chaos``, on a stack with one of each process."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from ops.chaos.report import say

if TYPE_CHECKING:
    from ops.stack import Stack

# How much later than the deadline a client may get its answer.
ANSWER_MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class Profile:
    """A stack for the scenarios, and the phases of each: seconds of load before the fault and
    after it (quick, full); a client's answer is due by the deadline plus ``margin``."""

    settings_module: str  # its profile's (project/settings/profiles.py)
    scenarios: Callable[[int, bool], list[Scenario]]  # (clients, whether shares of 200s bind)
    quick: tuple[float, float]
    full: tuple[float, float]
    margin: float = ANSWER_MARGIN_SECONDS


@dataclass
class Scenario:
    """A fault: how to inject it and how to remove it, and how many requests may fail.

    ``inject`` may return how many seconds the stack took to route around the fault (a
    Kafka cluster moving leadership); the report names it.
    """

    name: str
    inject: Callable[[Stack], float | None]
    recover: Callable[[Stack], None]
    hold_seconds: float = 3.0
    # At least this share of the requests sent during the scenario succeed...
    min_success_ratio: float = 0.0
    # ... and at most this many fail (None: no limit beyond the ratio).
    max_failures: int | None = None
    # ``inject`` must say how long the stack took to route around the fault.
    must_reroute: bool = False


def kill(process: str) -> Callable[[Stack], None]:
    """A crash: the process stays down until started again."""
    return lambda stack: stack.stop(process, sig=signal.SIGKILL)


def stop(process: str) -> Callable[[Stack], None]:
    return lambda stack: stack.stop(process)


def start(process: str) -> Callable[[Stack], None]:
    return lambda stack: stack.start(process)


def crash(what: str, process: str, *, most: float = 0.0, fail: int | None = None) -> Scenario:
    """``process`` SIGKILLed, as a crash would, then started again; at least ``most`` of the
    requests succeed, at most ``fail`` fail."""
    name = f"{what} SIGKILL, then start"
    return Scenario(name, kill(process), start(process), min_success_ratio=most, max_failures=fail)


def send_signal(process: str, sig: signal.Signals) -> Callable[[Stack], None]:
    def send(stack: Stack) -> None:
        pid = stack.pid(process)
        if pid is None:
            raise RuntimeError(f"{process} is not running")
        os.killpg(pid, sig)

    return send


def flap(
    process: str, *, times: int = 3, down: float = 0.3, up: float = 0.7
) -> Callable[[Stack], None]:
    """``process`` SIGKILLed and started again ``times`` times, ``down`` seconds before each
    start (which waits until it is ready, about a second more) and ``up`` seconds after."""

    def flapping(stack: Stack) -> None:
        for _ in range(times):
            stack.stop(process, sig=signal.SIGKILL)
            time.sleep(down)
            stack.start(process)
            time.sleep(up)

    return flapping


def redeliver(stack: Stack) -> None:
    """Deliver the first task of recent succeeded transactions again, as a crash would."""
    from relay_app import tasks
    from relay_app.hops import Stage
    from relay_app.models import Hop, Transaction

    recent = Transaction.objects.filter(status=Transaction.Status.SUCCEEDED).order_by("-created_at")
    for transaction in recent[:20]:
        hop = Hop.objects.get(transaction=transaction, stage=Stage.REST_REQUEST)
        carry = {
            "transaction_id": str(transaction.id),
            "text": hop.text,
            "deadline": time.time() + 5,
        }
        # The whole chain again, with the same carry: every hop must find itself done.
        tasks.relay_chain(carry).apply_async()  # type: ignore[arg-type]


# How many transactions the bulk rerun scenario reruns, and the load alone measured before.
BULK_RERUNS = 200
BASELINE_SECONDS = 10.0


def failed_at_grpc(count: int) -> list[str]:
    """``count`` transactions of the chaos user recorded as a gRPC outage leaves them: hops
    1-3 done, failed at hop 4 (no Kafka record is read again by a rerun from there)."""
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.utils import timezone

    from relay_app.hops import Stage
    from relay_app.models import Hop, Transaction

    owner = User.objects.get(username="chaos")
    now = timezone.now()
    made = []
    for n in range(count):
        transaction = Transaction.objects.create(
            owner=owner,
            message=f"failed in the outage #{n}",
            status=Transaction.Status.FAILED,
            failed_stage=Stage.GRPC_CLIENT,
            error="gRPC server unavailable (UNAVAILABLE): bulk rerun scenario",
            deadline_at=now,
            finished_at=now,
        )
        text = transaction.message
        for stage in (Stage.REST_REQUEST, Stage.KAFKA_PUBLISH_REQUEST, Stage.KAFKA_CONSUME_REQUEST):
            text = stage.spec.apply(text)
            Hop.objects.create(
                transaction=transaction,
                stage=stage,
                text=text,
                started_at=now - timedelta(milliseconds=10 - stage),
                finished_at=now - timedelta(milliseconds=9 - stage),
            )
        made.append(str(transaction.id))
    return made


def load_throughput(since: float, until: float) -> float:
    """The load's transactions (``chaos c…``) made in the span that succeeded, a second."""
    from datetime import UTC, datetime

    from relay_app.models import Transaction

    span = [datetime.fromtimestamp(at, UTC) for at in (since, until)]
    done = Transaction.objects.filter(
        message__startswith="chaos c", created_at__range=span, status="succeeded"
    ).count()
    return done / (until - since)


class BulkRerun:
    """``BULK_RERUNS`` failed transactions rerun by one bulk job (dry run first) while the
    load goes on: the load's throughput while the job runs, against the load alone for
    ``BASELINE_SECONDS`` before it (the goal: at least 80 %)."""

    started = baseline = 0.0  # when the job started; the load's throughput alone before it
    job: UUID | str = ""  # the bulk job, once started

    def scenario(self) -> Scenario:
        name = f"bulk rerun of {BULK_RERUNS} failed transactions"
        return Scenario(name, self.inject, self.recover, hold_seconds=0)

    def inject(self, stack: Stack) -> None:
        from django.contrib.auth.models import User

        from relay_app.models import BulkJob
        from relay_app.selectors import transaction_filter
        from relay_app.services.bulk import bulk_dry_run, bulk_job_start

        failed_at_grpc(BULK_RERUNS)
        user = User.objects.get(username="chaos")
        chosen = transaction_filter(viewer=user, status="failed", error_contains="bulk rerun")
        dry_run = bulk_dry_run(action=BulkJob.Action.RERUN, transactions=chosen)
        if dry_run.acting != BULK_RERUNS:
            raise RuntimeError(f"the dry run would rerun {dry_run.acting}, not {BULK_RERUNS}")
        time.sleep(BASELINE_SECONDS)
        self.started = time.time()
        self.baseline = load_throughput(self.started - BASELINE_SECONDS, self.started)
        self.job = bulk_job_start(
            viewer=user,
            action=BulkJob.Action.RERUN,
            transactions=chosen,
            filters={"status": "failed", "error_contains": "bulk rerun"},
            reason="chaos: rerun what a gRPC outage failed",
            source="cli",
        ).id

    def recover(self, stack: Stack) -> None:
        from relay_app.models import BulkJob, Transaction
        from relay_app.selectors import bulk_job_progress

        give_up = time.monotonic() + 120
        job = BulkJob.objects.get(id=self.job)
        while job.status != BulkJob.Status.FINISHED and time.monotonic() < give_up:
            time.sleep(0.5)
            job.refresh_from_db()
        ended = time.time()
        during = load_throughput(self.started, ended)
        reruns = Counter(
            Transaction.objects.filter(rerun_of__isnull=False).values_list("status", flat=True)
        )
        say(
            f"bulk rerun: job {job.status} in {ended - self.started:.1f} s,"
            f" items {bulk_job_progress(job=job)}, reruns {dict(reruns)}; the load's"
            f" throughput {during:.1f}/s during it against {self.baseline:.1f}/s alone:"
            f" {100 * during / self.baseline:.0f} % kept (goal: at least 80 %)"
        )


SCENARIOS = [
    crash("worker", "worker"),
    Scenario("Kafka SIGTERM, then start", stop("kafka"), start("kafka")),
    crash("Kafka", "kafka"),
    # Down for less than the deadline: each call is retried under its policy until the
    # server is back, so every request succeeds (it answered 503 before retries).
    Scenario(
        "gRPC server stopped, then started",
        stop("grpc"),
        start("grpc"),
        hold_seconds=1.0,
        max_failures=0,
    ),
    # Up and down three times in a row: the retries carry every transaction through.
    Scenario(
        "gRPC server flapping (retries)",
        flap("grpc"),
        start("grpc"),
        hold_seconds=0.5,
        max_failures=0,
    ),
    Scenario(
        "gRPC server slower than the deadline (SIGSTOP), then SIGCONT",
        send_signal("grpc", signal.SIGSTOP),
        send_signal("grpc", signal.SIGCONT),
        hold_seconds=7.0,
    ),
    Scenario("Redis restarted", stop("redis"), start("redis"), hold_seconds=2.0),
    Scenario("tasks delivered twice", redeliver, lambda stack: None, hold_seconds=2.0),
    # Not a fault: operators' bulk work beside live traffic, at the shared rate.
    BulkRerun().scenario(),
]


# The same, whatever the load: none of them binds a share of successes.
PROFILE = Profile(
    "project.settings.chaos", lambda clients, ratios: SCENARIOS, quick=(1.5, 2.0), full=(3.0, 5.0)
)
