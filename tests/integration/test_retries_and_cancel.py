"""Retries and cancel through the real stack: the gRPC hop retried under its policy with
every attempt recorded and shown, and a transaction cancelled wherever it is.

A test that needs the gRPC server to misbehave stops the stack's and serves its own
``RelayServicer`` on the same address (the worker's channel reconnects to it).
"""

import random
import re
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import grpc
from django.conf import settings
from django.test import TransactionTestCase, override_settings
from relay.v1 import relay_pb2

from ops.client import Credentials
from ops.ledger import Load
from relay_app.grpc_server import RelayServicer, build_server
from relay_app.hops import Stage, expected_final_message
from relay_app.integrations.relay_api import ServerEvent
from relay_app.integrations.relay_rpc import CAPABILITY_DEADLINE_HEADER
from relay_app.models import Attempt, Hop, Transaction
from relay_app.retries import Retried, policy_for

from ..support import (
    running_stack,
    service_stopped,
    signed_in_client,
    transaction_log_lines,
    user_with_token,
    web,
)

GRPC_SERVER_LINE = "gRPC Server:"


class ScriptedServicer(RelayServicer):
    """The real servicer, after ``before(request, context, call)`` (the transaction's n-th
    call), which may abort or wait; counts each transaction's calls."""

    def __init__(
        self, before: Callable[[relay_pb2.ProcessRequest, grpc.ServicerContext, int], None]
    ) -> None:
        self.before = before
        self.calls: Counter[str] = Counter()
        self.cancelled: set[str] = set()
        self.lock = threading.Lock()

    def Process(  # noqa: N802 - the proto's name
        self, request: relay_pb2.ProcessRequest, context: grpc.ServicerContext
    ) -> relay_pb2.ProcessResponse:
        with self.lock:
            self.calls[request.transaction_id] += 1
            call = self.calls[request.transaction_id]
        self.before(request, context, call)
        if not context.is_active():  # the server sees the client's cancellation
            with self.lock:
                self.cancelled.add(request.transaction_id)
        return super().Process(request, context)


def deadline_of(context: grpc.ServicerContext) -> float:
    return float(dict(context.invocation_metadata())[CAPABILITY_DEADLINE_HEADER])


def wait_until_cancelled(context: grpc.ServicerContext, seconds: float = 8.0) -> None:
    give_up = time.monotonic() + seconds
    while context.is_active() and time.monotonic() < give_up:
        time.sleep(0.01)


@contextmanager
def grpc_server(servicer: RelayServicer) -> Iterator[None]:
    """``servicer`` serving the stack's gRPC address instead of the stack's server."""
    with service_stopped("grpc"):
        server, _ = build_server(settings.GRPC_ADDRESS, servicer=servicer)
        server.start()
        try:
            yield
        finally:
            server.stop(0).wait(10)  # its port free again before the stack's server starts


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.02)


def worker_metric(name: str, **labels: str) -> float:
    """A metric's value on the worker's metrics address (summed over its processes)."""
    with urllib.request.urlopen(
        f"http://{settings.RELAY_WORKER_METRICS_ADDRESS}/metrics", timeout=5
    ) as answer:
        text = answer.read().decode()
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match[1].split(","))) == wanted:
            total += float(match[2])
    return total


class RetryTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("retrying")

    def test_a_grpc_server_killed_for_one_second_under_load_fails_no_transaction(self) -> None:
        stack = running_stack()
        # 32 clients, each sending one request after the other; a refusal at admission (503
        # with Retry-After, nothing recorded) is obeyed, as a well-behaved client does.
        load = Load(
            settings.HTTP_ADDRESS, Credentials(self.token), timeout=30, obey_retry_after=True
        )
        started = time.time()
        load.start(32, lambda n: (f"load {n} #{i}" for i in range(100_000)))
        time.sleep(1.5)
        stack.stop("grpc", sig=signal.SIGKILL)
        time.sleep(1.0)
        stack.start("grpc")
        time.sleep(2.0)
        load.stop.set()
        entries = load.join(30)
        window = Transaction.objects.filter(
            message__startswith="load ", created_at__gte=_at(started)
        )
        retried = (
            Attempt.objects.filter(transaction__in=window, stage=Stage.GRPC_SERVER)
            .values("transaction_id")
            .distinct()
            .count()
        )
        recorded = [e for e in entries if isinstance(e.body, dict) and "transaction_id" in e.body]
        refused = sum(1 for e in entries if e not in recorded)
        statuses = Counter(e.status for e in recorded)
        print(
            f"\ngRPC server killed for 1 s under 32 clients: {len(entries)} sent,"
            f" {len(recorded)} transactions, {statuses[503]} failed (503), {statuses[504]} timed"
            f" out (504); {refused} refused at admission (nothing recorded); {retried} needed"
            " another attempt of hop 5: each of those a failed transaction without retries"
        )
        self.assertGreater(retried, 0, "the kill hit no call: nothing was tested")
        # Without retries, each of those ``retried`` fails (503; RELAY_RETRY_GRPC_ATTEMPTS=1
        # shows it). With them, none fails while time is left: on a machine too busy to carry
        # 32 clients within the deadline, some run out of it (504, or 503 saying no attempt
        # was left time for), which is counted above, not held against the retries.
        gave_up = window.filter(status=Transaction.Status.FAILED).exclude(
            error__contains="no attempt after attempt"
        )
        self.assertFalse(gave_up.exists(), list(gave_up.values_list("error", flat=True)))
        carried = window.filter(
            status=Transaction.Status.SUCCEEDED,
            attempts__stage=Stage.GRPC_SERVER,
            attempts__retried=True,
        )
        print(f"{carried.distinct().count()} of them carried through to success by a retry")

    def test_a_final_error_is_not_retried(self) -> None:
        def refuse(request: Any, context: grpc.ServicerContext, call: int) -> None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")

        servicer = ScriptedServicer(refuse)
        with grpc_server(servicer):
            answer = web(self.token).relay("refused")
        self.assertEqual(answer.status, 503, answer.body)
        transaction_id = answer.body["transaction_id"]
        self.assertEqual(servicer.calls[transaction_id], 1)
        self.assertIn("PERMISSION_DENIED is not worth another attempt", answer.body["detail"])
        (unfinished,) = answer.body["unfinished_hops"]
        self.assertEqual(unfinished["stage"], "grpc_server")
        (attempt,) = unfinished["attempts"]
        self.assertEqual(
            (attempt["number"], attempt["outcome"], attempt["kind"], attempt["retried"]),
            (1, "failed", "PERMISSION_DENIED", False),
        )

    @override_settings(RELAY_DEADLINE_SECONDS=3.0)
    def test_a_deadline_too_short_for_another_attempt_fails_at_once_with_the_reason(
        self,
    ) -> None:
        # Every call fails UNAVAILABLE, worth another attempt; the last but one (the last whose
        # failure leaves a choice) only shortly before the deadline: less than the delay its
        # policy waits after it is left, so no further attempt is made, well before the
        # deadline (slack for a loaded machine: that whole delay).
        policy = policy_for(Retried.GRPC)
        last_choice = policy.attempts - 1
        shortest_delay = policy.delay(last_choice, rand=1.0)

        def unavailable(request: Any, context: grpc.ServicerContext, call: int) -> None:
            if call == last_choice:
                time.sleep(max(deadline_of(context) - time.time() - 0.95 * shortest_delay, 0))
            context.abort(grpc.StatusCode.UNAVAILABLE, "going away")

        client = signed_in_client(self.token)
        with grpc_server(ScriptedServicer(unavailable)):
            response = client.post("/api/relay/", {"message": "late"}, format="json")
        body = response.json()
        # 503, not 504: it failed before its deadline instead of trying until it.
        self.assertEqual(response.status_code, 503, body)
        self.assertIn(f"no attempt after attempt {last_choice}", body["detail"])
        self.assertIn("this hop typically takes", body["detail"])
        transaction = Transaction.objects.get(id=body["transaction_id"])
        self.assertEqual(transaction.status, Transaction.Status.FAILED)
        attempts = list(transaction.attempts.all())
        self.assertEqual([a.number for a in attempts], list(range(1, last_choice + 1)))
        self.assertEqual([a.retried for a in attempts], [True] * (last_choice - 1) + [False])

    def test_attempts_show_in_the_answer_the_events_the_admin_and_the_metrics(self) -> None:
        def unavailable_once(request: Any, context: grpc.ServicerContext, call: int) -> None:
            if call == 1:
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")

        failed_before = worker_metric(
            "relay_hop_attempts_total", stage="grpc_server", outcome="failed"
        )
        with grpc_server(ScriptedServicer(unavailable_once)):
            answer = web(self.token).relay("flaky", respond_async=True)
            self.assertEqual(answer.status, 202, answer.body)
            transaction_id = answer.body["transaction_id"]
            path = f"/api/transactions/{transaction_id}/events/"
            with web(self.token) as client, client.events(path) as events:
                received = list(events)
        names = [event.name for event in received if event.name]
        self.assertEqual(names[-1], "settled")
        attempt_events = [event.json() for event in received if event.name == "attempt"]
        self.assertEqual(len(attempt_events), 1)
        self.assertEqual(attempt_events[0]["stage"], "grpc_server")
        self.assertEqual(attempt_events[0]["kind"], "UNAVAILABLE")
        self.assertLess(names.index("attempt"), _index(received, "hop", 5))

        body = web(self.token).get(f"/api/transactions/{transaction_id}/").body
        self.assertEqual(body["status"], "succeeded", body)
        self.assertEqual(body["message"], expected_final_message("flaky"))
        attempts = body["hops"][Stage.GRPC_SERVER - 1]["attempts"]
        self.assertEqual([a["outcome"] for a in attempts], ["failed", "succeeded"])
        self.assertEqual([a["number"] for a in attempts], [1, 2])
        self.assertTrue(attempts[0]["retried"])
        self.assertIn("UNAVAILABLE", attempts[0]["error"])
        self.assertEqual(body["unfinished_hops"], [])
        for hop in body["hops"]:
            self.assertGreaterEqual(len(hop["attempts"]), 1, hop)

        staff, _ = user_with_token("retry-staff", staff=True)
        self.client.force_login(staff)
        page = self.client.get(f"/admin/relay_app/transaction/{transaction_id}/change/")
        self.assertContains(page, "relay-waterfall__attempt--failed")
        self.assertContains(page, "attempt 1 failed")

        wait_for(
            lambda: (
                worker_metric("relay_hop_attempts_total", stage="grpc_server", outcome="failed")
                > failed_before
            )
        )


