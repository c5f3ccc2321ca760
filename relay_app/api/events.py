"""Server-Sent Events of a transaction (``TransactionEventsView``): the wire format of
``relay_app.services.events.transaction_follow``'s hops, final state and heartbeats."""

import json
from collections.abc import Iterator, Mapping
from typing import Any

from django.http import StreamingHttpResponse

from ..hops import Stage
from ..metrics import EVENT_STREAMS
from ..models import Hop, Transaction
from ..services.events import Heartbeat, transaction_follow
from .serializers import HopSerializer, TransactionSerializer

# How long EventSource waits before it reconnects to a stream cut short (milliseconds).
RETRY_MS = 1000


def last_event_id(headers: Mapping[str, str]) -> int:
    """The last hop the client received (``Last-Event-ID``); 0 when none or not a hop's."""
    value = (headers.get("Last-Event-ID") or "").strip()
    if not (value.isascii() and value.isdigit()):
        return 0
    return int(value) if 0 < int(value) <= len(Stage) else 0


def hop_data(hop: Hop) -> dict[str, Any]:
    """A hop as its event carries it: as the transaction's page shows it, plus the seed's
    log label, so a client can print the seed's line for it."""
    return {**HopSerializer().to_representation(hop), "label": Stage(hop.stage).spec.log_label}


def event(data: Mapping[str, Any], *, name: str, event_id: int | None = None) -> bytes:
    """One event in the text/event-stream format: JSON data on a single line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def events(transaction_id: str, *, after: int, heartbeat_seconds: float) -> Iterator[bytes]:
    """The stream's bytes, from the reconnection delay to the final state (counted open
    until it ends or its client leaves)."""
    with EVENT_STREAMS.track_inprogress():
        yield f"retry: {RETRY_MS}\n\n".encode()
        for item in transaction_follow(
            transaction_id=transaction_id, after=after, heartbeat_seconds=heartbeat_seconds
        ):
            if isinstance(item, Heartbeat):
                yield b": heartbeat\n\n"
            elif isinstance(item, Hop):
                yield event(hop_data(item), name="hop", event_id=item.stage)
            elif isinstance(item, Transaction):
                yield event(TransactionSerializer(item).data, name="settled")


def event_stream(
    transaction_id: str, *, after: int, heartbeat_seconds: float
) -> StreamingHttpResponse:
    """The streaming answer: never cached, never buffered by a proxy (nginx reads
    ``X-Accel-Buffering``)."""
    response = StreamingHttpResponse(
        events(transaction_id, after=after, heartbeat_seconds=heartbeat_seconds),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
