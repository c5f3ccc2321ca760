"""Dead letters with the headers Spring Kafka's ``DeadLetterPublishingRecoverer`` writes, by
its names and in its encodings, so that tools made for those read ours as they are.

A dead letter is the failed record again (same key, value and headers) with these added:
the original topic (UTF-8), partition (4-byte big-endian int), offset and timestamp (8-byte
big-endian longs, the timestamp in Unix milliseconds), the timestamp's type (``CreateTime``
or ``LogAppendTime``), the exception's class, message and stack trace (UTF-8), its cause's
class where it has one, and the relay's own ``relay_attempts`` (JSON: every attempt that did
not succeed). Spring's ``kafka_dlt-original-consumer-group`` is left out: the relay reads
records by their coordinates, in no consumer group.
"""

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .kafka_records import Record

ORIGINAL_TOPIC = "kafka_dlt-original-topic"
ORIGINAL_PARTITION = "kafka_dlt-original-partition"
ORIGINAL_OFFSET = "kafka_dlt-original-offset"
ORIGINAL_TIMESTAMP = "kafka_dlt-original-timestamp"
ORIGINAL_TIMESTAMP_TYPE = "kafka_dlt-original-timestamp-type"
EXCEPTION_FQCN = "kafka_dlt-exception-fqcn"
EXCEPTION_CAUSE_FQCN = "kafka_dlt-exception-cause-fqcn"
EXCEPTION_MESSAGE = "kafka_dlt-exception-message"
EXCEPTION_STACKTRACE = "kafka_dlt-exception-stacktrace"
ATTEMPTS = "relay_attempts"

#: Kafka's ``TimestampType`` names, by the number kafka-python reads.
TIMESTAMP_TYPES = {0: "CreateTime", 1: "LogAppendTime"}


@dataclass(frozen=True)
class Failure:
    """Why the transaction failed, as the exception headers say it."""

    fqcn: str  # the exception's class, with its module: relay_app.errors.DeadlineExceeded
    message: str
    stacktrace: str
    cause_fqcn: str = ""


def failure_of(error: BaseException, stacktrace: str) -> Failure:
    """The ``Failure`` an exception describes."""
    cause = error.__cause__
    return Failure(
        fqcn=qualified_name(type(error)),
        message=str(error),
        stacktrace=stacktrace,
        cause_fqcn=qualified_name(type(cause)) if cause is not None else "",
    )


def qualified_name(kind: type) -> str:
    """``relay_app.errors.DeadlineExceeded``: a class as Java's ``getName()`` names one."""
    return f"{kind.__module__}.{kind.__qualname__}"


def dead_letter_headers(
    record: Record, *, failure: Failure, attempts: Sequence[dict[str, Any]]
) -> list[tuple[str, bytes]]:
    """The dead letter's headers: ``record``'s own, then Spring's and the attempts."""
    coordinates = record.coordinates
    added = [
        (ORIGINAL_TOPIC, coordinates["topic"].encode()),
        (ORIGINAL_PARTITION, struct.pack(">i", coordinates["partition"])),
        (ORIGINAL_OFFSET, struct.pack(">q", coordinates["offset"])),
        (ORIGINAL_TIMESTAMP, struct.pack(">q", record.timestamp)),
        (
            ORIGINAL_TIMESTAMP_TYPE,
            TIMESTAMP_TYPES.get(record.timestamp_type, "NoTimestampType").encode(),
        ),
        (EXCEPTION_FQCN, failure.fqcn.encode()),
        *([(EXCEPTION_CAUSE_FQCN, failure.cause_fqcn.encode())] if failure.cause_fqcn else []),
        (EXCEPTION_MESSAGE, failure.message.encode()),
        (EXCEPTION_STACKTRACE, failure.stacktrace.encode()),
        (ATTEMPTS, json.dumps(list(attempts), separators=(",", ":")).encode()),
    ]
    return [*record.headers, *added]
