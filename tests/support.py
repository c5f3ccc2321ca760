"""Helpers for tests that go through the real services."""

import re
import time
from dataclasses import dataclass

from django.conf import settings
from kafka import KafkaConsumer, TopicPartition

from relay_app.hops import HOPS, Stage

SEED_LINE = re.compile(
    r"^(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) (?P<text>.*?)"
    r"(?:\ttransaction_id=(?P<id>\S+))?$"
)


def transaction_log_lines(
    transaction_id: str, *, expected: int = 12, wait: float = 5.0
) -> list[str]:
    """The seed texts (without timestamp) logged for one transaction, in file order."""
    deadline = time.monotonic() + wait
    while True:
        mine = []
        if settings.TRANSACTION_LOG.exists():
            for line in settings.TRANSACTION_LOG.read_text(encoding="utf-8").splitlines():
                match = SEED_LINE.match(line)
                if match and match["id"] == transaction_id:
                    mine.append(match["text"])
        if len(mine) >= expected or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


def expected_log_lines(message: str) -> list[str]:
    """The seed's twelve lines for ``message``: eight hops, then the closing banner."""
    lines, text = [], message
    for stage in Stage:
        text = HOPS[stage].apply(text)
        lines.append(f"{HOPS[stage].log_label}{text} ")
    banner = "#" * 92
    return [*lines, banner, "End of transaction with Message:", text.upper(), banner]


@dataclass(frozen=True)
class SeenRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def records_for(topic: str, transaction_id: str) -> list[SeenRecord]:
    """Every record on ``topic`` keyed by ``transaction_id``, read by a separate consumer."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found = []
        deadline = time.monotonic() + 10
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within 10 s")
            for batch in consumer.poll(timeout_ms=500).values():
                found += [
                    SeenRecord(r.topic, r.partition, r.offset, r.key, r.value, dict(r.headers))
                    for r in batch
                    if r.key == transaction_id.encode()
                ]
        return found
    finally:
        consumer.close()
