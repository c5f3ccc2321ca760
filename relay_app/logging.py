"""The seed's transaction log: ``YYYY/MM/DD HH:MM:SS <label><text> `` then structured fields."""

import logging
from pathlib import Path
from uuid import UUID

from .hops import Stage

transaction_log = logging.getLogger("relay.transaction")

BANNER = "#" * 92
_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


class SeedFormatter(logging.Formatter):
    """Formats like Go's ``log`` package, as in the seed; a transaction id follows after a tab."""

    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s %(message)s", datefmt="%Y/%m/%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        transaction_id = getattr(record, "transaction_id", None)
        return f"{line}\ttransaction_id={transaction_id}" if transaction_id else line


def _one_line(text: str) -> str:
    # A client's message may hold newlines or tabs; one log line per event keeps logs parseable.
    return text.translate(_ESCAPES)


def log_hop(stage: Stage, text: str, *, transaction_id: UUID | str) -> None:
    """Write the seed's line for one hop, e.g. ``KAFKA Consumer: hello world ... consumer ``."""
    transaction_log.info(
        "%s%s ",
        stage.spec.log_label,
        _one_line(text),
        extra={"transaction_id": str(transaction_id)},
    )


def log_end(final: str, *, transaction_id: UUID | str) -> None:
    """Write the seed's closing banner with the final, uppercase text."""
    extra = {"transaction_id": str(transaction_id)}
    for line in (BANNER, "End of transaction with Message:", _one_line(final), BANNER):
        transaction_log.info("%s", line, extra=extra)


class TransactionFileHandler(logging.FileHandler):
    """Appends to the shared transaction log, creating its folder on first use.

    Each line is one ``write`` to a file opened with O_APPEND, so lines from the web server,
    the worker and the gRPC server interleave whole and in the order the hops happened.
    """

    def __init__(self, filename: str) -> None:
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(filename, mode="a", encoding="utf-8", delay=True)
