"""``make chaos``: kill, restart and starve each service under load, and check nothing is lost.

Each scenario runs a steady, bounded load of ``POST /api/relay/`` from client threads,
injects one fault, removes it, keeps the load on a little longer, then checks the ledger
of every request against the database and Kafka:

- every transaction ends in exactly one final state within the deadline plus a grace;
- every 200 carried the exact text for its own message;
- no hop row is duplicated, and no transaction has two records on a topic;
- every Kafka record acknowledged (recorded with its coordinates) is still readable;
- during the fault clients got 503/504 promptly, never a hang past the deadline;
- after it, new requests succeed with nothing else restarted.

``python -m ops.chaos`` runs every scenario on a stack of its own (``var/chaos/``); the test
suite runs a short form of some of them (``tests/integration/test_chaos.py``). The last line printed
is one JSON object: ``scenarios``, ``sent``, ``lost``, ``duplicated`` and more.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.client import Credentials, post_message

if TYPE_CHECKING:
    from ops.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
CHAOS_DIR = ROOT / "var" / "chaos"
CHAOS_ENV = {
    "DJANGO_SETTINGS_MODULE": "project.settings.production",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "RELAY_VAR_DIR": str(CHAOS_DIR),
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:49092",
    "REDIS_URL": "redis://127.0.0.1:46379/0",
    "GRPC_ADDRESS": "127.0.0.1:45051",
    "RELAY_HTTP_ADDRESS": "127.0.0.1:48000",
    "RELAY_WORKER_METRICS_ADDRESS": "127.0.0.1:49464",
    "RELAY_GRPC_METRICS_ADDRESS": "127.0.0.1:49474",
    "RELAY_TRANSACTION_LOG_CONSOLE": "false",
    # As behind a TLS-terminating proxy: the clients send X-Forwarded-Proto: https.
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    # One user drives the whole load: the throttle runs, at a rate the load never reaches.
    "RELAY_THROTTLE_RATE": "100000/second",
    # Every hop on loopback, in plaintext on purpose.
    "RELAY_ALLOW_PLAINTEXT": "true",
}
# How much later than the deadline a client may get its answer, and a transaction its state.
ANSWER_MARGIN_SECONDS = 2.0
SETTLE_GRACE_SECONDS = 5.0


def _say(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


@dataclass
class Entry:
    """One request of the ledger and what its client received."""

    message: str
    sent_at: float
    seconds: float = 0.0
    status: int = 0  # 0: no HTTP answer at all
    body: Any = None


@dataclass
class Ledger:
    entries: list[Entry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: Entry) -> None:
        with self.lock:
            self.entries.append(entry)


def _client_loop(
    address: str,
    credentials: Credentials,
    name: str,
    ledger: Ledger,
    stop: threading.Event,
    timeout: float,
) -> None:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    i = 0
    while not stop.is_set() and i < 10_000:  # bounded, whatever happens
        message = f"chaos {name} #{i} ü"
        i += 1
        entry = Entry(message=message, sent_at=time.time())
        started = time.perf_counter()
        try:
            entry.status, entry.body = post_message(connection, message, credentials)
        except (OSError, http.client.HTTPException, ValueError):
            connection.close()
            connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
            time.sleep(0.05)
        entry.seconds = time.perf_counter() - started
        ledger.add(entry)
    connection.close()


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


def _kill(service: str) -> Callable[[Stack], None]:
    return lambda stack: stack.stop(service, sig=signal.SIGKILL)


def _stop(service: str) -> Callable[[Stack], None]:
    return lambda stack: stack.stop(service)


def _start(service: str) -> Callable[[Stack], None]:
    return lambda stack: stack.start(service)


def _signal(service: str, sig: signal.Signals) -> Callable[[Stack], None]:
    def send(stack: Stack) -> None:
        pid = stack.pid(service)
        if pid is None:
            raise RuntimeError(f"{service} is not running")
        os.killpg(pid, sig)

    return send


def _redeliver(stack: Stack) -> None:
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
    Scenario("worker SIGKILL, then start", _kill("worker"), _start("worker")),
    Scenario("Kafka SIGTERM, then start", _stop("kafka"), _start("kafka")),
    Scenario("Kafka SIGKILL, then start", _kill("kafka"), _start("kafka")),
    Scenario("gRPC server stopped, then started", _stop("grpc"), _start("grpc")),
    Scenario(
        "gRPC server slower than the deadline (SIGSTOP), then SIGCONT",
        _signal("grpc", signal.SIGSTOP),
        _signal("grpc", signal.SIGCONT),
        hold_seconds=7.0,
    ),
    Scenario("Redis restarted", _stop("redis"), _start("redis"), hold_seconds=2.0),
    Scenario("tasks delivered twice", _redeliver, lambda stack: None, hold_seconds=2.0),
]


@dataclass
class Report:
    scenario: str
    sent: int
    ok: int
    unavailable: int
    timed_out: int
    other: int
    no_answer: int
    hung: int
    wrong_text: int
    final_states: dict[str, int]
    pending: int
    lost: int
    duplicated: int
    healed_after_seconds: float | None
    success_ratio: float
    leader_move_s: float | None = None
    requirement_met: bool = True  # the scenario's share of successes and most failures

    @property
    def passed(self) -> bool:
        return (
            self.requirement_met
            and self.lost == 0
            and self.duplicated == 0
            and self.pending == 0
            and self.hung == 0
            and self.wrong_text == 0
            and self.no_answer == 0
            and self.healed_after_seconds is not None
        )


def run_scenario(
    stack: Stack,
    scenario: Scenario,
    *,
    credentials: Credentials,
    clients: int = 6,
    before_seconds: float = 2.0,
    after_seconds: float = 3.0,
    answer_margin: float = ANSWER_MARGIN_SECONDS,
) -> Report:
    """Load, fault, recovery, more load; then check the ledger. The stack must be up.

    A client must get its answer within the deadline plus ``answer_margin``.
    """
    from django.conf import settings

    deadline = float(settings.RELAY_DEADLINE_SECONDS)
    ledger, stop = Ledger(), threading.Event()
    started_at = time.time()
    threads = [
        threading.Thread(
            target=_client_loop,
            args=(settings.RELAY_HTTP_ADDRESS, credentials, f"c{i}", ledger, stop, deadline + 30),
            daemon=True,
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(before_seconds)
    _say(f"{scenario.name}: injecting")
    moved = scenario.inject(stack)
    time.sleep(scenario.hold_seconds)
    _say(f"{scenario.name}: recovering")
    scenario.recover(stack)
    recovered_at = time.time()
    time.sleep(after_seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=deadline + 35)
    healed = _healed_after(ledger, recovered_at)
    if not _next_requests_succeed(settings.RELAY_HTTP_ADDRESS, credentials):
        healed = None
    elif healed is None:  # not while the load ran, but by now
        healed = round(time.time() - recovered_at, 2)
    # Transactions whose answer was cut off still settle within the deadline plus a grace,
    # or, if their waiter died with its web server, once the sweep times them out.
    time.sleep(
        min(
            deadline + SETTLE_GRACE_SECONDS,
            max(0.0, _last_sent(ledger) + deadline + SETTLE_GRACE_SECONDS - time.time()),
        )
    )
    _wait_settled(
        started_at,
        settings.RELAY_STALE_GRACE_SECONDS + settings.RELAY_SWEEP_INTERVAL_SECONDS + deadline,
    )
    return _check(scenario, ledger, started_at, deadline + answer_margin, healed, moved)


def _window(started_at: float) -> Any:
    """The transactions created since ``started_at`` (and a second before, for clock steps)."""
    from django.utils import timezone

    from relay_app.models import Transaction

    return Transaction.objects.filter(
        created_at__gte=datetime.fromtimestamp(started_at, timezone.get_current_timezone())
        - timedelta(seconds=1)
    )


def _wait_settled(started_at: float, at_most: float) -> None:
    """Until no transaction of the window is pending, for ``at_most`` seconds."""
    from relay_app.models import Transaction

    give_up = time.monotonic() + at_most
    while time.monotonic() < give_up:
        if not _window(started_at).filter(status=Transaction.Status.PENDING).exists():
            return
        time.sleep(0.5)


def _last_sent(ledger: Ledger) -> float:
    return max((entry.sent_at for entry in ledger.entries), default=time.time())


def _healed_after(ledger: Ledger, since: float, in_a_row: int = 5) -> float | None:
    """Seconds from the fault's removal to the first of ``in_a_row`` 200s in a row."""
    after = sorted((e for e in ledger.entries if e.sent_at >= since), key=lambda e: e.sent_at)
    for i in range(len(after) - in_a_row + 1):
        if all(entry.status == 200 for entry in after[i : i + in_a_row]):
            return round(after[i].sent_at - since, 2)
    return None


