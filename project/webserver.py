"""gunicorn's threaded worker, noting when each request arrived (``--worker-class``).

A transaction's deadline counts from its request's arrival, not from when a thread took it
up: under load a request waits in the worker's queue for a free thread, and its client waits
that long too. The worker accepts every connection at once (up to gunicorn's
``worker_connections``) and queues it for its threads; this subclass notes the time it
queued a request and hands it to the application as ``environ["relay.arrived_at"]`` (seconds
since the epoch), which ``relay_app.services.admission`` reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.errors import AppImportError
from gunicorn.workers.gthread import ThreadWorker

from relay_app.checks import StartRefused

ARRIVED_AT = "relay.arrived_at"

_handling = threading.local()


class ArrivalThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker, unchanged but for the arrival time of each request."""

    wsgi: Callable[..., Iterable[bytes]]

    def enqueue_req(self, conn: Any) -> None:
        # Called on the main thread when a connection is accepted or a kept-alive one has a
        # new request: from here on the request waits for a thread.
        conn.relay_arrived_at = time.time()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        _handling.arrived_at = getattr(conn, "relay_arrived_at", None)
        try:
            return super().handle(conn)
        finally:
            _handling.arrived_at = None

    def load_wsgi(self) -> None:
        try:
            super().load_wsgi()
        except StartRefused as refused:
            # As an application that failed to load, gunicorn stops (a worker that merely
            # exits is replaced, and would refuse again, for ever).
            raise AppImportError(str(refused.code)) from refused
        self.wsgi = stamp_arrival(self.wsgi)


def stamp_arrival(application: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``application`` with each request's arrival in its environ (now, if not known)."""

    def stamped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[ARRIVED_AT] = getattr(_handling, "arrived_at", None) or time.time()
        return application(environ, start_response)

    return stamped
