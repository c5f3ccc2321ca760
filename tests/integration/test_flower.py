"""Flower, Celery's monitor, through the stack's proxy: staff see the workers and a relay's
five tasks, found by the transaction's id; nobody else gets in."""

import time
from typing import Any

import requests
from django.conf import settings
from django.test import TransactionTestCase

from relay_app.tasks import chain_task_id

from ..support import bearer, user_with_token, web

FIVE_TASKS = {
    "relay.publish_request",
    "relay.consume_request",
    "relay.call_grpc",
    "relay.publish_reply",
    "relay.consume_reply",
}


class FlowerTests(TransactionTestCase):
    def flower(self, path: str, token: str | None) -> requests.Response:
        return requests.get(
            f"http://{settings.FLOWER_ADDRESS}{path}",
            headers=bearer(token) if token else {},
            allow_redirects=False,
            timeout=10,
        )

    def test_staff_see_the_workers_and_a_relays_five_tasks_by_transaction_id(self) -> None:
        _, staff = user_with_token("flower-staff", staff=True)
        answer = web(staff).relay("watched by Flower")
        self.assertEqual(answer.status, 200, answer.body)
        transaction_id = answer.body["transaction_id"]

        give_up, workers = time.monotonic() + 15, dict[str, Any]()
        while not any(name.startswith("relay-") for name in workers):
            self.assertLess(time.monotonic(), give_up, f"Flower lists no worker: {workers}")
            found = self.flower("/api/workers?refresh=1", staff)
            self.assertEqual(found.status_code, 200, found.text)
            workers = found.json()

        give_up, mine = time.monotonic() + 15, dict[str, Any]()
        while {task["name"] for task in mine.values()} != FIVE_TASKS:
            self.assertLess(time.monotonic(), give_up, f"Flower shows {mine}")
            time.sleep(0.3)
            tasks = self.flower("/api/tasks?limit=1000", staff).json()
            mine = {uuid: t for uuid, t in tasks.items() if transaction_id in str(t.get("args"))}
        for uuid, task in mine.items():
            with self.subTest(task["name"]):
                self.assertEqual(task["state"], "SUCCESS")
                # The admin links each hop to its task by this id.
                self.assertEqual(uuid, chain_task_id(transaction_id, task["name"]))

    def test_nobody_but_staff_gets_in(self) -> None:
        _, user = user_with_token("flower-user")
        self.assertEqual(self.flower("/api/workers", user).status_code, 403)
        self.assertEqual(self.flower("/api/workers", "not-a-token").status_code, 302)
        signed_out = self.flower("/", None)
        self.assertEqual(signed_out.status_code, 302)
        self.assertTrue(signed_out.headers["Location"].endswith("/admin/login/"))
