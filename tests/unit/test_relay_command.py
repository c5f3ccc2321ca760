"""``manage.py relay``'s words for a refusal, with the API's answer given (against the running
stack: tests/integration/test_relay_command.py)."""

import json
from io import StringIO
from typing import Any
from unittest import mock

from django.core.management import CommandError, call_command
from django.test import SimpleTestCase

from relay_app.integrations.relay_api import Answer
from relay_app.management.commands.relay import (
    BAD_INPUT,
    CANCELLED,
    NOT_FOUND,
    UNREACHABLE,
)


def refusal(status: int, body: Any) -> CommandError:
    """What the command raises (and Django prints on stderr) when the relay answers this."""
    answer = Answer(status, {}, body, b"", 0.0)
    with mock.patch("relay_app.integrations.relay_api.RelayClient.relay", return_value=answer):
        try:
            call_command("relay", "hello", stdout=StringIO())
        except CommandError as refused:
            return refused
    raise AssertionError(f"the command took {status} {body!r} for a success")


class RefusalTests(SimpleTestCase):
    def test_each_fields_reasons_are_printed_on_a_line_of_their_own(self) -> None:
        refused = refusal(
            400,
            {
                "detail": "Invalid request: see errors.",
                "errors": {
                    "message": ["This field is required."],
                    "mesage": [
                        "Unknown field (did you mean 'message'?): only 'message' is accepted."
                    ],
                },
            },
        )
        self.assertEqual(refused.returncode, BAD_INPUT)
        self.assertEqual(
            str(refused).splitlines(),
            [
                "Invalid request: see errors.",
                "  message: This field is required.",
                "  mesage: Unknown field (did you mean 'message'?): only 'message' is accepted.",
            ],
        )

    def test_an_answer_without_errors_is_its_detail_or_status(self) -> None:
        refused = refusal(401, {"detail": "Invalid or revoked API token."})
        self.assertEqual(
            (refused.returncode, str(refused)), (UNREACHABLE, "Invalid or revoked API token.")
        )
        self.assertEqual(str(refusal(401, None)), "HTTP 401")


class CancelCommandTests(SimpleTestCase):
    def cancel(self, answer: Answer, *words: str) -> tuple[int, str]:
        out = StringIO()
        with mock.patch(
            "relay_app.integrations.relay_api.RelayClient.cancel", return_value=answer
        ) as cancel:
            try:
                call_command("relay", *words, stdout=out)
            except CommandError as refused:
                return refused.returncode, out.getvalue() + str(refused)
        cancel.assert_called_once()
        return 0, out.getvalue()

    def test_cancel_id_prints_the_cancelled_transaction(self) -> None:
        body = {"transaction_id": ID, "status": "cancelled", "cancelled_by": "ann"}
        code, printed = self.cancel(Answer(200, {}, body, b"", 0.0), "cancel", ID)
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(printed)["status"], "cancelled")

    def test_a_finished_transaction_says_so_with_its_own_exit_code(self) -> None:
        body = {"detail": "already ended (succeeded)", "transaction_id": ID, "status": "succeeded"}
        code, printed = self.cancel(Answer(409, {}, body, b"", 0.0), "cancel", ID)
        self.assertEqual(code, CANCELLED)
        self.assertIn("already ended (succeeded)", printed)

    def test_someone_elses_is_not_found(self) -> None:
        code, _ = self.cancel(Answer(404, {}, {"detail": "Not found."}, b"", 0.0), "cancel", ID)
        self.assertEqual(code, NOT_FOUND)

    def test_two_words_that_are_not_cancel_id_are_refused(self) -> None:
        with self.assertRaises(CommandError) as refused:
            call_command("relay", "hello", "world", stdout=StringIO())
        self.assertEqual(refused.exception.returncode, BAD_INPUT)
        self.assertIn("quoted as one argument", str(refused.exception))


class ShowCommandTests(SimpleTestCase):
    def show(self, answer: Answer) -> tuple[int, str, str]:
        out, err = StringIO(), StringIO()
        with mock.patch("relay_app.integrations.relay_api.RelayClient.get", return_value=answer):
            try:
                call_command("relay", "show", ID, stdout=out, stderr=err)
            except CommandError as refused:
                return refused.returncode, out.getvalue(), str(refused)
        return 0, out.getvalue(), err.getvalue()

    def test_show_id_prints_the_transaction_and_where_its_dead_letter_went(self) -> None:
        dead = {
            "topic": "CommunicationTopic.DLT",
            "partition": 0,
            "offset": 3,
            "written_at": "2026-12-05T10:00:00Z",
            "redrive_from_hop": 4,
        }
        body = {"transaction_id": ID, "status": "failed", "dead_letter": dead}
        code, printed, said = self.show(Answer(200, {}, body, b"", 0.0))
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(printed)["dead_letter"], dead)
        self.assertIn("CommunicationTopic.DLT[0]@3 (redrive: rerun from hop 4)", said)

    def test_without_a_dead_letter_nothing_is_said_of_one(self) -> None:
        body = {"transaction_id": ID, "status": "succeeded", "dead_letter": None}
        code, _, said = self.show(Answer(200, {}, body, b"", 0.0))
        self.assertEqual((code, said), (0, ""))

    def test_someone_elses_is_not_found(self) -> None:
        code, _, _ = self.show(Answer(404, {}, {"detail": "Not found."}, b"", 0.0))
        self.assertEqual(code, NOT_FOUND)


ID = "6f1c3d2e-8a4b-4c5d-9e6f-0a1b2c3d4e5f"
