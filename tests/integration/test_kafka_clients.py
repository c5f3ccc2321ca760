"""The Kafka clients people bring read the relay's records as docs/operations.md shows:
Debian's kcat and confluent-kafka, each reading a relay's request record by its coordinates."""

import shutil
import subprocess
import unittest

from confluent_kafka import Consumer, TopicPartition
from django.conf import settings
from django.test import TransactionTestCase

from ..support import user_with_token, web


class KafkaClientTests(TransactionTestCase):
    def setUp(self) -> None:
        _, token = user_with_token("kafka-reader")
        answer = web(token).relay("read me with your own client")
        self.assertEqual(answer.status, 200, answer.body)
        self.transaction_id = answer.body["transaction_id"]
        self.hop = answer.body["hops"][1]  # hop 2: the request record
        self.record = self.hop["kafka"]

    def test_kcat_reads_the_record_with_its_key_and_header(self) -> None:
        if shutil.which("kcat") is None:
            raise unittest.SkipTest("kcat is not installed: `bash ops/bootstrap.sh --tests`")
        read = subprocess.run(
            [
                *("kcat", "-b", settings.KAFKA_ADDRESS, "-C", "-e", "-c", "1"),
                *("-t", self.record["topic"], "-p", str(self.record["partition"])),
                *("-o", str(self.record["offset"]), "-f", "%k|%h|%s\\n"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        key, headers, value = read.stdout.strip().split("|")
        self.assertEqual((key, value), (self.transaction_id, self.hop["text"]))
        self.assertIn(f"transaction_id={self.transaction_id}", headers.split(","))

    def test_confluent_kafka_reads_the_record(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": settings.KAFKA_ADDRESS,
                "group.id": "docs",
                "enable.auto.commit": False,
            }
        )
        try:
            partition = TopicPartition(
                self.record["topic"], self.record["partition"], self.record["offset"]
            )
            consumer.assign([partition])
            message = consumer.poll(10)
            assert message is not None and message.error() is None, message
            self.assertEqual(message.key(), self.transaction_id.encode())
            self.assertEqual(message.value(), self.hop["text"].encode())
        finally:
            consumer.close()
