"""An Idempotency-Key makes a repeated POST return the first transaction, not run it again."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.test import TransactionTestCase, tag

from relay_app.hops import Stage, expected_final_message
from relay_app.models import Transaction
from relay_app.services.transactions import transaction_start
from relay_app.tasks import relay_chain

from ..support import records_for, signed_in_client, user_with_token, web


@tag("postgres")
class IdempotencyTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("idempotent")
        self.client = signed_in_client(self.token)

    def post(self, message: str, key: str) -> Any:
        return self.client.post(
            "/api/relay/", {"message": message}, format="json", headers={"Idempotency-Key": key}
        )

    def test_a_repeated_request_returns_the_same_transaction_without_running_again(self) -> None:
        first = self.post("ping", "order-1")
        second = self.post("ping", "order-1")
        self.assertEqual(first.status_code, 200)
        self.assertEqual(second.status_code, 200)
        self.assertEqual(first.json(), second.json())
        self.assertEqual(second.json()["message"], expected_final_message("ping"))
        self.assertEqual(Transaction.objects.count(), 1)
        transaction_id = first.json()["transaction_id"]
        self.assertEqual(len(records_for(settings.KAFKA_REQUEST_TOPIC, transaction_id)), 1)

    def test_the_same_key_with_another_message_is_refused(self) -> None:
        self.assertEqual(self.post("ping", "order-2").status_code, 200)
        response = self.post("pong", "order-2")
        self.assertEqual(response.status_code, 422)
        self.assertIn("Idempotency-Key 'order-2'", response.json()["detail"])
        self.assertIn("different message", response.json()["detail"])
        self.assertEqual(Transaction.objects.count(), 1)

    def test_different_keys_run_separate_transactions(self) -> None:
        a, b = self.post("ping", "order-3"), self.post("ping", "order-4")
        self.assertNotEqual(a.json()["transaction_id"], b.json()["transaction_id"])

    def test_the_same_key_sent_at_once_by_several_clients_runs_once(self) -> None:
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(
                pool.map(
                    lambda _: web(self.token).relay("ping", idempotency_key="order-5"),
                    range(6),
                )
            )
        self.assertEqual({answer.status for answer in answers}, {200})
        self.assertEqual(len({answer.body["transaction_id"] for answer in answers}), 1)
        self.assertEqual(Transaction.objects.filter(idempotency_key="order-5").count(), 1)

    def test_a_repeat_settles_the_transaction_whose_first_request_died(self) -> None:
        # As when a web server is killed mid-request and the proxy sends the request again to
        # another: the transaction and its chain started, and nobody waits for them any more.
        user = User.objects.get(username="idempotent")
        deadline = time.time() + settings.RELAY_DEADLINE_SECONDS
        orphan = transaction_start(
            message="ping",
            owner=user,
            deadline_at=datetime.fromtimestamp(deadline, UTC),
            idempotency_key="order-6",
        )
        relay_chain(
            {
                "transaction_id": str(orphan.id),
                "text": Stage.REST_REQUEST.spec.apply("ping"),
                "deadline": deadline,
            }
        ).apply_async()
        response = self.post("ping", "order-6")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["transaction_id"], str(orphan.id))
        self.assertEqual(response.json()["message"], expected_final_message("ping"))
        orphan.refresh_from_db()
        self.assertEqual(orphan.status, Transaction.Status.SUCCEEDED)
        self.assertEqual(orphan.hops.count(), len(Stage))
