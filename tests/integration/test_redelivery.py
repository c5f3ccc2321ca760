"""A task delivered twice (late acks after a worker died) has one effect: the very message
again, sealed as the relay sealed it."""

import time
from typing import Any, cast

from django.conf import settings
from django.test import TransactionTestCase, tag

from relay_app import tasks
from relay_app.hops import Stage
from relay_app.models import Hop
from relay_app.services.chain import ChainPayload, payload_seal

from ..support import records_for, signed_in_client, transaction_log_lines, user_with_token


@tag("postgres")
class RedeliveryTests(TransactionTestCase):
    def test_every_task_of_the_chain_run_again_changes_nothing(self) -> None:
        _, token = user_with_token("redelivered")
        response = signed_in_client(token).post("/api/relay/", {"message": "twice"}, format="json")
        self.assertEqual(response.status_code, 200)
        transaction_id = response.json()["transaction_id"]
        hops = {hop.stage: hop for hop in Hop.objects.filter(transaction_id=transaction_id)}

        def carry(after: Stage, **extra: Any) -> dict[str, Any]:
            return {
                "transaction_id": transaction_id,
                "text": hops[after].text,
                "deadline": time.time() + 5,
                **extra,
            }

        def record(stage: Stage) -> dict[str, Any]:
            hop = hops[stage]
            return {
                "topic": hop.kafka_topic,
                "partition": hop.kafka_partition,
                "offset": hop.kafka_offset,
            }

        redeliveries = [
            (tasks.publish_request, carry(Stage.REST_REQUEST), Stage.KAFKA_PUBLISH_REQUEST),
            (
                tasks.consume_request,
                carry(Stage.KAFKA_PUBLISH_REQUEST, record=record(Stage.KAFKA_PUBLISH_REQUEST)),
                Stage.KAFKA_CONSUME_REQUEST,
            ),
            (tasks.call_grpc, carry(Stage.KAFKA_CONSUME_REQUEST), Stage.GRPC_SERVER),
            (tasks.publish_reply, carry(Stage.GRPC_SERVER), Stage.KAFKA_PUBLISH_REPLY),
            (
                tasks.consume_reply,
                carry(Stage.KAFKA_PUBLISH_REPLY, record=record(Stage.KAFKA_PUBLISH_REPLY)),
                Stage.KAFKA_CONSUME_REPLY,
            ),
        ]
        for task, task_carry, stage in redeliveries:
            with self.subTest(task=task.name):
                sealed = payload_seal(cast(ChainPayload, task_carry), to=task.name)
                result = task.apply_async(args=(sealed,), ignore_result=False).get(timeout=10)
                self.assertEqual(result["text"], hops[stage].text)
                if "record" in result:
                    self.assertEqual(result["record"], record(stage))

        self.assertEqual(Hop.objects.filter(transaction_id=transaction_id).count(), 8)
        for topic in (settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC):
            self.assertEqual(len(records_for(topic, transaction_id)), 1)
        self.assertEqual(len(transaction_log_lines(transaction_id, wait=0.5)), 12)