def _index(events: list[ServerEvent], name: str, event_id: int) -> int:
    return next(
        i for i, event in enumerate(events) if event.name == name and event.id == str(event_id)
    )


def _ended(transaction_id: str) -> bool:
    return Transaction.objects.get(id=transaction_id).status != Transaction.Status.PENDING


def _at(seconds: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds - 1, UTC)


class CancelTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("cancelling")

    def slow_server(self) -> ScriptedServicer:
        """A gRPC server that holds each call until its client cancels it."""
        return ScriptedServicer(lambda request, context, call: wait_until_cancelled(context))

    def assert_cancelled_in_the_call(self, transaction_id: str, servicer: ScriptedServicer) -> None:
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.CANCELLED)
        self.assertEqual(transaction.cancelled_by.username, "cancelling")  # type: ignore[union-attr]
        self.assertIsNotNone(transaction.cancelled_at)
        # The server saw the cancellation (waited for above), and recorded nothing after it.
        stages = list(transaction.hops.values_list("stage", flat=True))
        self.assertEqual(stages, [1, 2, 3, 4])
        lines = transaction_log_lines(transaction_id, expected=5, wait=1.0)
        self.assertFalse([line for line in lines if line.startswith(GRPC_SERVER_LINE)], lines)
        # The call in progress ended cancelled (an earlier one may have found the replaced
        # server gone, and been retried).
        wait_for(
            lambda: Attempt.objects.filter(
                transaction_id=transaction_id, outcome=Attempt.Outcome.CANCELLED
            ).exists()
        )
        *earlier, last = Attempt.objects.filter(transaction_id=transaction_id)
        self.assertEqual(last.stage, Stage.GRPC_SERVER)
        self.assertTrue(all(a.retried and a.kind == "UNAVAILABLE" for a in earlier), earlier)

    def test_a_blocked_client_gets_its_answer_at_once_and_the_call_is_cancelled(self) -> None:
        servicer = self.slow_server()
        answer: list[Any] = []
        with grpc_server(servicer):
            waiting = threading.Thread(
                target=lambda: answer.append(web(self.token).relay("blocked")), daemon=True
            )
            waiting.start()
            wait_for(lambda: bool(servicer.calls))
            (transaction_id,) = servicer.calls
            cancel = web(self.token).cancel(transaction_id)
            waiting.join(10)
            answered_at = time.time()
            # The server sees its call cancelled by the worker (before it is itself stopped).
            wait_for(lambda: transaction_id in servicer.cancelled, 5)
        self.assertEqual(cancel.status, 200, cancel.body)
        self.assertEqual(cancel.body["status"], "cancelled")
        self.assertEqual(cancel.body["cancelled_by"], "cancelling")
        (blocked,) = answer
        self.assertEqual(blocked.status, 409, blocked.body)
        self.assertEqual(blocked.body["status"], "cancelled")
        self.assertIn("cancelled by cancelling", blocked.body["detail"])
        # Woken by the cancel: a waiter not woken answers only at the deadline.
        deadline_at = Transaction.objects.get(id=transaction_id).deadline_at.timestamp()
        self.assertLess(answered_at, deadline_at - 0.5)
        self.assert_cancelled_in_the_call(transaction_id, servicer)

    def test_an_open_event_stream_ends_with_a_cancelled_event(self) -> None:
        servicer = self.slow_server()
        with grpc_server(servicer):
            accepted = web(self.token).relay("followed", respond_async=True)
            transaction_id = accepted.body["transaction_id"]
            received: list[ServerEvent] = []

            def follow() -> None:
                path = f"/api/transactions/{transaction_id}/events/"
                with web(self.token) as client, client.events(path) as events:
                    received.extend(events)

            following = threading.Thread(target=follow, daemon=True)
            following.start()
            wait_for(lambda: bool(servicer.calls))
            self.assertEqual(web(self.token).cancel(transaction_id).status, 200)
            following.join(10)
            wait_for(lambda: transaction_id in servicer.cancelled, 5)
        names = [event.name for event in received if event.name]
        self.assertEqual(names[-1], "cancelled", names)
        self.assertNotIn("settled", names)
        self.assertEqual(received[-1].json()["status"], "cancelled")
        self.assert_cancelled_in_the_call(transaction_id, servicer)

    def test_a_transaction_waiting_in_the_queue_is_never_worked_on(self) -> None:
        with service_stopped("worker"):
            accepted = web(self.token).relay("queued", respond_async=True)
            transaction_id = accepted.body["transaction_id"]
            cancel = web(self.token).cancel(transaction_id)
            self.assertEqual(cancel.status, 200, cancel.body)
        # The worker is back and takes the chain's first task (or finds it expired, when its
        # start took longer than the deadline): once a transaction sent after it has ended,
        # the queue has been served past it.
        web(self.token).relay("after the queued one")
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.CANCELLED)
        self.assertEqual(list(transaction.hops.values_list("stage", flat=True)), [1])
        self.assertFalse(Attempt.objects.filter(transaction_id=transaction_id).exists())

    def test_a_finished_transaction_is_not_changed_and_says_so(self) -> None:
        done = web(self.token).relay("done")
        self.assertEqual(done.status, 200, done.body)
        again = web(self.token).cancel(done.body["transaction_id"])
        self.assertEqual(again.status, 409, again.body)
        self.assertEqual(again.body["status"], "succeeded")
        self.assertIn("already ended (succeeded)", again.body["detail"])
        transaction = Transaction.objects.get(id=done.body["transaction_id"])
        self.assertEqual(transaction.status, Transaction.Status.SUCCEEDED)
        self.assertIsNone(transaction.cancelled_at)

    def test_another_users_transaction_is_not_found(self) -> None:
        with service_stopped("worker"):
            accepted = web(self.token).relay("mine", respond_async=True)
            transaction_id = accepted.body["transaction_id"]
            _, other = user_with_token("someone-else")
            self.assertEqual(web(other).cancel(transaction_id).status, 404)
            self.assertEqual(web(None).cancel(transaction_id).status, 401)
            _, staff = user_with_token("cancel-staff", staff=True)
            by_staff = web(staff).cancel(transaction_id)
        self.assertEqual(by_staff.status, 200, by_staff.body)
        self.assertEqual(by_staff.body["cancelled_by"], "cancel-staff")

    def test_a_race_with_completion_ends_in_one_final_state_each_time(self) -> None:
        outcomes: Counter[str] = Counter()
        with web(self.token) as client:
            for attempt in range(100):
                accepted = client.relay(f"race {attempt}", respond_async=True)
                transaction_id = accepted.body["transaction_id"]
                time.sleep(random.uniform(0, 0.06))  # noqa: S311 - spreading, not secrecy
                cancel = client.cancel(transaction_id)
                wait_for(partial(_ended, transaction_id))
                transaction = Transaction.objects.get(id=transaction_id)
                stages = set(
                    Hop.objects.filter(transaction_id=transaction_id).values_list(
                        "stage", flat=True
                    )
                )
                outcomes[transaction.status] += 1
                if transaction.status == Transaction.Status.SUCCEEDED:
                    self.assertEqual(cancel.status, 409, cancel.body)
                    self.assertIsNone(transaction.cancelled_at)
                    self.assertEqual(stages, set(range(1, 9)))
                else:
                    self.assertEqual(transaction.status, Transaction.Status.CANCELLED)
                    self.assertEqual(cancel.status, 200, cancel.body)
                    self.assertEqual(transaction.final_message, "")
                    self.assertNotIn(Stage.REST_RESPONSE, stages)
                    # Nothing is recorded after the cancellation, whatever the chain still does.
                    time.sleep(0.1)
                    later = Hop.objects.filter(transaction_id=transaction_id).values_list(
                        "stage", flat=True
                    )
                    self.assertEqual(set(later), stages)
        print(f"\ncancel racing completion, 100 tries: {dict(outcomes)}")
        self.assertEqual(sum(outcomes.values()), 100)
