"""The bench's baselines, measured in the same run on the same Kafka, Redis and gRPC server:

  (a) the seven hops bare in one process: kafka-python and grpcio, no Django, no Celery;
  (b) a bare Celery chain of five no-op tasks (``app`` below: the relay worker's serialisation
      and acknowledgement settings, nothing else: no Django, no Kafka, no database, a queue of
      its own), on a worker with the relay's pool and concurrency.

Its Celery app uses the bench stack's Redis (profiles.BENCH).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery, chain

from ops.bench.figures import cpu_per, latencies
from ops.bench.usage import cpu_seconds
from ops.processes import ROOT
from project.settings.profiles import BENCH

QUEUE = "bench-noop"
REDIS_URL = BENCH["REDIS_URL"]
app = Celery("bench_noop", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
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


def one_noop_chain(i: int) -> None:
    """Baseline (b): five no-op tasks in one chain, like the relay's five hop tasks, started
    and waited for."""
    if chain(noop.s(str(i)), *(noop.s() for _ in range(4))).apply_async().get(timeout=10) != str(i):
        raise RuntimeError("the no-op chain answered the wrong value")


@contextmanager
def noop_worker(log: Path) -> Iterator[int]:
    """A worker of baseline (b)'s queue with the relay worker's pool and concurrency; its pid."""
    from django.conf import settings

    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", __name__, "worker", "--loglevel", "WARNING"),
            *("--pool", settings.RELAY_WORKER_POOL),
            *("--concurrency", str(settings.RELAY_WORKER_CONCURRENCY), "--queues", QUEUE),
            *("--without-gossip", "--without-mingle", "--hostname", "bench-noop@%h"),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield worker.pid
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@contextmanager
def bare_hops() -> Iterator[Callable[[int], None]]:
    """Baseline (a): one transaction's seven hops with kafka-python and grpcio alone."""
    from django.conf import settings
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from relay.v1 import relay_pb2, relay_pb2_grpc

    from relay_app.integrations.kafka_records import client_options
    from relay_app.integrations.relay_rpc import capability, open_channel

    request_topic, reply_topic = settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC
    kafka = client_options()  # the relay's brokers and transport settings
    producer = KafkaProducer(**kafka, acks="all", linger_ms=0)
    consumers = {
        topic: KafkaConsumer(**kafka, group_id=None, enable_auto_commit=False)
        for topic in (request_topic, reply_topic)
    }
    channel = open_channel(settings.GRPC_ADDRESS)
    stub = relay_pb2_grpc.RelayStub(channel)

    def publish_and_read(topic: str, key: bytes, text: str) -> str:
        metadata = producer.send(topic, key=key, value=text.encode()).get(timeout=5)
        partition = TopicPartition(topic, metadata.partition)
        consumer = consumers[topic]
        if consumer.assignment() != {partition}:
            consumer.assign([partition])
        consumer.seek(partition, metadata.offset)
        while True:
            for record in consumer.poll(timeout_ms=5000, max_records=1).get(partition, []):
                return str(record.value.decode())

    def call_grpc(transaction_id: str, text: str) -> str:
        """The gRPC hop as the relay's worker makes it, with what the server asks of a call."""
        request = relay_pb2.ProcessRequest(transaction_id=transaction_id, text=text)
        # The same proof the relay's worker sends: the gRPC server checks it on every call.
        proof = capability(transaction_id=transaction_id, text=text, deadline=time.time() + 5)
        return str(stub.Process(request, timeout=5, metadata=proof).text)

    def transaction(i: int) -> None:
        transaction_id = str(uuid.uuid4())  # the gRPC server takes nothing else
        key = transaction_id.encode()
        text = "hello world from rest and Kafka publisher"
        text = publish_and_read(request_topic, key, text) + " and Kafka consumer and gRPC client"
        publish_and_read(reply_topic, key, call_grpc(transaction_id, text) + " and Kafka publisher")

    try:
        yield transaction
    finally:
        producer.close()
        for consumer in consumers.values():
            consumer.close()
        channel.close()


def timed(operation: Callable[[int], object], numbers: Iterable[int]) -> list[float]:
    """``operation(i)`` for each of ``numbers``, one after the other: the seconds each took."""
    took = []
    for i in numbers:
        started = time.perf_counter()
        operation(i)
        took.append(time.perf_counter() - started)
    return took


def chain_ceiling(concurrency: int, count: int, *, worker: int, redis: int) -> dict[str, Any]:
    """Baseline (b) under load: ``count`` chains, ``concurrency`` at a time; chains per second,
    and the CPU each chain cost, the yardstick for the relay's CPU per transaction: that of the
    no-op worker (pid ``worker`` and its pool), Redis, and this process, the client that starts
    each chain and waits for it as the relay's web server does (its own threads alone: its
    children are the stack). Nothing else may run in this process meanwhile.
    """

    def chain_cpu() -> dict[str, float]:
        return {
            "worker": cpu_seconds([worker]),
            "redis": cpu_seconds([redis]),
            "client": time.process_time(),
        }

    before, started = chain_cpu(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        took = [
            t for ts in pool.map(lambda i: timed(one_noop_chain, [i]), range(count)) for t in ts
        ]
    seconds, after = time.perf_counter() - started, chain_cpu()
    return {
        "concurrency": concurrency,
        "chains": count,
        **latencies(took),
        "tps": round(count / seconds, 1),
        **cpu_per({part: after[part] - before[part] for part in before}, count, "chain"),
    }


def auth_cpu_ms_per_tx(repetitions: int = 2000) -> float:
    """The CPU (ms) one transaction spends authenticating its messages, measured in this
    process: its six chain payloads (the view's, and each task's result) sealed and opened,
    and its gRPC capability made and checked, on the texts of "hello world"."""
    from relay_app import tasks
    from relay_app.hops import Stage
    from relay_app.integrations.kafka_records import RecordCoordinates
    from relay_app.integrations.relay_rpc import capability, capability_refusal
    from relay_app.services.chain import ChainPayload, payload_open, payload_seal

    transaction_id, deadline, text = str(uuid.uuid4()), time.time() + 3600, "hello world"
    texts = {}
    for stage in Stage:
        texts[stage] = text = stage.spec.apply(text)
    record = RecordCoordinates(topic="CommunicationTopic", partition=1, offset=12345)
    handoffs: list[tuple[str, ChainPayload]] = [
        (task.name, {"transaction_id": transaction_id, "text": texts[after], "deadline": deadline})
        for task, after in (
            (tasks.publish_request, Stage.REST_REQUEST),
            (tasks.consume_request, Stage.KAFKA_PUBLISH_REQUEST),
            (tasks.call_grpc, Stage.KAFKA_CONSUME_REQUEST),
            (tasks.publish_reply, Stage.GRPC_SERVER),
            (tasks.consume_reply, Stage.KAFKA_PUBLISH_REPLY),
            (tasks.respond, Stage.KAFKA_CONSUME_REPLY),
        )
    ]
    for _, payload in handoffs[1::3]:  # the two consume hops read a record
        payload["record"] = record
    at_grpc = texts[Stage.GRPC_CLIENT]
    started = time.process_time()
    for _ in range(repetitions):
        for task, payload in handoffs:
            payload_open(payload_seal(payload, to=task), at=task)
        proof = capability(transaction_id=transaction_id, text=at_grpc, deadline=deadline)
        if capability_refusal(proof, transaction_id=transaction_id, text=at_grpc):
            raise RuntimeError("the gRPC capability was refused")
    return round((time.process_time() - started) * 1000 / repetitions, 4)
