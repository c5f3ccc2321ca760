"""The chain's arithmetic and its Kafka hop against in-process fakes: one budget shared by
every hop, Kafka's own limit within it, and what a failing hop records; hop 8 and a broken
hop, settled from the records."""

import time
from datetime import timedelta
from typing import Any
from unittest import mock

from django.test import SimpleTestCase, TestCase, override_settings, tag
from django.utils import timezone
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from relay_app.errors import DeadlineExceeded, DependencyUnavailable, TransactionEnded
from relay_app.hops import Stage, expected_final_message
from relay_app.integrations.kafka_records import KafkaGateway, RecordCoordinates
from relay_app.models import Attempt, Hop, Transaction
from relay_app.retries import policy_for
from relay_app.services.chain import (
    ChainPayload,
    kafka_publish,
    kafka_wait,
    rest_respond,
    settled_if_broken,
    time_left,
)
from relay_app.services.transactions import (
    HopRecord,
    hops_record,
    transaction_cancel,
    transaction_start,
    transaction_time_out,
)


def payload(seconds_left: float, transaction_id: str = "t") -> ChainPayload:
    return {"transaction_id": transaction_id, "text": "x", "deadline": time.time() + seconds_left}


class DeadlineTests(SimpleTestCase):
    def test_time_left_counts_down_to_the_deadline_then_names_the_hop(self) -> None:
        self.assertAlmostEqual(time_left(payload(3.0), Stage.GRPC_SERVER), 3.0, delta=0.1)
        with self.assertRaises(DeadlineExceeded) as raised:
            time_left(payload(-0.01), Stage.GRPC_SERVER)
        self.assertEqual(raised.exception.stage, Stage.GRPC_SERVER)
        self.assertEqual(str(raised.exception), "the deadline passed while waiting on grpc_server")

    @override_settings(KAFKA_TIMEOUT_SECONDS=2.0)
    def test_kafka_waits_what_is_left_but_never_longer_than_its_own_limit(self) -> None:
        self.assertAlmostEqual(kafka_wait(payload(4.0), Stage.KAFKA_PUBLISH_REQUEST), 2.0)
        self.assertAlmostEqual(
            kafka_wait(payload(0.5), Stage.KAFKA_PUBLISH_REQUEST), 0.5, delta=0.05
        )


class FakeFuture:
    """What a producer's ``send`` returns, failing as an unanswered broker's does."""

    def __init__(self, error: Exception | None = None, **metadata: Any) -> None:
        self.error, self.metadata = error, mock.Mock(**metadata)

    def get(self, timeout: float) -> Any:
        if self.error:
            raise self.error
        return self.metadata


