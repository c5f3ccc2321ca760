"""What someone with network access to Redis or to the gRPC port can no longer do, tried as
they would: a forged result for a waiting client, forged chain tasks, direct gRPC calls.

Through the real web server, worker, Redis and gRPC server; the forgeries are written the
way Celery and gRPC clients write them, with nothing of the relay's but task names."""

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import redis
from celery import Celery
from django.conf import settings
from django.test import SimpleTestCase, TransactionTestCase, override_settings
from django.utils import timezone
from grpc_health.v1 import health_pb2, health_pb2_grpc
from relay.v1 import relay_pb2, relay_pb2_grpc

from relay_app.grpc_server import RelayServicer, build_server
from relay_app.hops import Stage, expected_final_message
from relay_app.integrations import relay_rpc
from relay_app.integrations.relay_api import Answer
from relay_app.models import Hop, Transaction
from relay_app.services.chain import ChainPayload, payload_seal
from relay_app.services.transactions import transaction_start

from ..support import (
    running_stack,
    service_stopped,
    signed_in_client,
    transaction_log_lines,
    user_with_token,
    web,
)

FORGED_TEXT = "FORGED BY WHOEVER WRITES TO REDIS"
ANOTHER_KEY = "a-key-that-is-not-the-deployments-" + "x" * 32


class GatedServicer(RelayServicer):
    """The stack's gRPC hop, held until the test opens the gate: the chain is then known to
    be past hop 4, and cannot end before the forgery is in."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.gate = threading.Event()

    def Process(  # noqa: N802 - the proto's name
        self, request: relay_pb2.ProcessRequest, context: grpc.ServicerContext
    ) -> relay_pb2.ProcessResponse:
        self.called.set()
        self.gate.wait(10)
        return super().Process(request, context)


@contextmanager
def gated_grpc() -> Iterator[GatedServicer]:
    """The gRPC server replaced, for the block, by one that holds each call at the gate."""
    servicer = GatedServicer()
    with service_stopped("grpc"):
        server, _ = build_server(settings.GRPC_ADDRESS, servicer=servicer)
        server.start()
        try:
            yield servicer
        finally:
            servicer.gate.set()
            # Wait until it has let go of the port, which the stack's server takes back.
            server.stop(0).wait(10)


def forge_result(transaction_id: str, *, status: str = "SUCCESS") -> None:
    """Store and publish a result for the transaction's chain as the relay's result backend
    does (``ChainEndBackend``): the ``celery-task-meta-<id>`` key, a PUBLISH of the same on
    that channel, and an entry on its end list, which wakes the waiting view."""
    key = f"celery-task-meta-{transaction_id}"
    meta: dict[str, Any] = {
        "status": status,
        "result": {"transaction_id": transaction_id, "text": FORGED_TEXT, "deadline": 0},
        "traceback": None,
        "children": [],
        "date_done": datetime.now(UTC).isoformat(),
        "task_id": transaction_id,
    }
    client = redis.Redis.from_url(settings.CELERY_RESULT_BACKEND, socket_timeout=5)
    try:
        client.set(key, json.dumps(meta), ex=60)
        client.publish(key, json.dumps(meta))
        client.rpush(f"{key}.end", 1)
        client.expire(f"{key}.end", 60)
    finally:
        client.close()


def log_lines(name: str) -> list[str]:
    """The lines of a stack process's log (its console output)."""
    path: Path = running_stack().log_dir / f"{name}.log"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def wait_for(condition: Any, *, seconds: float = 10.0) -> Any:
    """``condition()`` once it is true, or its last value after ``seconds``."""
    give_up = time.monotonic() + seconds
    while not (value := condition()) and time.monotonic() < give_up:
        time.sleep(0.05)
    return value


class ForgedResultTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("forged-results")

    def started(self, message: str) -> str:
        """The id of the transaction relaying ``message``, once its hop 2 is recorded."""
        hop = wait_for(
            lambda: Hop.objects.filter(
                transaction__message=message, stage=Stage.KAFKA_PUBLISH_REQUEST
            ).first()
        )
        self.assertIsNotNone(hop, "the relay never got to hop 2")
        return str(hop.transaction_id)

    def test_a_forged_success_never_answers_the_waiting_client(self) -> None:
        message = f"forged result {uuid.uuid4()}"
        answers: list[Answer] = []
        with gated_grpc() as grpc_hop:
            client = threading.Thread(target=lambda: answers.append(web(self.token).relay(message)))
            client.start()
            transaction_id = self.started(message)
            self.assertTrue(grpc_hop.called.wait(5), "the chain never reached the gRPC hop")
            forge_result(transaction_id)
            client.join(0.5)
            self.assertFalse(answers, "the client was answered before the chain ended")
            grpc_hop.gate.set()
            client.join(10)
        (answer,) = answers
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.body["transaction_id"], transaction_id)
        self.assertEqual(answer.body["message"], expected_final_message(message))
        self.assertEqual([hop["stage"] for hop in answer.body["hops"]], [s.slug for s in Stage])
        warned = [line for line in log_lines("web") if transaction_id in line]
        self.assertEqual(len(warned), 1, warned)
        self.assertIn("WARNING", warned[0])

    @override_settings(RELAY_DEADLINE_SECONDS=2.0)
    def test_a_forged_success_for_a_chain_that_never_ends_is_a_timeout(self) -> None:
        message = f"forged result, stuck chain {uuid.uuid4()}"
        client = signed_in_client(self.token)
        with gated_grpc() as grpc_hop, self.assertLogs("relay_app.services.relay", "WARNING"):
            answers: list[Any] = []
            waiting = threading.Thread(
                target=lambda: answers.append(
                    client.post("/api/relay/", {"message": message}, format="json")
                )
            )
            waiting.start()
            transaction_id = self.started(message)
            self.assertTrue(grpc_hop.called.wait(5))
            forge_result(transaction_id)
            waiting.join(5)
        (response,) = answers
        self.assertEqual(response.status_code, 504, response.json())
        self.assertNotIn(FORGED_TEXT, json.dumps(response.json()))
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.TIMED_OUT)
        self.assertEqual(transaction.failed_stage, Stage.GRPC_SERVER)


