"""Bad input gets a 4xx with the reason and changes nothing: no transaction, record or task."""

import json
from typing import Any

from django.conf import settings
from django.test import TransactionTestCase, tag

from relay_app.api.parsers import max_body_bytes
from relay_app.hops import expected_final_message
from relay_app.models import Hop, Transaction

from ..support import (
    kafka_end_offsets,
    signed_in_client,
    task_results_stored,
    user_with_token,
    web,
)

JSON = "application/json"
TOO_LONG = "x" * (settings.RELAY_MESSAGE_MAX_LENGTH + 1)
# Nested far deeper than Python's decoder recurses, in a body small enough to be read.
DEEPLY_NESTED = b'{"message": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
LARGER_THAN_ANY_MESSAGE = b'{"message": "' + b"x" * (max_body_bytes() + 1) + b'"}'

# One case of each way a request is refused, from the parser to the serializer (every rule,
# one by one: tests/unit/test_input.py). (case, body, content type, status, field named)
BAD_REQUESTS: list[tuple[str, bytes, str, int, str | None]] = [
    ("a number", b'{"message": 42}', JSON, 400, "message"),
    ("too long", json.dumps({"message": TOO_LONG}).encode(), JSON, 400, "message"),
    ("an unknown field", b'{"message": "hello", "priority": 1}', JSON, 400, "priority"),
    ("a misspelt field", b'{"mesage": "hello"}', JSON, 400, "mesage"),
    ("a JSON list body", b'["hello world"]', JSON, 400, "non_field_errors"),
    ("a body that is not JSON", b"message=hello", JSON, 400, None),
    ("invalid UTF-8", b'{"message": "caf\xe9"}', JSON, 400, None),
    ("an empty body", b"", JSON, 400, "message"),
    ("deeply nested JSON", DEEPLY_NESTED, JSON, 400, None),
    ("a body larger than any message", LARGER_THAN_ANY_MESSAGE, JSON, 413, None),
    ("a wrong content type", b"hello world", "text/plain", 415, None),
    ("a form body", b"message=hello", "application/x-www-form-urlencoded", 415, None),
]


@tag("postgres")
class BadInputTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("bad-input")
        self.client = signed_in_client(self.token)

    def post(self, body: bytes, content_type: str, **headers: str) -> Any:
        return self.client.generic("POST", "/api/relay/", body, content_type, headers=headers)

    def test_each_bad_request_is_refused_with_its_reason_and_changes_nothing(self) -> None:
        offsets, results = kafka_end_offsets(), task_results_stored()
        malformed_key = ("a malformed Idempotency-Key", b'{"message": "hello"}', JSON, 400, None)
        for case, body, content_type, status, field in [*BAD_REQUESTS, malformed_key]:
            with self.subTest(case):
                headers = {"Idempotency-Key": "with space"} if case == malformed_key[0] else {}
                response = self.post(body, content_type, **headers)
                self.assertEqual(response.status_code, status, response.content)
                self.assertEqual(response["Content-Type"], JSON)
                answer = response.json()
                self.assertIsInstance(answer["detail"], str)
                self.assertTrue(answer["detail"])
                if field is not None:
                    self.assertIn(field, answer["errors"])
                    self.assertTrue(answer["errors"][field])
        self.assertEqual(Transaction.objects.count(), 0)
        self.assertEqual(Hop.objects.count(), 0)
        self.assertEqual(kafka_end_offsets(), offsets)
        self.assertEqual(task_results_stored(), results)

    def test_pathological_json_over_http_is_a_400_from_the_web_server(self) -> None:
        headers = {"Content-Type": JSON, "Authorization": f"Bearer {self.token}"}
        for body, status in ((DEEPLY_NESTED, 400), (LARGER_THAN_ANY_MESSAGE, 413)):
            with self.subTest(status=status):
                answer = web().post("/api/relay/", body, headers=headers)
                self.assertEqual(answer.status, status, answer.body)
                self.assertTrue(answer.body["detail"])
        self.assertEqual(Transaction.objects.count(), 0)

    def test_a_message_of_exactly_the_maximum_length_is_relayed(self) -> None:
        message = "é" * settings.RELAY_MESSAGE_MAX_LENGTH
        response = self.post(json.dumps({"message": message}).encode(), JSON)
        self.assertEqual(response.status_code, 200, response.content[:300])
        self.assertEqual(response.json()["message"], expected_final_message(message))

    def test_unknown_paths_and_transactions_answer_json_404(self) -> None:
        response = self.client.get("/api/transactions/00000000-0000-0000-0000-000000000000/")
        self.assertEqual(response.status_code, 404)
        self.assertIn("detail", response.json())
