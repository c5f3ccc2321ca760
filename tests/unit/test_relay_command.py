"""``manage.py relay``'s words for a refusal, with the API's answer given (against the running
stack: tests/integration/test_relay_command.py)."""

from io import StringIO
from typing import Any
from unittest import mock

from django.core.management import CommandError, call_command
from django.test import SimpleTestCase

from relay_app.integrations.relay_api import Answer
from relay_app.management.commands.relay import BAD_INPUT, UNREACHABLE


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
