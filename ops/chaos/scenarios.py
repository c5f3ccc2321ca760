"""The faults of ``make chaos``, on a stack with one of each process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
]


# The same, whatever the load: none of them binds a share of successes.
PROFILE = Profile(
    "project.settings.chaos", lambda clients, ratios: SCENARIOS, quick=(1.5, 2.0), full=(3.0, 5.0)
)
