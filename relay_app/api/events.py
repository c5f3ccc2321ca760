"""Server-Sent Events of a transaction (``TransactionEventsView``): the wire format of
``relay_app.services.events.transaction_follow``'s hops, final state and heartbeats, and
how many streams a web server process holds open."""

import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework.exceptions import Throttled

from ..hops import Stage
from ..metrics import EVENT_STREAMS
from ..models import Attempt, Hop, Transaction
from ..services.events import Heartbeat, transaction_follow
from ..services.transactions import SETTLE_GRACE_SECONDS
from .serializers import HopSerializer, TransactionSerializer, attempt_representation

# How long EventSource waits before it reconnects to a stream cut short (milliseconds).
RETRY_MS = 1000


def last_event_id(headers: Mapping[str, str]) -> int:
    """The last hop the client received (``Last-Event-ID``); 0 when none or not a hop's."""
    value = (headers.get("Last-Event-ID") or "").strip()
    if not (value.isascii() and value.isdigit()):
        return 0
    return int(value) if 0 < int(value) <= len(Stage) else 0


def hop_data(hop: Hop, earlier: list[Attempt]) -> dict[str, Any]:
    """A hop as its event carries it: as the transaction's page shows it (with ``earlier``, its
    attempts that did not succeed), plus the original example's log label, so a client can print the
    original example's line for it."""
    shown = HopSerializer().to_representation(hop, earlier)
    return {**shown, "label": Stage(hop.stage).spec.log_label}


def attempt_data(attempt: Attempt) -> dict[str, Any]:
    """An attempt that did not succeed, as its event carries it: with its hop's place."""
    stage = Stage(attempt.stage)
    return {"position": stage.value, "stage": stage.slug, **attempt_representation(attempt)}


def event(data: Mapping[str, Any], *, name: str, event_id: int | None = None) -> bytes:
    """One event in the text/event-stream format: JSON data on a single line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def events(
    transaction_id: str, *, after: int, heartbeat_seconds: float
) -> Generator[bytes, None, None]:
    """The stream's bytes, from the reconnection delay to the final state (counted open
    until it ends or its client leaves)."""
    with EVENT_STREAMS.track_inprogress():
        yield f"retry: {RETRY_MS}\n\n".encode()
        earlier: dict[int, list[Attempt]] = {}
        for item in transaction_follow(
            transaction_id=transaction_id, after=after, heartbeat_seconds=heartbeat_seconds
        ):
            if isinstance(item, Heartbeat):
                yield b": heartbeat\n\n"
            elif isinstance(item, Attempt):
                earlier.setdefault(item.stage, []).append(item)
                yield event(attempt_data(item), name="attempt")
            elif isinstance(item, Hop):
                yield event(
                    hop_data(item, earlier.get(item.stage, [])), name="hop", event_id=item.stage
                )
            elif isinstance(item, Transaction):
                last = "cancelled" if item.status == Transaction.Status.CANCELLED else "settled"
                yield event(TransactionSerializer(item).data, name=last)


class StreamPlaces:
    """The event streams this process holds open, each a thread while it lasts: at most
    RELAY_EVENT_STREAMS_PER_PROCESS in all and RELAY_EVENT_STREAMS_PER_USER for one user."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[int | None] = Counter()

    def take(self, user_id: int | None) -> Callable[[], None]:
        """A place for one more stream of ``user_id``, and the function that gives it back
        (once, however often called); ``Throttled`` (429) when there is none."""
        with self._lock:
            if self._open.total() >= settings.RELAY_EVENT_STREAMS_PER_PROCESS:
                raise _full("this server holds as many event streams as it may")
            if self._open[user_id] >= settings.RELAY_EVENT_STREAMS_PER_USER:
                raise _full("you hold as many event streams on this server as one user may")
            self._open[user_id] += 1
        given_back = threading.Event()

        def give_back() -> None:
            with self._lock:
                if not given_back.is_set():
                    given_back.set()
                    self._open[user_id] -= 1
                    if not self._open[user_id]:
                        del self._open[user_id]

        return give_back


def _full(reason: str) -> Throttled:
    """429: try again once a stream has ended, which one does at the latest a grace after
    its transaction's deadline."""
    wait = math.ceil(settings.RELAY_DEADLINE_SECONDS + SETTLE_GRACE_SECONDS)
    return Throttled(wait=wait, detail=f"Too many event streams: {reason}.")


STREAM_PLACES = StreamPlaces()


class _Stream:
    """A stream's bytes, giving its place back when the server closes it (whether it ran to
    its end, its client left, or it never started)."""

    def __init__(self, chunks: Generator[bytes, None, None], give_back: Callable[[], None]) -> None:
        self._chunks = chunks
        self._give_back = give_back

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            self._give_back()


def event_stream(
    transaction_id: str, *, user_id: int | None, after: int, heartbeat_seconds: float
) -> StreamingHttpResponse:
    """The streaming answer, in one of this process's places for ``user_id``'s streams
    (``Throttled`` when none is left): never cached, never buffered by a proxy (nginx reads
    ``X-Accel-Buffering``)."""
    give_back = STREAM_PLACES.take(user_id)
    response = StreamingHttpResponse(
        _Stream(
            events(transaction_id, after=after, heartbeat_seconds=heartbeat_seconds), give_back
        ),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