@tag("postgres")
class KafkaHopTests(TestCase):
    def gateway(self, future: FakeFuture) -> KafkaGateway:
        gateway = KafkaGateway("127.0.0.1:1", connect_timeout=0.1)
        producer = mock.Mock(**{"send.return_value": future})
        gateway.producer = lambda: producer  # type: ignore[method-assign]
        return gateway

    def start(self) -> str:
        deadline = timezone.now() + timedelta(seconds=5)
        return str(transaction_start(message="m", owner=None, deadline_at=deadline).id)

    def test_an_acknowledged_record_is_the_hop_with_its_coordinates(self) -> None:
        transaction_id = self.start()
        gateway = self.gateway(FakeFuture(partition=2, offset=41))
        with mock.patch("relay_app.services.chain.get_kafka", return_value=gateway):
            after = kafka_publish(
                payload(5, transaction_id), stage=Stage.KAFKA_PUBLISH_REQUEST, topic="requests"
            )
        self.assertEqual(after["text"], "x and Kafka publisher")
        self.assertEqual(
            after["record"], RecordCoordinates(topic="requests", partition=2, offset=41)
        )
        hop = Transaction.objects.get(id=transaction_id).hops.get(stage=Stage.KAFKA_PUBLISH_REQUEST)
        self.assertEqual(
            (hop.kafka_topic, hop.kafka_partition, hop.kafka_offset), ("requests", 2, 41)
        )

    def test_no_acknowledgement_fails_the_transaction_with_a_reason_naming_no_host(self) -> None:
        transaction_id = self.start()
        unanswered = FakeFuture(KafkaTimeoutError("Unable to bootstrap from 10.1.2.3:9092"))
        gateway = self.gateway(unanswered)
        with (
            mock.patch("relay_app.services.chain.get_kafka", return_value=gateway),
            self.assertLogs("relay_app.services.chain", "WARNING") as logged,
            self.assertRaises(DependencyUnavailable),
        ):
            kafka_publish(
                payload(5, transaction_id), stage=Stage.KAFKA_PUBLISH_REQUEST, topic="requests"
            )
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.FAILED)
        self.assertEqual(transaction.failed_stage, Stage.KAFKA_PUBLISH_REQUEST)
        self.assertEqual(
            transaction.error,
            "Kafka is unavailable: publishing to requests was not acknowledged within 2 s;"
            " after 3 attempts",
        )
        self.assertIn("10.1.2.3:9092", logged.output[0])  # the operator's log has the details
        # Each attempt waited again for the one record: it was sent once.
        self.assertEqual(gateway.producer().send.call_count, 1)
        attempts = list(Attempt.objects.filter(transaction_id=transaction_id))
        self.assertEqual([a.number for a in attempts], [1, 2, 3])
        self.assertEqual({a.kind for a in attempts}, {"unacknowledged"})
        self.assertEqual([a.retried for a in attempts], [True, True, False])

    def test_a_record_the_producer_never_took_is_sent_again(self) -> None:
        transaction_id = self.start()
        gateway = self.gateway(FakeFuture(partition=0, offset=9))
        producer = gateway.producer()
        producer.send.side_effect = [
            KafkaTimeoutError("no metadata"),
            FakeFuture(partition=0, offset=9),
        ]
        with mock.patch("relay_app.services.chain.get_kafka", return_value=gateway):
            after = kafka_publish(
                payload(5, transaction_id), stage=Stage.KAFKA_PUBLISH_REQUEST, topic="requests"
            )
        self.assertEqual(after["record"]["offset"], 9)
        self.assertEqual(producer.send.call_count, 2)
        hop = Hop.objects.get(transaction_id=transaction_id, stage=Stage.KAFKA_PUBLISH_REQUEST)
        self.assertEqual(hop.attempt, 2)
        (failed,) = Attempt.objects.filter(transaction_id=transaction_id)
        self.assertEqual((failed.number, failed.kind, failed.retried), (1, "not_queued", True))

    def test_a_record_the_producer_gave_up_on_is_not_sent_again(self) -> None:
        transaction_id = self.start()
        gateway = self.gateway(FakeFuture(KafkaConnectionError("reset by peer")))
        with (
            mock.patch("relay_app.services.chain.get_kafka", return_value=gateway),
            self.assertRaises(DependencyUnavailable),
        ):
            kafka_publish(
                payload(5, transaction_id), stage=Stage.KAFKA_PUBLISH_REQUEST, topic="requests"
            )
        self.assertEqual(gateway.producer().send.call_count, 1)
        (failed,) = Attempt.objects.filter(transaction_id=transaction_id)
        self.assertEqual((failed.kind, failed.retried), ("failed", False))
        self.assertIn("failed is not worth another attempt", failed.error)

    def test_no_attempt_is_made_without_the_time_the_hop_typically_takes(self) -> None:
        transaction_id = self.start()
        unanswered = FakeFuture(KafkaTimeoutError("slow"))
        with (
            mock.patch("relay_app.services.chain.get_kafka", return_value=self.gateway(unanswered)),
            override_settings(RELAY_RETRY_KAFKA_PUBLISH_TYPICAL_SECONDS=10.0),
            self.assertRaises(DependencyUnavailable),
        ):
            policy_for.cache_clear()
            try:
                kafka_publish(
                    payload(5, transaction_id), stage=Stage.KAFKA_PUBLISH_REQUEST, topic="requests"
                )
            finally:
                policy_for.cache_clear()
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.FAILED)
        self.assertIn("no attempt after attempt 1", transaction.error)
        self.assertIn("10.000 s this hop typically takes", transaction.error)
        self.assertEqual(Attempt.objects.filter(transaction_id=transaction_id).count(), 1)

    def test_a_cancelled_transaction_is_not_published(self) -> None:
        transaction_id = self.start()
        transaction_cancel(transaction_id=transaction_id, by=None)
        gateway = self.gateway(FakeFuture(partition=0, offset=1))
        with (
            mock.patch("relay_app.services.chain.get_kafka", return_value=gateway),
            self.assertRaises(TransactionEnded),
        ):
            kafka_publish(
                payload(5, transaction_id), stage=Stage.KAFKA_PUBLISH_REQUEST, topic="requests"
            )
        self.assertEqual(gateway.producer().send.call_count, 0)
        self.assertEqual(Hop.objects.filter(transaction_id=transaction_id).count(), 1)


