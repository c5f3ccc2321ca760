"""What one scenario found, its ledger checked against what the database and both Kafka
topics hold for the scenario's window; and the one summary of a run, for ``make chaos`` and
``make chaos-cluster`` alike (keep every field of its line once added: scripts read them)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.ledger import Entry

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from ops.chaos.scenarios import Scenario
    from relay_app.models import Transaction


def say(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


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
    retried_attempts: int = 0  # attempts of hops that failed and were tried again
    requirement_met: bool = True  # the scenario's share of successes and most failures

    @property
    def passed(self) -> bool:
        faults = (
            self.lost,
            self.duplicated,
            self.pending,
            self.hung,
            self.wrong_text,
            self.no_answer,
        )
        return self.requirement_met and not any(faults) and self.healed_after_seconds is not None


def status(entry: Entry) -> int:
    """The entry's HTTP status, or 0 (no answer) for one that is not the relay's JSON object."""
    return entry.status if isinstance(entry.body, dict) else 0


def right(entry: Entry) -> bool:
    """A 200 with the exact text for its own message."""
    from relay_app.hops import expected_final_message

    return status(entry) == 200 and entry.body.get("message") == expected_final_message(
        entry.message
    )


def window(started_at: float) -> QuerySet[Transaction]:
    """The transactions created since ``started_at`` (and a second before, for clock steps)."""
    from django.utils import timezone

    from relay_app.models import Transaction

    since = datetime.fromtimestamp(started_at, timezone.get_current_timezone())
    return Transaction.objects.filter(created_at__gte=since - timedelta(seconds=1))


def answers(entries: list[Entry], answer_by: float) -> dict[str, int]:
    """What the clients received, and how many waited past ``answer_by`` seconds."""
    statuses = Counter(status(entry) for entry in entries)
    return {
        "sent": len(entries),
        "ok": statuses[200],
        "unavailable": statuses[503],
        "timed_out": statuses[504],
        "other": sum(n for code, n in statuses.items() if code not in (0, 200, 503, 504)),
        "no_answer": statuses[0],
        "hung": sum(entry.seconds > answer_by for entry in entries),
        "wrong_text": sum(status(entry) == 200 and not right(entry) for entry in entries),
    }


def database(transactions: QuerySet[Transaction], entries: list[Entry]) -> dict[str, Any]:
    """Final states, and what the database holds against what the clients were told: a 200
    whose transaction is not recorded as succeeded with that text was lost."""
    from django.db.models import Count

    from relay_app.hops import expected_final_message
    from relay_app.models import Hop, Transaction

    final_states = Counter(transactions.values_list("status", flat=True))
    pending = final_states.pop(Transaction.Status.PENDING, 0)
    acknowledged = {e.body["transaction_id"]: e.message for e in entries if status(e) == 200}
    succeeded = {
        str(transaction_id): final
        for transaction_id, final in Transaction.objects.filter(
            id__in=acknowledged, status=Transaction.Status.SUCCEEDED
        ).values_list("id", "final_message")
    }
    lost = sum(
        succeeded.get(transaction_id) != expected_final_message(message)
        for transaction_id, message in acknowledged.items()
    )
    duplicate_hops = (
        Hop.objects.filter(transaction__in=transactions)
        .values("transaction_id", "stage")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    from relay_app.models import Attempt

    retried = Attempt.objects.filter(transaction__in=transactions, retried=True).count()
    return {
        "final_states": dict(final_states),
        "pending": pending,
        "lost": lost,
        "duplicated": duplicate_hops,
        "retried_attempts": retried,
    }


def kafka(transactions: QuerySet[Transaction]) -> tuple[int, int]:
    """Records of the window's transactions found twice on a topic, and records the relay
    recorded as acknowledged that are no longer readable with their key."""
    from django.conf import settings

    from ops.kafka_tools import read_all
    from relay_app.models import Hop

    records = {  # (topic, partition, offset) -> its key
        tuple(record.coordinates.values()): record.key
        for record in read_all([settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC])
    }
    ids = {str(i) for i in transactions.values_list("id", flat=True)}
    per_key = Counter((topic, key) for (topic, _, _), key in records.items() if key in ids)
    recorded = Hop.objects.filter(
        transaction__in=transactions, kafka_offset__isnull=False
    ).values_list("kafka_topic", "kafka_partition", "kafka_offset", "transaction_id")
    unreadable = sum(
        records.get(tuple(coordinates)) != str(transaction_id)
        for *coordinates, transaction_id in recorded
    )
    return sum(n - 1 for n in per_key.values() if n > 1), unreadable


def check(
    scenario: Scenario,
    entries: list[Entry],
    started_at: float,
    answer_by: float,
    healed: float | None,
    moved: float | None,
) -> Report:
    """The scenario's report: a client must have had its answer within ``answer_by`` seconds."""
    transactions = window(started_at)
    received, stored = answers(entries, answer_by), database(transactions, entries)
    duplicate_records, unreadable = kafka(transactions)
    sent, failures = received["sent"], received["sent"] - received["ok"]
    success_ratio = round(received["ok"] / sent, 4) if sent else 0.0
    return Report(
        scenario=scenario.name,
        **received,
        final_states=stored["final_states"],
        pending=stored["pending"],
        lost=stored["lost"] + unreadable,
        duplicated=stored["duplicated"] + duplicate_records,
        retried_attempts=stored["retried_attempts"],
        healed_after_seconds=healed,
        success_ratio=success_ratio,
        leader_move_s=moved,
        requirement_met=success_ratio >= scenario.min_success_ratio
        and (scenario.max_failures is None or failures <= scenario.max_failures)
        and (moved is not None or not scenario.must_reroute),
    )


def summarize(reports: list[Report]) -> dict[str, Any]:
    """The run's one line: its figures, and which scenarios failed. ``ok`` and ``succeeded``
    are the same count, the 200s, under the names chaos and chaos-cluster first gave it."""
    moves = [report.leader_move_s for report in reports if report.leader_move_s is not None]
    return {
        "scenarios": len(reports),
        "passed": sum(report.passed for report in reports),
        "sent": sum(report.sent for report in reports),
        "ok": sum(report.ok for report in reports),
        "succeeded": sum(report.ok for report in reports),
        "lost": sum(report.lost for report in reports),
        "duplicated": sum(report.duplicated for report in reports),
        "pending": sum(report.pending for report in reports),
        "hung": sum(report.hung for report in reports),
        "success_ratio_min": min((report.success_ratio for report in reports), default=0.0),
        "leader_move_s_max": max(moves, default=None),
        "retried_attempts": sum(report.retried_attempts for report in reports),
        "failed": [report.scenario for report in reports if not report.passed],
    }


def write(path: Path, reports: list[Report]) -> dict[str, Any]:
    """The run's summary, written with every scenario's report to ``path``."""
    summary = summarize(reports)
    path.parent.mkdir(parents=True, exist_ok=True)
    scenarios = [asdict(report) for report in reports]
    path.write_text(json.dumps({"summary": summary, "scenarios": scenarios}, indent=2))
    return summary