def _next_requests_succeed(address: str, credentials: Credentials, count: int = 5) -> bool:
    """After the load: ``count`` new requests in a row succeed, with nothing else restarted."""
    from relay_app.hops import expected_final_message

    host, port = address.rsplit(":", 1)
    for i in range(count):
        message = f"after the fault #{i}"
        connection = http.client.HTTPConnection(host, int(port), timeout=15)
        try:
            status, body = post_message(connection, message, credentials)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            connection.close()
        if status != 200 or body.get("message") != expected_final_message(message):
            return False
    return True


def _check(
    scenario: Scenario,
    ledger: Ledger,
    started_at: float,
    answer_by: float,
    healed: float | None,
    moved: float | None,
) -> Report:
    from django.conf import settings
    from django.db.models import Count

    from relay_app.hops import expected_final_message
    from relay_app.integrations.kafka_records import read_all
    from relay_app.models import Hop, Transaction

    entries = ledger.entries
    statuses = Counter(entry.status for entry in entries)
    wrong_text = sum(
        1
        for entry in entries
        if entry.status == 200
        and entry.body.get("message") != expected_final_message(entry.message)
    )
    hung = sum(1 for entry in entries if entry.seconds > answer_by)

    window = _window(started_at)
    final_states = Counter(window.values_list("status", flat=True))
    pending = final_states.pop(Transaction.Status.PENDING, 0)
    # A 200 whose transaction is not recorded as succeeded with that text was lost.
    acknowledged = {
        entry.body["transaction_id"]: entry.message
        for entry in entries
        if entry.status == 200 and isinstance(entry.body, dict)
    }
    succeeded = {
        str(transaction_id): final
        for transaction_id, final in Transaction.objects.filter(
            id__in=acknowledged, status=Transaction.Status.SUCCEEDED
        ).values_list("id", "final_message")
    }
    lost = sum(
        1
        for transaction_id, message in acknowledged.items()
        if succeeded.get(transaction_id) != expected_final_message(message)
    )
    duplicate_hops = (
        Hop.objects.filter(transaction__in=window)
        .values("transaction_id", "stage")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    # Every record on the topics: (topic, partition, offset) -> its key.
    records = {
        tuple(record.coordinates.values()): record.key
        for record in read_all([settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC])
    }
    window_ids = {str(i) for i in window.values_list("id", flat=True)}
    per_key = Counter((topic, key) for (topic, _, _), key in records.items() if key in window_ids)
    duplicate_records = sum(n - 1 for n in per_key.values() if n > 1)
    # Every record the relay recorded as acknowledged must still be there, with its key.
    recorded = Hop.objects.filter(transaction__in=window, kafka_offset__isnull=False).values_list(
        "kafka_topic", "kafka_partition", "kafka_offset", "transaction_id"
    )
    unreadable = len(
        [
            coordinates
            for *coordinates, transaction_id in recorded
            if records.get(tuple(coordinates)) != str(transaction_id)
        ]
    )
    sent, failures = len(entries), len(entries) - statuses[200]
    success_ratio = round(statuses[200] / sent, 4) if sent else 0.0
    report = Report(
        scenario=scenario.name,
        sent=sent,
        ok=statuses[200],
        unavailable=statuses[503],
        timed_out=statuses[504],
        other=sum(n for status, n in statuses.items() if status not in (0, 200, 503, 504)),
        no_answer=statuses[0],
        hung=hung,
        wrong_text=wrong_text,
        final_states=dict(final_states),
        pending=pending,
        lost=lost + unreadable,
        duplicated=duplicate_hops + duplicate_records,
        healed_after_seconds=healed,
        success_ratio=success_ratio,
        leader_move_s=moved,
        requirement_met=success_ratio >= scenario.min_success_ratio
        and (scenario.max_failures is None or failures <= scenario.max_failures)
        and (moved is not None or not scenario.must_reroute),
    )
    _say(
        f"{scenario.name}: sent {report.sent}, 200 {report.ok}, 503 {report.unavailable},"
        f" 504 {report.timed_out}, other {report.other}, no answer {report.no_answer},"
        f" hung {report.hung}, wrong text {report.wrong_text}; final states {report.final_states},"
        f" pending {report.pending}; lost {report.lost}, duplicated {report.duplicated};"
        f" healed after {report.healed_after_seconds} s; success ratio {success_ratio}"
        f" (at least {scenario.min_success_ratio}"
        f"{'' if scenario.max_failures is None else f', at most {scenario.max_failures} failed'})"
        f" -> {'ok' if report.passed else 'FAILED'}"
    )
    return report


def chaos(*, quick: bool) -> dict[str, Any]:
    from ops.stack import fresh_stack

    stack, credentials = fresh_stack(CHAOS_DIR, CHAOS_ENV, user="chaos")
    reports = []
    try:
        stack.up()
        for scenario in SCENARIOS:
            reports.append(
                run_scenario(
                    stack,
                    scenario,
                    credentials=credentials,
                    clients=4 if quick else 8,
                    before_seconds=1.5 if quick else 3.0,
                    after_seconds=2.0 if quick else 5.0,
                )
            )
            stack.up()  # every service back, whatever the scenario did
    finally:
        stack.down()
    summary = {
        "scenarios": len(reports),
        "passed": sum(report.passed for report in reports),
        "sent": sum(report.sent for report in reports),
        "ok": sum(report.ok for report in reports),
        "lost": sum(report.lost for report in reports),
        "duplicated": sum(report.duplicated for report in reports),
        "pending": sum(report.pending for report in reports),
        "hung": sum(report.hung for report in reports),
        "failed": [report.scenario for report in reports if not report.passed],
    }
    CHAOS_DIR.mkdir(parents=True, exist_ok=True)
    (CHAOS_DIR / "results.json").write_text(
        json.dumps({"summary": summary, "scenarios": [r.__dict__ for r in reports]}, indent=2)
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer clients, shorter phases")
    args = parser.parse_args(argv)
    summary = chaos(quick=args.quick)
    print(json.dumps(summary), flush=True)
    return 0 if not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
