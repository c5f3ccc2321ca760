"""Log lines as JSON objects (``RELAY_LOG_FORMAT=json``), for log pipelines that index fields.

Every line of the relay's processes (the web server, the worker and its pool, the gRPC server) gets
the same fields: time, level, logger, process, message and, where the line is about a transaction,
its ``transaction_id``, ``stage`` and ``duration_ms``, and, while a trace is being recorded, its
``trace_id`` (relay_app/tracing.py: the transaction's id too comes along with the trace, to lines
that did not name it). A line of the audit trail has its fields as an ``audit`` object too. The
transaction log file keeps the original example's format; JSON escapes whatever a client's text
holds, so a line is always one line.
"""

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from . import tracing

# Fields a line may carry about its transaction (``extra=`` of the logging call).
TRANSACTION_FIELDS = ("transaction_id", "stage", "duration_ms", "trace_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": os.getpid(),
            "message": record.getMessage(),
        }
        for field in TRANSACTION_FIELDS:
            line[field] = getattr(record, field, None)
        line["trace_id"] = line["trace_id"] or tracing.current_trace_id() or None
        line["transaction_id"] = line["transaction_id"] or tracing.current_transaction_id()
        # An operator action's fields (relay_app/services/audit.py), to index as they are.
        if (audit := getattr(record, "audit", None)) is not None:
            line["audit"] = audit
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
