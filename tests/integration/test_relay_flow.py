"""The whole flow through real Kafka, Redis, gRPC and Celery: texts, logs, records, rows."""

from typing import Any

from django.conf import settings
from django.test import TransactionTestCase, tag

from relay_app.hops import Stage, expected_final_message
from relay_app.models import Hop, Transaction

from ..support import (
    expected_log_lines,
    records_for,
    signed_in_client,
    transaction_log_lines,
    user_with_token,
)

HELLO_WORLD_FINAL = (
    "HELLO WORLD FROM REST AND KAFKA PUBLISHER AND KAFKA CONSUMER AND GRPC CLIENT"
    " AND GRPC SERVER AND KAFKA PUBLISHER AND KAFKA CONSUMER"
)
KAFKA_STAGES = {
    Stage.KAFKA_PUBLISH_REQUEST,
    Stage.KAFKA_CONSUME_REQUEST,
    Stage.KAFKA_PUBLISH_REPLY,
    Stage.KAFKA_CONSUME_REPLY,
}


@tag("postgres")
class RelayFlowTests(TransactionTestCase):
    def setUp(self) -> None:
        self.user, token = user_with_token("relay-flow")
        self.client = signed_in_client(token)

    def relay(self, message: str) -> dict[str, Any]:
        response = self.client.post("/api/relay/", {"message": message}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        body: dict[str, Any] = response.json()
        return body

    def test_hello_world_gives_exactly_the_design_text(self) -> None:
        body = self.relay("hello world")
        self.assertEqual(body["message"], HELLO_WORLD_FINAL)
        self.assertEqual(body["status"], "succeeded")
        self.assertEqual(body["owner"], "relay-flow")
        self.assertEqual([hop["position"] for hop in body["hops"]], list(range(1, 9)))

    def test_original_endpoint_answers_the_final_text_as_a_json_string(self) -> None:
        response = self.client.get("/communication/restKafkaGRPC/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response.content.decode(), f'"{HELLO_WORLD_FINAL}"')

    def test_another_message_gives_its_own_text(self) -> None:
        body = self.relay("ping")
        self.assertEqual(
            body["message"],
            "PING FROM REST AND KAFKA PUBLISHER AND KAFKA CONSUMER AND GRPC CLIENT"
            " AND GRPC SERVER AND KAFKA PUBLISHER AND KAFKA CONSUMER",
        )
        self.assertEqual(body["message"], expected_final_message("ping"))

    def test_the_original_log_lines_appear_in_order_then_the_banner(self) -> None:
        body = self.relay("hello world")
        lines = transaction_log_lines(body["transaction_id"])
        self.assertEqual(lines, expected_log_lines("hello world"))
        self.assertEqual(
            lines[3][:12], "gRPC Client:"
        )  # no space after the colon, as in the original example
        self.assertEqual(lines[-2], HELLO_WORLD_FINAL)

    def test_each_topic_holds_one_record_for_the_transaction(self) -> None:
        body = self.relay("hello world")
        transaction_id = body["transaction_id"]
        hops = {hop["stage"]: hop for hop in body["hops"]}
        for topic, stage in [
            (settings.KAFKA_REQUEST_TOPIC, Stage.KAFKA_PUBLISH_REQUEST),
            (settings.KAFKA_REPLY_TOPIC, Stage.KAFKA_PUBLISH_REPLY),
        ]:
            with self.subTest(topic=topic):
                records = records_for(topic, transaction_id)
                self.assertEqual(len(records), 1, records)
                (record,) = records
                self.assertEqual(record.key, transaction_id)
                self.assertEqual(record.transaction_id, transaction_id)  # the header
                self.assertEqual(record.value, hops[stage.slug]["text"])
                self.assertEqual(
                    (record.coordinates["partition"], record.coordinates["offset"]),
                    (hops[stage.slug]["kafka"]["partition"], hops[stage.slug]["kafka"]["offset"]),
                )
        self.assertEqual(
            hops["kafka_publish_request"]["text"], "hello world from rest and Kafka publisher"
        )

    def test_the_transaction_is_recorded_with_eight_timed_hops(self) -> None:
        body = self.relay("hello world")
        transaction = Transaction.objects.get(id=body["transaction_id"])
        self.assertEqual(transaction.status, Transaction.Status.SUCCEEDED)
        self.assertEqual(transaction.final_message, HELLO_WORLD_FINAL)
        self.assertIsNotNone(transaction.finished_at)
        hops = list(Hop.objects.filter(transaction=transaction).order_by("stage"))
        self.assertEqual([hop.stage for hop in hops], [stage.value for stage in Stage])
        text = "hello world"
        for hop in hops:
            stage = Stage(hop.stage)
            with self.subTest(stage=stage.slug):
                text = stage.spec.apply(text)
                self.assertEqual(hop.text, text)
                self.assertGreaterEqual(hop.finished_at, hop.started_at)
                self.assertGreater(hop.duration.total_seconds(), 0)
                if stage in KAFKA_STAGES:
                    self.assertIn(
                        hop.kafka_topic, {settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC}
                    )
                    self.assertIsNotNone(hop.kafka_partition)
                    self.assertIsNotNone(hop.kafka_offset)
                else:
                    self.assertEqual(hop.kafka_topic, "")
                    self.assertIsNone(hop.kafka_offset)
        # Hops happen one after another: each starts no earlier than the one before it started.
        starts = [hop.started_at for hop in hops]
        self.assertEqual(starts, sorted(starts))
