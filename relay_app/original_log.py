"""The original example's transaction log: ``YYYY/MM/DD HH:MM:SS <label><text> `` then structured
fields.

A client's text goes into this log as it is, except for the characters that could break a
line or reach a terminal as a command; those are escaped, so every event is one line.
"""

import logging
from pathlib import Path
from uuid import UUID

from concurrent_log_handler import ConcurrentRotatingFileHandler

from .hops import Stage

transaction_log = logging.getLogger("relay.transaction")

BANNER = "#" * 92

# Every C0 control character, DEL and every C1 control character (which includes NEL and the
# CSI that starts a terminal escape), the Unicode line and paragraph separators, and the
# backslash itself, so an escape in the log always means an escaped character.
_CONTROL = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_ESCAPES: dict[int, str] = {code: f"\\x{code:02x}" for code in _CONTROL}
_ESCAPES |= {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    ord("\\"): "\\\\",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape(text: str) -> str:
    r"""``text`` on one line and safe for a terminal: ``\n``, ``\x1b``, ``\\``, ``\u2028``..."""
    return text.translate(_ESCAPES)


class OriginalFormatter(logging.Formatter):
    """Formats like Go's ``log`` package, as in the original example; a transaction id follows after
    a tab.

    The message is escaped here, for every line of this log, so no caller can forget to.
    """

    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s %(message)s", datefmt="%Y/%m/%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        transaction_id = getattr(record, "transaction_id", None)
        return f"{line}\ttransaction_id={transaction_id}" if transaction_id else line


def log_hop(
    stage: Stage, text: str, *, transaction_id: UUID | str, duration_ms: float | None = None
) -> None:
    """Write the original example's line for one hop, e.g. ``KAFKA Consumer: hello world ...
    consumer ``.

    The stage and the hop's duration go along as fields, for the JSON format."""
    transaction_log.info(
        "%s%s ",
        stage.spec.log_label,
        text,
        extra={
            "transaction_id": str(transaction_id),
            "stage": stage.slug,
            "duration_ms": duration_ms,
        },
    )


def log_end(final: str, *, transaction_id: UUID | str) -> None:
    """Write the original example's closing banner with the final, uppercase text."""
    extra = {"transaction_id": str(transaction_id)}
    for line in (BANNER, "End of transaction with Message:", final, BANNER):
        transaction_log.info("%s", line, extra=extra)


class TransactionFileHandler(ConcurrentRotatingFileHandler):
    """Appends to the shared transaction log, rotating it by size; creates its folder.

    The web server, the worker's processes and the gRPC server all write this file. Each line
    is written whole under a file lock, which is also held while the file rotates, so lines
    interleave in the order the hops happened and none is torn or lost to a rotation.
    ``transactions.log.1`` is the newest older file, and at most ``backups`` are kept.
    The files are readable by their owner only: they hold the clients' messages.
    """

    def __init__(self, filename: str, *, max_bytes: int, backups: int) -> None:
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(
            filename,
            mode="a",
            maxBytes=max_bytes,
            backupCount=backups,
            encoding="utf-8",
            chmod=0o600,
        )
