"""The Celery worker: its consumer, back on Redis within a second of its return, the
connections each pool process opens as it starts, and what it does on Celery's signals
(``connect_signals``, called by the Celery app's own ``worker_init``, project/celery.py)."""

import ctypes
import logging
import os
import signal as os_signal
import sys
from typing import Any

from celery.signals import (
    beat_init,
    task_failure,
    task_retry,
    task_revoked,
    task_success,
    worker_process_init,
    worker_ready,
)
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.state import maybe_shutdown

from .errors import DependencyUnavailable
from .integrations import kafka_records, relay_rpc
from .metrics import TASKS, serve_metrics
from .services.chain import payload_seal
from .tasks import CHAIN_TASKS, opened, respond, time_out_transaction

logger = logging.getLogger(__name__)


def connect_dependencies(**_: Any) -> None:
    """Connect to Kafka and the gRPC server as each prefork process starts.

    Kafka clients are made lazily, so each process's first transaction paid for connecting
    (about 0.6 s). Kafka being down, or a topic missing, only leaves that to the first hop;
    each step waits at most ``KAFKA_TIMEOUT_SECONDS``, well within the time Celery gives a
    process to start (``CELERY_WORKER_PROC_ALIVE_TIMEOUT``).
    """
    relay_rpc.connect()
    try:
        kafka_records.connect_relay_topics()
    except DependencyUnavailable as exc:
        logger.warning("not connected ahead of the first hop: %s (%s)", exc, exc.internal)


# prctl(2)'s option: the signal the kernel sends a process when its parent dies.
_PR_SET_PDEATHSIG = 1


def end_with_main_process(**_: Any) -> None:
    """Have this child of the worker (a pool process, the embedded scheduler) terminated
    when the worker's main process dies.

    A main process killed outright (SIGKILL, the kernel's out-of-memory killer) cannot stop
    its children, which would stay behind beside the worker the supervisor starts in its
    place: idle pool processes holding memory, and a second scheduler.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, os_signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning(
            "pool process will outlive its main process: prctl errno %d", ctypes.get_errno()
        )
    elif os.getppid() != parent:  # the main process died before prctl took effect
        os.kill(os.getpid(), os_signal.SIGTERM)


def expose_metrics(**_: Any) -> None:
    """Serve the worker's metrics (all its pool processes') from its main process."""
    serve_metrics()


def _count_task(outcome: str) -> Any:
    def count(sender: Any = None, **_: Any) -> None:
        TASKS.labels(getattr(sender, "name", str(sender)), outcome).inc()

    return count


def time_out_expired_chain(
    sender: Any = None, request: Any = None, expired: bool = False, **_: Any
) -> None:
    """A task of an asynchronous relay's chain reached the worker after its transaction's
    deadline (its expiry) and was dropped: have the transaction timed out now, since nobody
    waits for it (it would stay pending until the stale sweep). A blocking relay's view has
    timed it out already: nothing is sent for those, which under overload would add a task
    for every late one. Sent as a task, sealed: this runs in the worker's main process,
    which keeps no database connection. Only a message the relay sealed counts: an expired
    forgery is refused like any other."""
    if not expired or not _ends_with_respond(sender, request):
        return
    payload = opened(request.args[0] if request.args else None, task=sender.name)
    if payload is None:
        return
    try:
        sealed = payload_seal(payload, to=time_out_transaction.name)
        shown: dict[str, Any] = {"argsrepr": f"(transaction {payload['transaction_id']})"}
        time_out_transaction.apply_async((sealed,), **shown)
    except Exception as exc:  # noqa: BLE001 - the stale sweep settles it in the end
        logger.warning("could not time out the transaction of an expired task: %r", exc)


def _ends_with_respond(sender: Any, request: Any) -> bool:
    """Whether the task is of an asynchronous relay's chain: ``relay.respond`` itself, or a
    task with it still ahead (the chain's remaining steps travel with each task)."""
    if getattr(sender, "name", None) == respond.name:
        return True
    if getattr(sender, "name", None) not in CHAIN_TASKS:
        return False
    steps = getattr(request, "chain", None) or []
    return any(isinstance(step, dict) and step.get("task") == respond.name for step in steps)


def connect_signals() -> None:
    """Connect the worker's handlers (in its main process, before the pool forks, so every
    pool process has them too). Each task's outcome is counted as Celery reports it: a
    revoked task (it reached the worker after its deadline) by the main process, the others
    by the pool process that ran it."""
    worker_process_init.connect(end_with_main_process, weak=False)
    beat_init.connect(end_with_main_process, weak=False)
    worker_process_init.connect(connect_dependencies, weak=False)
    worker_ready.connect(expose_metrics, weak=False)
    task_revoked.connect(time_out_expired_chain, weak=False)
    for signal, outcome in (
        (task_success, "succeeded"),
        (task_failure, "failed"),
        (task_retry, "retried"),
        (task_revoked, "revoked"),
    ):
        signal.connect(_count_task(outcome), weak=False)


class Consumer(CeleryConsumer):
    """Celery's consumer, retrying a lost broker connection every half second, for ever.

    Celery's own retry waits 2, 4, 6 ... up to 30 s between attempts, so after a Redis restart
    the worker stayed away for seconds while the web server already took requests again, and
    those requests timed out. ``CELERY_WORKER_CONSUMER`` selects this class.
    """

    def ensure_connected(self, conn: Any) -> Any:
        def on_error(exc: Exception, interval: float) -> None:
            logger.warning("lost the broker (%s); trying again in %.2f s", exc, interval)

        connected = conn.ensure_connection(
            on_error,
            None,  # retry for as long as it takes
            interval_start=0,
            interval_step=0.25,
            interval_max=0.5,
            callback=maybe_shutdown,
        )
        self.first_connection_attempt = False
        self.broker_connection_retry_attempt = 0
        return connected
