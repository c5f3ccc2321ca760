"""Dead letters through the real stack: a transaction failed at the gRPC hop (its server
down) has the request record it read back written once to the request topic's dead-letter
topic, with Spring Kafka's dead-letter headers in their encodings, read by kcat and by a
plain kafka-python consumer; its task delivered again writes no second one."""

import json
import shutil
import struct
import subprocess
import time
import unittest
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.test import TransactionTestCase, tag
from django.utils import timezone
from kafka import KafkaConsumer, TopicPartition

from relay_app import tasks
from relay_app.hops import Stage
from relay_app.integrations import dead_letters as spring
from relay_app.integrations.kafka_records import (
    client_options,
    close_kafka,
    dead_letter_topic,
)
from relay_app.models import Hop, Transaction
from relay_app.services.chain import ChainPayload, payload_seal
from relay_app.services.dead_letters import dead_letter_write, dead_letters_sweep

from ..support import records_for, service_stopped, signed_in_client, user_with_token
from .test_metrics import moved, samples, scrape_port

DLT = dead_letter_topic(settings.KAFKA_REQUEST_TOPIC)


def decoded(headers: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The dead-letter headers by name, each decoded as Spring Kafka encodes it."""
    found = dict(headers)
    return {
        "topic": found[spring.ORIGINAL_TOPIC].decode(),
        "partition": struct.unpack(">i", found[spring.ORIGINAL_PARTITION])[0],
        "offset": struct.unpack(">q", found[spring.ORIGINAL_OFFSET])[0],
        "timestamp": struct.unpack(">q", found[spring.ORIGINAL_TIMESTAMP])[0],
        "timestamp_type": found[spring.ORIGINAL_TIMESTAMP_TYPE].decode(),
        "fqcn": found[spring.EXCEPTION_FQCN].decode(),
        "message": found[spring.EXCEPTION_MESSAGE].decode(),
        "stacktrace": found[spring.EXCEPTION_STACKTRACE].decode(),
        "attempts": json.loads(found[spring.ATTEMPTS]),
        "transaction_id": found["transaction_id"].decode(),
    }


def kcat_envelope(printed: bytes) -> dict[str, Any]:
    """A record as kcat's ``-J`` prints it: JSON whose strings hold each byte of a value
    as it is, control characters escaped (``\\u0000``) and the rest raw, so read byte for
    character (Latin-1) and encoded back the same way."""
    return cast(dict[str, Any], json.loads(printed.decode("latin-1")))


@tag("postgres")
class DeadLetterTests(TransactionTestCase):
    def setUp(self) -> None:
        _, token = user_with_token("dead-lettered")
        self.client = signed_in_client(token)
        # Some tests write dead letters from this process: its Kafka clients go with them,
        # rather than reconnect (and log so) each time a later test stops Kafka.
        self.addCleanup(close_kafka)

    def failed_at_grpc(self) -> dict[str, Any]:
        """A relay while the gRPC server is down, and its transaction once its dead letter
        is written (moments after the answer)."""
        with service_stopped("grpc"):
            response = self.client.post("/api/relay/", {"message": "undeliverable"}, format="json")
        self.assertIn(response.status_code, (503, 504), response.content)
        transaction_id = response.json()["transaction_id"]
        give_up = time.monotonic() + 15
        while time.monotonic() < give_up:
            body = self.client.get(f"/api/transactions/{transaction_id}/").json()
            if body["dead_letter"] is not None:
                return cast(dict[str, Any], body)
            time.sleep(0.1)
        self.fail(f"no dead letter for {transaction_id}: {body}")

    def test_a_transaction_failed_at_the_grpc_hop_has_its_request_record_dead_lettered(
        self,
    ) -> None:
        worker = settings.RELAY_WORKER_METRICS_ADDRESS.split(",")[0]
        before = samples(scrape_port(worker))
        body = self.failed_at_grpc()
        written = [("topic", DLT), ("result", "written")]
        after = samples(scrape_port(worker))
        self.assertEqual(moved(before, after, "relay_dead_letters_total", written), 1)
        transaction_id = body["transaction_id"]
        read_back = Hop.objects.get(
            transaction_id=transaction_id, stage=Stage.KAFKA_CONSUME_REQUEST
        )
        dead = body["dead_letter"]
        self.assertEqual(dead["topic"], DLT)
        self.assertEqual(dead["partition"], read_back.kafka_partition)  # as Spring's default
        self.assertEqual(dead["redrive_from_hop"], Stage.GRPC_CLIENT)

        # A plain kafka-python consumer, by the coordinates the transaction shows.
        consumer = KafkaConsumer(**client_options(), group_id=None, enable_auto_commit=False)
        try:
            partition = TopicPartition(DLT, dead["partition"])
            consumer.assign([partition])
            consumer.seek(partition, dead["offset"])
            messages = consumer.poll(timeout_ms=10_000, max_records=1).get(partition, [])
        finally:
            consumer.close()
        self.assertEqual(len(messages), 1)
        message = messages[0]
        self.assertEqual(message.key, transaction_id.encode())
        original = records_for(settings.KAFKA_REQUEST_TOPIC, transaction_id)
        self.assertEqual(len(original), 1)
        self.assertEqual(message.value.decode(), original[0].value)
        headers = decoded(message.headers)
        self.assertEqual(headers["transaction_id"], transaction_id)
        self.assertEqual(
            (headers["topic"], headers["partition"], headers["offset"]),
            (read_back.kafka_topic, read_back.kafka_partition, read_back.kafka_offset),
        )
        self.assertEqual(headers["timestamp"], original[0].timestamp)
        self.assertEqual(headers["timestamp_type"], "CreateTime")
        self.assertIn(
            headers["fqcn"],
            ("relay_app.errors.DependencyUnavailable", "relay_app.errors.DeadlineExceeded"),
        )
        self.assertTrue(headers["message"])
        self.assertIn(headers["fqcn"].rsplit(".", 1)[1], headers["stacktrace"])
        attempts = headers["attempts"]
        self.assertGreaterEqual(len(attempts), 2)
        self.assertEqual({a["stage"] for a in attempts}, {Stage.GRPC_SERVER.slug})
        self.assertEqual([a["number"] for a in attempts], list(range(1, len(attempts) + 1)))

        # kcat, as docs/operations.md shows, reads every header of it.
        if shutil.which("kcat") is None:
            raise unittest.SkipTest("kcat is not installed: `bash ops/bootstrap.sh --tests`")
        # Its JSON envelope (-J): %h in a format (-f) prints each value as a C string, cut
        # at its first NUL byte, which the partition's and offset's binary values hold.
        read = subprocess.run(
            [
                *("kcat", "-b", settings.KAFKA_ADDRESS, "-C", "-e", "-c", "1", "-J"),
                *("-t", DLT, "-p", str(dead["partition"]), "-o", str(dead["offset"])),
            ],
            capture_output=True,
            timeout=30,
            check=True,
        )
        envelope = kcat_envelope(read.stdout)
        self.assertEqual(envelope["key"], transaction_id)
        names, values = envelope["headers"][0::2], envelope["headers"][1::2]
        self.assertEqual(names, [name for name, _ in message.headers])
        by_kcat = [(n, v.encode("latin-1")) for n, v in zip(names, values, strict=True)]
        self.assertEqual(decoded(by_kcat), headers)

    def test_the_failing_task_delivered_again_writes_no_second_dead_letter(self) -> None:
        body = self.failed_at_grpc()
        transaction_id = body["transaction_id"]
        hop = Hop.objects.get(transaction_id=transaction_id, stage=Stage.KAFKA_CONSUME_REQUEST)
        carry = {"transaction_id": transaction_id, "text": hop.text, "deadline": time.time() + 5}
        sealed = payload_seal(cast(ChainPayload, carry), to=tasks.call_grpc.name)
        for _ in range(2):  # the very message again, as a late ack redelivers it
            tasks.call_grpc.apply(args=(sealed,))
        self.assertIsNone(dead_letter_write(transaction_id=transaction_id))
        self.assertEqual(len(records_for(DLT, transaction_id)), 1)
        after = Transaction.objects.get(id=transaction_id)
        self.assertEqual(after.dead_letter_offset, body["dead_letter"]["offset"])

    def test_a_cancelled_or_succeeded_transaction_has_none(self) -> None:
        response = self.client.post("/api/relay/", {"message": "delivered"}, format="json")
        self.assertEqual(response.status_code, 200)
        transaction_id = response.json()["transaction_id"]
        self.assertIsNone(response.json()["dead_letter"])
        self.assertIsNone(dead_letter_write(transaction_id=transaction_id))
        Transaction.objects.filter(id=transaction_id).update(status="cancelled")
        self.assertIsNone(dead_letter_write(transaction_id=transaction_id))
        self.assertEqual(records_for(DLT, transaction_id), [])

    def test_the_sweep_writes_those_no_task_saw_once_their_grace_is_over(self) -> None:
        # A transaction ended where none of its tasks saw it (the waiting view timed it out
        # while its next task waited in the queue, then expired): its hop 3 read a record.
        response = self.client.post("/api/relay/", {"message": "expired"}, format="json")
        transaction_id = response.json()["transaction_id"]
        Hop.objects.filter(transaction_id=transaction_id, stage__gt=Stage.GRPC_CLIENT).delete()
        Transaction.objects.filter(id=transaction_id).update(
            status="timed_out",
            error="the deadline of 5 s passed while waiting on grpc_server",
            finished_at=timezone.now(),
        )
        self.assertEqual(dead_letters_sweep(grace_seconds=60), 0)  # its task may yet write it
        # Ended two hours ago: out of the stack's own sweeps' reach (an hour), in this one's.
        Transaction.objects.filter(id=transaction_id).update(
            finished_at=timezone.now() - timedelta(hours=2)
        )
        within = timedelta(hours=3)
        self.assertEqual(dead_letters_sweep(grace_seconds=60, within=within), 1)
        self.assertEqual(dead_letters_sweep(grace_seconds=60, within=within), 0)
        [written] = records_for(DLT, transaction_id)
        headers = decoded(list(written.headers))
        self.assertEqual(headers["fqcn"], "relay_app.errors.DeadlineExceeded")
        self.assertEqual(
            headers["message"], "the deadline of 5 s passed while waiting on grpc_server"
        )
        self.assertEqual(headers["attempts"], [])
