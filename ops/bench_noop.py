"""Baseline (b) of the benchmark: a bare Celery chain of five no-op tasks on the same Redis.

Same serialisation and acknowledgement settings as the relay's worker, and ``ops/bench.py``
runs it with the relay's pool and concurrency; nothing else: no Django, no Kafka, no
database. Its own queue keeps it apart from the relay's tasks.
"""

import os

from celery import Celery, chain

QUEUE = "bench-noop"

app = Celery("bench_noop")
app.conf.update(
    broker_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    accept_content=["json"],
    task_serializer="json",
    result_serializer="json",
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(value: str) -> str:
    return value


def noop_chain(value: str) -> chain:
    """Five no-op tasks in one chain, like the relay's five hop tasks."""
    return chain(noop.s(value), noop.s(), noop.s(), noop.s(), noop.s())
