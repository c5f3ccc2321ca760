"""gunicorn's threaded worker, noting when each request arrived and bounding each socket
operation in time (``--worker-class``).

A transaction's deadline counts from its request's arrival, not from when a thread took it
up: under load a request waits in the worker's queue for a free thread, and its client waits
that long too. The worker accepts every connection at once (up to gunicorn's
``worker_connections``) and queues it for its threads; this subclass notes the time it
queued a request and hands it to the application as ``environ["relay.arrived_at"]`` (seconds
since the epoch), which ``relay_app.services.admission`` reads.

A thread that writes to a client that stopped reading (or reads a body that stopped
coming) would wait for ever, and a few hundred such clients would hold every thread: each
send of an answer and receive of a body gives up after ``SOCKET_TIMEOUT_SECONDS``, and the
connection is closed. The proxy in front reads requests and answers whole, so only an event
stream (which it passes on as it comes) or a client that bypasses the proxy ever meets it;
such a client's headers are not bounded here (the proxy's are: ops/nginx.conf.template).

A refusal must cost almost nothing, so its CPU is measured where it is spent: the CPU time of
the thread that handles a request (``time.thread_time``: user and system time of that thread
alone), from before gunicorn parses it to after its answer's last byte is sent and the access
log written, is added to ``relay_refusal_cpu_seconds_total`` when admission refused the
request at capacity (it marks the environ). A held refusal's pause is a sleep, which is no
CPU, nor is waiting for the GIL. Not counted here is what gunicorn's main thread does for
each request on a kept-alive connection (its poller wakes, hands the connection to the thread
pool, and registers it again once answered), and the pool's hand-over on the thread's side
(a queue's get, the future's result and its callback's write to the main thread's pipe,
about 15 us with the main thread's part): the same for every request, whatever its answer.
The main thread's part is not small under load (docs/performance.md has the figures), so
the bench measures it per request beside the counter and adds it to a refusal's cost
(ops/bench/refusals.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.errors import AppImportError
from gunicorn.workers.gthread import ThreadWorker

from relay_app.api.arrival import ARRIVED_AT, REFUSED_AT_CAPACITY
from relay_app.checks import StartRefused

# How long one send or receive on a client's socket may take (sendall: the whole of it).
SOCKET_TIMEOUT_SECONDS = 5.0

_handling = threading.local()


class ArrivalThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker, with the arrival time of each request, a timeout on each
    socket operation and the CPU of each refused request counted."""

    wsgi: Callable[..., Iterable[bytes]]

    def enqueue_req(self, conn: Any) -> None:
        # Called on the main thread when a connection is accepted or a kept-alive one has a
        # new request: from here on the request waits for a thread.
        conn.relay_arrived_at = time.time()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        # One request of the connection per call, from its parse to its answer's last byte.
        _handling.arrived_at = getattr(conn, "relay_arrived_at", None)
        _handling.environ = None
        began = time.thread_time()
        try:
            return super().handle(conn)
        finally:
            environ = _handling.environ
            if environ is not None and environ.get(REFUSED_AT_CAPACITY):
                count_refusal_cpu(time.thread_time() - began)
            _handling.arrived_at = _handling.environ = None

    def handle_request(self, req: Any, conn: Any) -> bool:
        # Here, not earlier: gunicorn makes the socket blocking (no timeout) before each request.
        conn.sock.settimeout(SOCKET_TIMEOUT_SECONDS)
        try:
            return bool(super().handle_request(req, conn))
        except TimeoutError:
            self.log.warning(
                "%s %s: the client read or sent nothing for %.0f s; connection closed",
                req.method,
                req.path,
                SOCKET_TIMEOUT_SECONDS,
            )
            return False

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
        _handling.environ = environ  # for the thread that handles it, once answered
        return application(environ, start_response)

    return stamped


def count_refusal_cpu(seconds: float) -> None:
    """``seconds`` of a thread's CPU spent on a refused request."""
    # Imported here: this module is also gunicorn's configuration, read before Django is set up.
    from relay_app.metrics import REFUSAL_CPU

    REFUSAL_CPU.inc(seconds)


# gunicorn's server hooks (this module is also its configuration: --config python:...).


def on_starting(server: Any) -> None:
    """The metrics of the web server's processes start afresh with it."""
    from relay_app.metrics import start_afresh

    start_afresh()


def child_exit(server: Any, worker: Any) -> None:
    """A worker process exited: its in-flight gauges no longer count."""
    from relay_app.metrics import process_gone

    process_gone(worker.pid)