class ForgedTaskTests(TransactionTestCase):
    """Messages pushed onto the ``celery`` list by a plain Celery client, as anyone who can
    write to Redis could."""

    def test_forged_chain_tasks_change_nothing_and_each_is_refused_with_one_warning(
        self,
    ) -> None:
        deadline = time.time() + 5
        transaction = transaction_start(
            message="pending",
            owner=None,
            deadline_at=timezone.now() + timedelta(seconds=5),
        )
        transaction_id = str(transaction.id)
        forged: ChainPayload = {
            "transaction_id": transaction_id,
            "text": FORGED_TEXT,
            "deadline": deadline,
        }
        with override_settings(RELAY_CHAIN_SIGNING_KEY=ANOTHER_KEY):
            with_another_key = payload_seal(forged, to="relay.call_grpc")
        messages = [
            ("relay.respond", forged),  # no seal at all
            ("relay.call_grpc", with_another_key),
            # The relay's own seal, but for another task: a seal cannot be readdressed.
            ("relay.respond", payload_seal(forged, to="relay.publish_request")),
            ("relay.time_out_transaction", {**forged, "seal": "0" * 64}),
        ]
        warnings_before = len(refusals(transaction_id))
        attacker = Celery(broker=settings.CELERY_BROKER_URL, set_as_current=False)
        sent = [attacker.send_task(name, args=[payload]) for name, payload in messages]
        refused = wait_for(lambda: len(refusals(transaction_id)) >= warnings_before + len(sent))
        time.sleep(0.5)  # nothing more comes of them
        lines = refusals(transaction_id)[warnings_before:]
        self.assertTrue(refused, lines)
        self.assertEqual(len(lines), len(messages), lines)
        self.assertTrue(all(" WARNING " in line for line in lines), lines)
        named = sorted(re.findall(r"refused a (relay\.\w+) message", "\n".join(lines)))
        self.assertEqual(named, sorted(name for name, _ in messages))
        transaction.refresh_from_db()
        self.assertEqual(transaction.status, Transaction.Status.PENDING)
        self.assertEqual(list(transaction.hops.values_list("stage", flat=True)), [1])
        self.assertEqual(len(transaction_log_lines(transaction_id, wait=0.3)), 1)
        results = redis.Redis.from_url(settings.CELERY_RESULT_BACKEND, socket_timeout=5)
        try:
            stored = [results.exists(f"celery-task-meta-{result.id}") for result in sent]
        finally:
            results.close()
        self.assertEqual(stored, [0] * len(sent), "a refused task stored a result")


def refusals(transaction_id: str) -> list[str]:
    """The worker's log lines that refuse a message claiming ``transaction_id``."""
    return [
        line
        for line in log_lines("worker")
        if re.search(r"refused a relay\.\w+ message", line) and transaction_id in line
    ]


class DirectGrpcCallTests(SimpleTestCase):
    """Calls to the stack's gRPC server from outside the relay."""

    def setUp(self) -> None:
        self.channel = grpc.insecure_channel(settings.GRPC_ADDRESS)
        self.addCleanup(self.channel.close)

    def call(self, transaction_id: str, text: str, metadata: Any) -> Any:
        stub = relay_pb2_grpc.RelayStub(self.channel)
        request = relay_pb2.ProcessRequest(transaction_id=transaction_id, text=text)
        return stub.Process(request, timeout=5, metadata=metadata)

    def test_only_a_call_with_the_workers_capability_writes_hop_5(self) -> None:
        transaction_id, text = str(uuid.uuid4()), "hello and gRPC client"
        deadline = time.time() + 5
        with override_settings(RELAY_GRPC_CAPABILITY_KEY=ANOTHER_KEY):
            wrong = relay_rpc.capability(
                transaction_id=transaction_id, text=text, deadline=deadline
            )
        refused = {"without a capability": (), "with one made with another key": wrong}
        for case, metadata in refused.items():
            with self.subTest(case), self.assertRaises(grpc.RpcError) as raised:
                self.call(transaction_id, text, metadata)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(transaction_log_lines(transaction_id, wait=0.5), [])
        # Health stays open to anyone.
        health = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=relay_rpc.SERVICE_NAME), timeout=5
        )
        self.assertEqual(health.status, health_pb2.HealthCheckResponse.SERVING)
        # The right capability, made with the deployment's key as a worker makes it.
        proof = relay_rpc.capability(transaction_id=transaction_id, text=text, deadline=deadline)
        self.assertEqual(self.call(transaction_id, text, proof).text, f"{text} and gRPC server")
        self.assertEqual(
            transaction_log_lines(transaction_id, expected=1),
            [f"gRPC Server:{text} and gRPC server "],
        )