@tag("postgres")
class SettlementTests(TestCase):
    """Hop 8 and a broken hop settle the transaction from its records alone."""

    def start(self, *, through: Stage) -> str:
        transaction = transaction_start(
            message="m", owner=None, deadline_at=timezone.now() + timedelta(seconds=5)
        )
        text, now = "m from rest", timezone.now()
        hops = []
        for stage in Stage:
            if Stage.REST_REQUEST < stage <= through:
                text = stage.spec.apply(text)
                hops.append(HopRecord(stage, text, now, now))
        hops_record(transaction_id=str(transaction.id), hops=hops)
        return str(transaction.id)

    def test_hop_8_answers_hop_7s_recorded_text(self) -> None:
        transaction_id = self.start(through=Stage.KAFKA_CONSUME_REPLY)
        self.assertTrue(rest_respond(transaction_id=transaction_id))
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.SUCCEEDED)
        self.assertEqual(transaction.final_message, expected_final_message("m"))
        self.assertEqual(transaction.hops.count(), len(Stage))
        self.assertTrue(rest_respond(transaction_id=transaction_id))  # idempotent
        self.assertEqual(transaction.hops.count(), len(Stage))

    def test_without_every_hop_before_it_there_is_no_hop_8(self) -> None:
        transaction_id = self.start(through=Stage.KAFKA_PUBLISH_REPLY)
        self.assertFalse(rest_respond(transaction_id=transaction_id))
        Hop.objects.filter(transaction_id=transaction_id, stage=Stage.GRPC_CLIENT).delete()
        now = timezone.now()
        hop_7 = HopRecord(Stage.KAFKA_CONSUME_REPLY, "forged", now, now)
        hops_record(transaction_id=transaction_id, hops=[hop_7])  # hop 7, but no hop 4
        self.assertFalse(rest_respond(transaction_id=transaction_id))
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.PENDING)
        self.assertFalse(transaction.hops.filter(stage=Stage.REST_RESPONSE).exists())

    def test_a_transaction_that_ended_otherwise_gets_no_hop_8(self) -> None:
        transaction_id = self.start(through=Stage.KAFKA_CONSUME_REPLY)
        transaction_time_out(transaction_id=transaction_id)
        self.assertTrue(rest_respond(transaction_id=transaction_id))
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.TIMED_OUT)
        self.assertFalse(transaction.hops.filter(stage=Stage.REST_RESPONSE).exists())

    def test_a_transaction_timed_out_while_retrying_says_why_its_last_attempt_failed(
        self,
    ) -> None:
        transaction_id = self.start(through=Stage.REST_REQUEST)
        now = timezone.now()
        for number, error in enumerate(("first", "Kafka is unavailable: not acknowledged"), 1):
            Attempt.objects.create(
                transaction_id=transaction_id,
                stage=Stage.KAFKA_PUBLISH_REQUEST,
                number=number,
                started_at=now + timedelta(seconds=number),
                finished_at=now + timedelta(seconds=number),
                outcome="failed",
                error=error,
            )
        self.assertTrue(transaction_time_out(transaction_id=transaction_id))
        self.assertTrue(
            Transaction.objects.get(id=transaction_id).error.endswith(
                "waiting on kafka_publish_request; its last attempt: Kafka is unavailable:"
                " not acknowledged"
            )
        )

    def test_a_hop_that_breaks_unforeseen_fails_its_transaction_with_a_safe_reason(self) -> None:
        transaction_id = self.start(through=Stage.KAFKA_CONSUME_REQUEST)
        with (
            self.assertLogs("relay_app.services.chain", "ERROR") as logged,
            self.assertRaises(KeyError),
            settled_if_broken(payload(5, transaction_id)),
        ):
            raise KeyError("secret detail")
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.FAILED)
        self.assertEqual(transaction.failed_stage, Stage.GRPC_CLIENT)
        self.assertEqual(transaction.error, "the relay failed inside a hop (KeyError)")
        self.assertIn("secret detail", logged.output[0])
