"""The transaction log: one line per event whatever the client sent, and bounded by rotation."""

import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase
from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from relay_app.hops import Stage
from relay_app.log_format import JsonFormatter
from relay_app.original_log import OriginalFormatter, escape, log_hop
from relay_app.tracing import TRANSACTION_ATTRIBUTE

# Each character a log line must never carry raw, with what stands for it instead.
ESCAPED = {
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\x00": "\\x00",
    "\x07": "\\x07",
    "\x1b": "\\x1b",  # ESC: a terminal escape sequence starts here
    "\x1c": "\\x1c",  # a line break to str.splitlines
    "\x7f": "\\x7f",
    "\x85": "\\x85",  # NEL
    "\x9b": "\\x9b",  # CSI, the one-character escape of 8-bit terminals
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
    "\\": "\\\\",
}


def formatted(message: str, **extra: str) -> str:
    """``message`` as the transaction log writes it."""
    record = logging.LogRecord("relay.transaction", logging.INFO, "", 0, "%s", (message,), None)
    record.__dict__.update(extra)
    return OriginalFormatter().format(record)


class EscapingTests(SimpleTestCase):
    def test_every_control_and_line_breaking_character_is_escaped(self) -> None:
        for character, replacement in ESCAPED.items():
            with self.subTest(character=hex(ord(character))):
                self.assertEqual(escape(f"a{character}b"), f"a{replacement}b")
        every_control = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)])
        self.assertTrue(escape(every_control).isprintable())

    def test_escaping_is_unambiguous(self) -> None:
        # A backslash the client typed cannot pass for an escape the log made.
        self.assertNotEqual(escape("\\n"), escape("\n"))
        self.assertEqual(escape("\\n"), "\\\\n")

    def test_printable_text_is_left_as_it_is(self) -> None:
        for text in ("hello world", "café 你好 🚀", "quotes \" ' and <tags>", "\u00a0nbsp"):
            with self.subTest(text=text):
                self.assertEqual(escape(text), text)

    def test_a_formatted_line_is_one_line_with_its_id_after_a_tab(self) -> None:
        hostile = "a\nb\r\nc\x1b[2J\u2028d\te\x85f"
        line = formatted(hostile, transaction_id="abc")
        self.assertEqual(line.splitlines(), [line])
        self.assertNotIn("\x1b", line)
        self.assertTrue(line.endswith(f" {escape(hostile)}\ttransaction_id=abc"))
        self.assertEqual(line.count("\t"), 1)


# One process of several writing the shared log at once, rotating it as it grows.
WRITER = textwrap.dedent(
    """
    import logging, sys
    from relay_app.original_log import OriginalFormatter, TransactionFileHandler
    handler = TransactionFileHandler(sys.argv[1], max_bytes=4000, backups=3)
    handler.setFormatter(OriginalFormatter())
    log = logging.getLogger("writer")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for i in range(400):
        log.info("writer %s line %d %s", sys.argv[2], i, "x" * 40)
    """
)


WHOLE_LINE = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d writer \d line \d+ x{40}$"


class RotationTests(SimpleTestCase):
    def test_several_processes_rotate_the_log_keeping_whole_lines_and_few_files(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch) / "log" / "transactions.log"
            writers = [
                subprocess.Popen(
                    [sys.executable, "-c", WRITER, str(log), str(n)], cwd=settings.BASE_DIR
                )
                for n in range(3)
            ]
            for writer in writers:
                self.assertEqual(writer.wait(timeout=120), 0)
            files = sorted(log.parent.glob("transactions.log*"))
            self.assertEqual(
                [path.name for path in files],
                ["transactions.log", *(f"transactions.log.{n}" for n in (1, 2, 3))],
            )
            for path in files:
                self.assertLess(path.stat().st_size, 8000, path)  # about max_bytes each
                self.assertEqual(path.stat().st_mode & 0o777, 0o600, path)
                for line in path.read_text(encoding="utf-8").splitlines():
                    self.assertRegex(line, WHOLE_LINE)


class JsonFormatTests(SimpleTestCase):
    def test_a_hop_is_one_json_object_with_its_transaction_fields(self) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("relay.transaction")
        logger.addHandler(handler)
        try:
            log_hop(
                Stage.KAFKA_CONSUME_REQUEST,
                'line one\nline "two" \x1b[31m',
                transaction_id="0f0e",
                duration_ms=1.25,
            )
        finally:
            logger.removeHandler(handler)
        (line,) = stream.getvalue().splitlines()
        fields = json.loads(line)
        self.assertEqual(fields["transaction_id"], "0f0e")
        self.assertEqual(fields["stage"], "kafka_consume_request")
        self.assertEqual(fields["duration_ms"], 1.25)
        self.assertIsNone(fields["trace_id"])
        self.assertEqual(fields["level"], "INFO")
        self.assertTrue(fields["message"].startswith("KAFKA Consumer: line one\nline"))

    def test_a_line_logged_inside_a_trace_carries_its_trace_and_transaction(self) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("relay_app.test")
        logger.addHandler(handler)
        logger.propagate = False  # this handler's lines only, not the console's
        tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")
        try:
            with tracer.start_as_current_span("request") as span:
                token = context.attach(baggage.set_baggage(TRANSACTION_ATTRIBUTE, "t-2"))
                try:
                    logger.warning("inside")
                finally:
                    context.detach(token)
            logger.warning("outside")
        finally:
            logger.removeHandler(handler)
            logger.propagate = True
        inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
        self.assertEqual(inside["trace_id"], f"{span.get_span_context().trace_id:032x}")
        self.assertEqual(inside["transaction_id"], "t-2")
        self.assertEqual((outside["trace_id"], outside["transaction_id"]), (None, None))

    def test_the_setting_turns_every_console_line_to_json(self) -> None:
        script = (
            "import django, logging; django.setup();"
            " logging.getLogger('relay_app.services').warning("
            "'hop failed', extra={'transaction_id': 't-1', 'stage': 'grpc_server'});"
            " logging.getLogger('kafka').warning('a library line')"
        )
        ran = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "RELAY_LOG_FORMAT": "json"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        ours, library = (json.loads(line) for line in ran.stderr.splitlines())
        self.assertEqual(
            (ours["message"], ours["transaction_id"], ours["stage"], ours["level"]),
            ("hop failed", "t-1", "grpc_server", "WARNING"),
        )
        self.assertEqual((library["logger"], library["transaction_id"]), ("kafka", None))
        wrong = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            env={**os.environ, "RELAY_LOG_FORMAT": "yaml"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertNotEqual(wrong.returncode, 0)
        self.assertIn("RELAY_LOG_FORMAT", wrong.stderr)
