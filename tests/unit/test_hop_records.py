"""A hop's record, its lookup and its next attempt's number, in plain SQL: the same rows as
the ORM's, a re-run kept as it was, on SQLite and PostgreSQL alike."""

from datetime import timedelta

from django.test import TestCase, tag
from django.utils import timezone

from relay_app.hops import Stage
from relay_app.integrations.kafka_records import RecordCoordinates
from relay_app.models import Attempt, Hop, Transaction
from relay_app.selectors import attempt_next_number, hop_find
from relay_app.services.transactions import HopRecord, hops_record


@tag("postgres")
class HopRecordTests(TestCase):
    def setUp(self) -> None:
        self.transaction = Transaction.objects.create(
            owner=None, message="hi", deadline_at=timezone.now() + timedelta(seconds=5)
        )
        self.transaction_id = str(self.transaction.id)
        self.started = timezone.now()

    def test_a_hop_is_recorded_as_the_orm_reads_it(self) -> None:
        coordinates = RecordCoordinates(topic="CommunicationTopic", partition=2, offset=41)
        finished = self.started + timedelta(milliseconds=3)
        hops_record(
            transaction_id=self.transaction_id,
            hops=[
                HopRecord(
                    Stage.KAFKA_PUBLISH_REQUEST, "hi é 🙂", self.started, finished, coordinates
                ),
                HopRecord(Stage.GRPC_CLIENT, "no record", self.started, finished),
            ],
        )
        hop = Hop.objects.get(transaction=self.transaction, stage=Stage.KAFKA_PUBLISH_REQUEST)
        self.assertEqual(
            (hop.text, hop.started_at, hop.finished_at), ("hi é 🙂", self.started, finished)
        )
        self.assertEqual(
            (hop.kafka_topic, hop.kafka_partition, hop.kafka_offset), ("CommunicationTopic", 2, 41)
        )
        other = Hop.objects.get(transaction=self.transaction, stage=Stage.GRPC_CLIENT)
        self.assertEqual((other.kafka_topic, other.kafka_partition), ("", None))

    def test_a_re_run_keeps_the_first_record(self) -> None:
        for text in ("first", "second"):
            hops_record(
                transaction_id=self.transaction_id,
                hops=[HopRecord(Stage.GRPC_CLIENT, text, self.started, self.started)],
            )
        hops = Hop.objects.filter(transaction=self.transaction)
        self.assertEqual([hop.text for hop in hops], ["first"])

    def test_the_lookup_finds_what_a_re_run_needs(self) -> None:
        self.assertIsNone(
            hop_find(transaction_id=self.transaction_id, stage=Stage.KAFKA_PUBLISH_REPLY)
        )
        coordinates = RecordCoordinates(topic="CommunicationRestTopic", partition=0, offset=7)
        hops_record(
            transaction_id=self.transaction_id,
            hops=[
                HopRecord(
                    Stage.KAFKA_PUBLISH_REPLY, "text", self.started, self.started, coordinates
                )
            ],
        )
        found = hop_find(transaction_id=self.transaction_id, stage=Stage.KAFKA_PUBLISH_REPLY)
        assert found is not None
        self.assertEqual(
            (found.text, found.kafka_topic, found.kafka_partition, found.kafka_offset),
            ("text", "CommunicationRestTopic", 0, 7),
        )
        self.assertIsNone(hop_find(transaction_id=self.transaction_id, stage=Stage.GRPC_SERVER))

    def test_the_next_attempt_counts_on_from_the_last_of_its_stage(self) -> None:
        self.assertEqual(
            attempt_next_number(transaction_id=self.transaction_id, stage=Stage.GRPC_SERVER), 1
        )
        other = Transaction.objects.create(
            owner=None, message="other", deadline_at=self.transaction.deadline_at
        )
        for transaction, stage, number in (
            (self.transaction, Stage.GRPC_SERVER, 1),
            (self.transaction, Stage.GRPC_SERVER, 2),
            (self.transaction, Stage.KAFKA_CONSUME_REQUEST, 5),
            (other, Stage.GRPC_SERVER, 7),
        ):
            Attempt.objects.create(
                transaction=transaction,
                stage=stage,
                number=number,
                started_at=self.started,
                finished_at=self.started,
                outcome=Attempt.Outcome.FAILED,
            )
        self.assertEqual(
            attempt_next_number(transaction_id=self.transaction_id, stage=Stage.GRPC_SERVER), 3
        )
        self.assertEqual(
            attempt_next_number(
                transaction_id=self.transaction_id, stage=Stage.KAFKA_PUBLISH_REPLY
            ),
            1,
        )
