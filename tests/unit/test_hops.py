"""The hop table and the original example's log format, without any service."""

import logging

from django.test import SimpleTestCase

from relay_app.hops import HOPS, Stage, expected_final_message
from relay_app.original_log import OriginalFormatter

from ..support import ORIGINAL_LINE, expected_log_lines


class HopTableTests(SimpleTestCase):
    def test_hello_world_becomes_the_design_text(self) -> None:
        self.assertEqual(
            expected_final_message("hello world"),
            "HELLO WORLD FROM REST AND KAFKA PUBLISHER AND KAFKA CONSUMER AND GRPC CLIENT"
            " AND GRPC SERVER AND KAFKA PUBLISHER AND KAFKA CONSUMER",
        )

    def test_there_are_eight_hops_in_the_original_order(self) -> None:
        self.assertEqual([stage.value for stage in Stage], list(range(1, 9)))
        self.assertEqual(
            [HOPS[stage].log_label for stage in Stage],
            [
                "REST request: ",
                "KAFKA Publisher: ",
                "KAFKA Consumer: ",
                "gRPC Client:",
                "gRPC Server:",
                "KAFKA Publisher: ",
                "KAFKA Consumer: ",
                "REST response: ",
            ],
        )

    def test_uppercasing_follows_python_str_upper(self) -> None:
        self.assertTrue(expected_final_message("straße").startswith("STRASSE FROM REST"))


class OriginalFormatterTests(SimpleTestCase):
    def format(self, message: str, **extra: str) -> str:
        record = logging.LogRecord("relay.transaction", logging.INFO, "", 0, message, None, None)
        record.__dict__.update(extra)
        return OriginalFormatter().format(record)

    def test_lines_have_the_original_timestamp_then_the_text(self) -> None:
        line = self.format("REST request: hello world from rest ")
        match = ORIGINAL_LINE.match(line)
        assert match is not None
        self.assertEqual(match["text"], "REST request: hello world from rest ")
        self.assertIsNone(match["id"])

    def test_the_transaction_id_follows_after_a_tab(self) -> None:
        line = self.format("End of transaction with Message:", transaction_id="abc")
        self.assertTrue(line.endswith(" End of transaction with Message:\ttransaction_id=abc"))

    def test_expected_lines_match_the_original_example(self) -> None:
        lines = expected_log_lines("hello world")
        self.assertEqual(lines[0], "REST request: hello world from rest ")
        self.assertEqual(
            lines[3],
            "gRPC Client:hello world from rest and Kafka publisher and Kafka consumer"
            " and gRPC client ",
        )
        self.assertEqual(lines[8], "#" * 92)
