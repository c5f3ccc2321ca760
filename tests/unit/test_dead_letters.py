"""Dead letters' headers in Spring Kafka's names and encodings, and where a transaction
shows its dead letter (through the real stack: tests/integration/test_dead_letters.py)."""

import json
import struct
from datetime import UTC, datetime
from unittest import mock

from django.test import SimpleTestCase

from relay_app import tasks
from relay_app.errors import DeadlineExceeded, DependencyUnavailable
from relay_app.hops import Stage
from relay_app.integrations import dead_letters as spring
from relay_app.integrations.kafka_records import Record, RecordCoordinates, dead_letter_topic
from relay_app.models import Transaction
from relay_app.services.dead_letters import dead_letter_of

RECORD = Record(
    coordinates=RecordCoordinates(topic="CommunicationTopic", partition=2, offset=70_000_000_000),
    key="6f1c",
    transaction_id="6f1c",
    value="hi from rest and Kafka publisher",
    headers=(("transaction_id", b"6f1c"), ("traceparent", b"00-ab-cd-01")),
    timestamp=1_764_928_800_123,
    timestamp_type=0,
)


class HeaderTests(SimpleTestCase):
    def headers(self, failure: spring.Failure) -> list[tuple[str, bytes]]:
        return spring.dead_letter_headers(
            RECORD, failure=failure, attempts=[{"stage": "grpc_server", "number": 1}]
        )

    def test_the_original_headers_come_first_then_springs_in_its_encodings(self) -> None:
        try:
            try:
                raise ConnectionError("refused")
            except ConnectionError as cause:
                raise DependencyUnavailable("gRPC server", "no connection") from cause
        except DependencyUnavailable as error:
            failure = spring.failure_of(error, "Traceback ...")
        headers = self.headers(failure)
        self.assertEqual(headers[:2], list(RECORD.headers))
        found = dict(headers)
        self.assertEqual(found["kafka_dlt-original-topic"], b"CommunicationTopic")
        self.assertEqual(found["kafka_dlt-original-partition"], b"\x00\x00\x00\x02")
        self.assertEqual(struct.unpack(">q", found["kafka_dlt-original-offset"])[0], 70_000_000_000)
        self.assertEqual(
            struct.unpack(">q", found["kafka_dlt-original-timestamp"])[0], 1_764_928_800_123
        )
        self.assertEqual(found["kafka_dlt-original-timestamp-type"], b"CreateTime")
        self.assertEqual(
            found["kafka_dlt-exception-fqcn"], b"relay_app.errors.DependencyUnavailable"
        )
        self.assertEqual(found["kafka_dlt-exception-cause-fqcn"], b"builtins.ConnectionError")
        self.assertEqual(
            found["kafka_dlt-exception-message"], b"gRPC server is unavailable: no connection"
        )
        self.assertEqual(found["kafka_dlt-exception-stacktrace"], b"Traceback ...")
        self.assertEqual(
            json.loads(found["relay_attempts"]), [{"stage": "grpc_server", "number": 1}]
        )

    def test_an_error_without_a_cause_writes_no_cause_header(self) -> None:
        failure = spring.Failure(fqcn="x.Y", message="m", stacktrace="x.Y: m")
        self.assertNotIn(spring.EXCEPTION_CAUSE_FQCN, dict(self.headers(failure)))


class WhereItWentTests(SimpleTestCase):
    def test_none_until_kafka_has_it(self) -> None:
        claimed = Transaction(dead_letter_topic="CommunicationTopic.DLT")
        self.assertIsNone(dead_letter_of(claimed))

    def test_the_request_records_is_redriven_from_hop_4_the_replys_from_hop_8(self) -> None:
        at = datetime(2026, 12, 5, tzinfo=UTC)
        for topic, read_by in (
            ("CommunicationTopic", Stage.KAFKA_CONSUME_REQUEST),
            ("CommunicationRestTopic", Stage.KAFKA_CONSUME_REPLY),
        ):
            written = Transaction(
                dead_letter_topic=dead_letter_topic(topic),
                dead_letter_partition=1,
                dead_letter_offset=5,
                dead_letter_at=at,
            )
            dead = dead_letter_of(written)
            assert dead is not None
            self.assertEqual((dead.read_by, dead.redrive_from_hop), (read_by, read_by + 1))
            self.assertEqual(str(dead), f"{topic}.DLT[1]@5")


class FailingTaskTests(SimpleTestCase):
    def test_kafkas_own_outage_leaves_the_dead_letter_to_the_sweep(self) -> None:
        with mock.patch("relay_app.tasks.dead_letter_write") as write:
            tasks._dead_letter(ID, DependencyUnavailable("Kafka", "down", kind="not_queued"))
            try:
                raise DeadlineExceeded(Stage.KAFKA_PUBLISH_REPLY) from DependencyUnavailable(
                    "Kafka", "down"
                )
            except DeadlineExceeded as timed_out:
                tasks._dead_letter(ID, timed_out)
            write.assert_not_called()
            tasks._dead_letter(ID, DependencyUnavailable("gRPC server", "down"))
            write.assert_called_once()

    def test_writing_it_never_fails_the_task(self) -> None:
        with (
            mock.patch("relay_app.tasks.dead_letter_write", side_effect=RuntimeError("db")),
            self.assertLogs("relay_app.tasks", "ERROR") as logged,
        ):
            tasks._dead_letter(ID, None)
        self.assertIn("writing its dead letter broke", logged.output[0])


ID = "6f1c3d2e-8a4b-4c5d-9e6f-0a1b2c3d4e5f"
