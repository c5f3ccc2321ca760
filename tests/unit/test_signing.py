"""Seals on the chain's messages: a payload opens only for the task it was sealed for, with
every field as sealed, under the same key; anything else is refused with one WARNING."""

import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from relay_app import signing
from relay_app.services.chain import ChainPayload, payload_open, payload_seal
from relay_app.tasks import opened

TRANSACTION_ID = "0b0e8f36-5a8e-4a43-9d1f-7d3a3c6b2f10"
ANOTHER_KEY = "another-deployments-key-" + "k" * 32


def payload() -> ChainPayload:
    return {
        "transaction_id": TRANSACTION_ID,
        "text": "hello world from rest and Kafka publisher",
        "deadline": time.time() + 5,
        "record": {"topic": "CommunicationTopic", "partition": 2, "offset": 41},
    }


class SealTests(SimpleTestCase):
    def test_a_sealed_payload_opens_for_its_task_as_it_was(self) -> None:
        original = payload()
        sealed = payload_seal(original, to="relay.consume_request")
        self.assertEqual(len(sealed["seal"]), 64)  # SHA-256, in hex
        self.assertEqual(payload_open(sealed, at="relay.consume_request"), original)
        del original["record"]
        sealed = payload_seal(original, to="relay.call_grpc")
        self.assertEqual(payload_open(sealed, at="relay.call_grpc"), original)

    def test_the_seal_does_not_depend_on_the_order_of_keys(self) -> None:
        sealed = payload_seal(payload(), to="relay.consume_request")
        reordered = dict(reversed(list(sealed.items())))
        reordered["record"] = dict(reversed(list(sealed["record"].items())))
        opened_again = payload_open(reordered, at="relay.consume_request")
        self.assertEqual(opened_again["text"], sealed["text"])

    def assert_refused(self, message: object, reason: str, at: str = "relay.respond") -> None:
        with self.assertRaisesMessage(signing.Refused, reason):
            payload_open(message, at=at)

    def test_a_changed_field_is_refused(self) -> None:
        sealed = payload_seal(payload(), to="relay.respond")
        changes: dict[str, Any] = {
            "transaction_id": "6f1c8a52-0000-4000-8000-000000000000",
            "text": "FORGED",
            "deadline": sealed["deadline"] + 60,
            "record": {**sealed["record"], "offset": 40},
        }
        for field, value in changes.items():
            with self.subTest(field):
                self.assert_refused({**sealed, field: value}, "does not match")
        self.assert_refused({k: v for k, v in sealed.items() if k != "record"}, "does not match")

    def test_a_payload_sealed_for_another_task_is_refused(self) -> None:
        sealed = payload_seal(payload(), to="relay.consume_request")
        for task in ("relay.consume_reply", "relay.respond", "relay.time_out_transaction"):
            with self.subTest(task):
                self.assert_refused(sealed, "does not match", at=task)

    def test_a_payload_sealed_with_another_key_is_refused(self) -> None:
        with override_settings(RELAY_CHAIN_SIGNING_KEY=ANOTHER_KEY):
            sealed = payload_seal(payload(), to="relay.respond")
        self.assert_refused(sealed, "does not match")

    def test_no_seal_or_no_payload_is_refused(self) -> None:
        unsealed: dict[str, Any] = dict(payload())
        self.assert_refused(unsealed, "no seal")
        self.assert_refused({**unsealed, "seal": ""}, "no seal")
        self.assert_refused({**unsealed, "seal": 7}, "no seal")
        self.assert_refused({**unsealed, "seal": "é" * 64}, "does not match")
        for message in (None, "a string", [unsealed], {**unsealed, "deadline": "soon"}):
            with self.subTest(message=message):
                self.assert_refused(message, "not a chain payload")
        nested = {**unsealed, "record": {"topic": {"deep": [1]}}, "seal": "0" * 64}
        self.assert_refused(nested, "not a chain payload")

    @override_settings(RELAY_CHAIN_SIGNING_KEY="")
    def test_an_empty_key_is_a_configuration_error_that_names_it(self) -> None:
        with self.assertRaisesMessage(ImproperlyConfigured, "RELAY_CHAIN_SIGNING_KEY"):
            payload_seal(payload(), to="relay.respond")


class RefusalTests(SimpleTestCase):
    def test_a_refused_message_is_one_warning_naming_the_task_transaction_and_reason(
        self,
    ) -> None:
        forged = {**payload(), "text": "FORGED"}
        with self.assertLogs("relay_app.tasks", "WARNING") as logged:
            self.assertIsNone(opened(forged, task="relay.respond"))
        (line,) = logged.output
        self.assertIn("relay.respond", line)
        self.assertIn(TRANSACTION_ID, line)
        self.assertIn("no seal", line)

    def test_what_a_forger_claims_reaches_the_log_escaped_and_cut(self) -> None:
        with self.assertLogs("relay_app.tasks", "WARNING") as logged:
            claimed = "x\n2026/01/01 forged line" + "y" * 200
            opened({"transaction_id": claimed}, task="relay.respond")
        (line,) = logged.output
        self.assertNotIn("\n", line)
        self.assertNotIn("y" * 100, line)
