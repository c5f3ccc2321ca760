"""The transaction log through the stack: a client's hostile text, answered exactly and
logged one line per event (escaping and rotation alone: tests/unit/test_transaction_log.py)."""

from django.test import TransactionTestCase

from relay_app.hops import expected_final_message
from relay_app.original_log import escape

from ..support import transaction_log_lines, user_with_token, web


class TransactionLogThroughTheStackTests(TransactionTestCase):
    def test_a_hostile_message_is_answered_exactly_and_logged_one_line_per_event(self) -> None:
        _, token = user_with_token("hostile")
        message = "line one\nline two\x1b[31m red\x9b\u2028 and a \\ backslash\t!"
        answer = web(token).relay(message)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.body["message"], expected_final_message(message))
        self.assertEqual(answer.body["request_message"], message)
        lines = transaction_log_lines(answer.body["transaction_id"])
        self.assertEqual(len(lines), 12)
        self.assertEqual(lines[0], f"REST request: {escape(message)} from rest ")
        for line in lines:
            self.assertTrue(line.isprintable(), line)
