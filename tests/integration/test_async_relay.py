"""Asynchronous relays (``Prefer: respond-async``) and the event stream of a transaction,
through the real web server, worker, Kafka, gRPC server and Redis."""

import re
import threading
import time
import uuid
from datetime import timedelta
from statistics import median
from typing import Any

import redis
from django.conf import settings
from django.test import TransactionTestCase, override_settings
from django.utils import timezone

from relay_app.hops import Stage, expected_final_message
from relay_app.integrations.notices import channel
from relay_app.integrations.relay_api import COMMENT, EventStream, ServerEvent
from relay_app.models import Transaction
from relay_app.services.transactions import transaction_start

from ..support import (
    bearer,
    expected_log_lines,
    service_stopped,
    signed_in_client,
    transaction_log_lines,
    user_with_token,
    web,
)

ASYNC = {"Prefer": "respond-async"}
BASE = f"http://{settings.HTTP_ADDRESS}"
SHORT_BUDGET = 2.0


def settled(transaction_id: str, token: str, *, wait: float = 10.0) -> dict[str, Any]:
    """The transaction once it is no longer pending, polled as a client would."""
    give_up = time.monotonic() + wait
    while True:
        answer = web(token).get(f"/api/transactions/{transaction_id}/")
        if answer.body["status"] != "pending" or time.monotonic() > give_up:
            return dict(answer.body)
        time.sleep(0.05)


def stream(
    transaction_id: str, token: str, *, last_event_id: int = 0, timeout: float = 15.0
) -> tuple[int, list[ServerEvent]]:
    """The status of the event stream and every event of it, to its end."""
    path = f"/api/transactions/{transaction_id}/events/"
    with (
        web(token, timeout=timeout) as client,
        client.events(path, last_event_id=last_event_id) as events,
    ):
        return events.status, list(events) if events.status == 200 else []


def open_streams(staff_token: str) -> float:
    """The web server's count of event streams open now (its /metrics)."""
    body = web(staff_token, timeout=10).get("/metrics").raw
    match = re.search(rb"^relay_event_streams_open (\S+)$", body, re.MULTILINE)
    assert match is not None, body[-2000:]
    return float(match[1])


def subscribers(transaction_id: str) -> int:
    """How many event streams are subscribed to the transaction's notices now."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
    try:
        ((_, count),) = client.pubsub_numsub(channel(transaction_id))
        return int(count)
    finally:
        client.close()


class AsyncRelayTests(TransactionTestCase):
    def setUp(self) -> None:
        self.user, self.token = user_with_token("async-client")

    def test_202_at_once_with_where_to_poll_then_the_chain_finishes_with_the_original_log(
        self,
    ) -> None:
        answer = web(self.token).relay("hello world", respond_async=True)
        self.assertEqual(answer.status, 202, answer.body)
        body = answer.body
        transaction_id = body["transaction_id"]
        self.assertEqual(body["status"], "pending")
        self.assertEqual(body["url"], f"{BASE}/api/transactions/{transaction_id}/")
        self.assertEqual(answer.headers["Location"], body["url"])
        self.assertEqual(body["events"], f"{BASE}/api/transactions/{transaction_id}/events/")
        self.assertEqual(answer.headers["Preference-Applied"], "respond-async")
        self.assertEqual([hop["stage"] for hop in body["hops"]], ["rest_request"])

        final = settled(transaction_id, self.token)
        self.assertEqual(final["status"], "succeeded", final)
        self.assertEqual(final["message"], expected_final_message("hello world"))
        self.assertEqual([hop["position"] for hop in final["hops"]], list(range(1, 9)))
        # Hop 8 and the banner were written by the worker, in the original example's words and
        # order.
        self.assertEqual(transaction_log_lines(transaction_id), expected_log_lines("hello world"))

    def test_the_blocking_call_is_unchanged_without_the_preference(self) -> None:
        for headers in ({}, {"Prefer": "return=minimal"}):
            with self.subTest(headers=headers):
                answer = web(self.token).relay("ping", headers=headers)
                self.assertEqual(answer.status, 200, answer.body)
                self.assertEqual(answer.body["status"], "succeeded")
                self.assertNotIn("Preference-Applied", answer.headers)

    def test_a_repeated_idempotency_key_answers_the_first_transaction_at_once(self) -> None:
        key = {"Idempotency-Key": f"async-{uuid.uuid4()}"}
        first = web(self.token).relay("ping", headers={**ASYNC, **key})
        second = web(self.token).relay("ping", headers={**ASYNC, **key})
        self.assertEqual(first.status, 202, first.body)
        self.assertIn(second.status, (200, 202), second.body)  # pending still, or done
        self.assertEqual(second.body["transaction_id"], first.body["transaction_id"])
        self.assertLess(second.seconds, 2.0)
        settled(first.body["transaction_id"], self.token)
        third = web(self.token).relay("ping", headers={**ASYNC, **key})
        self.assertEqual(third.status, 200, third.body)  # settled: answered as it ended
        self.assertEqual(third.body["message"], expected_final_message("ping"))
        conflict = web(self.token).relay("pong", headers={**ASYNC, **key})
        self.assertEqual(conflict.status, 422, conflict.body)
        self.assertEqual(Transaction.objects.count(), 1)

    def test_bad_input_and_missing_credentials_are_refused_with_nothing_created(self) -> None:
        for message, token, status in [("", self.token, 400), ("ping", None, 401)]:
            with self.subTest(status=status):
                answer = web(token).relay(message, respond_async=True)
                self.assertEqual(answer.status, status, answer.body)
        bad_key = web(self.token).relay("ping", headers={**ASYNC, "Idempotency-Key": "a b"})
        self.assertEqual(bad_key.status, 400, bad_key.body)
        self.assertEqual(Transaction.objects.count(), 0)

    def test_redis_down_answers_503_with_the_transaction_recorded_as_failed(self) -> None:
        client = signed_in_client(self.token)
        with service_stopped("redis"):
            started = time.monotonic()
            response = client.post("/api/relay/", {"message": "ping"}, format="json", headers=ASYNC)
            seconds = time.monotonic() - started
        self.assertEqual(response.status_code, 503, response.content)
        self.assertLess(seconds, 3.0)
        body = response.json()
        self.assertIn("Redis is unavailable", body["detail"])
        transaction = Transaction.objects.get(id=body["transaction_id"])
        self.assertEqual(transaction.status, Transaction.Status.FAILED)
        after = web(self.token).relay("after the outage", respond_async=True)
        self.assertEqual(after.status, 202, after.body)
        self.assertEqual(settled(after.body["transaction_id"], self.token)["status"], "succeeded")

    @override_settings(RELAY_DEADLINE_SECONDS=SHORT_BUDGET)
    def test_a_chain_that_never_ran_is_timed_out_as_soon_as_a_worker_is_back(self) -> None:
        client = signed_in_client(self.token)
        with service_stopped("worker"):
            response = client.post("/api/relay/", {"message": "ping"}, format="json", headers=ASYNC)
            self.assertEqual(response.status_code, 202, response.content)
            transaction_id = response.json()["transaction_id"]
            time.sleep(SHORT_BUDGET + 1.5)
            # Nobody waits for it, and no worker runs: it is still pending.
            self.assertEqual(Transaction.objects.get(id=transaction_id).status, "pending")
        # The worker is back: it finds the chain's first task expired, and times the
        # transaction out at once, long before the stale sweep would (RELAY_STALE_GRACE_SECONDS).
        final = settled(transaction_id, self.token, wait=5.0)
        self.assertEqual(final["status"], "timed_out", final)
        self.assertEqual(final["failed_stage"], "kafka_publish_request")


class EventStreamTests(TransactionTestCase):
    def setUp(self) -> None:
        self.user, self.token = user_with_token("stream-watcher")

    def assert_hops_then_settled(
        self, events: list[ServerEvent], transaction_id: str, *, first: int = 1
    ) -> dict[str, Any]:
        named = [event for event in events if event is not COMMENT]
        self.assertEqual([event.name for event in named], ["hop"] * (9 - first) + ["settled"])
        self.assertEqual([event.id for event in named[:-1]], [str(n) for n in range(first, 9)])
        for event in named[:-1]:
            hop = event.json()
            self.assertEqual(hop["position"], int(event.id or 0))
            self.assertEqual(hop["stage"], Stage(hop["position"]).slug)
            self.assertEqual(hop["label"], Stage(hop["position"]).spec.log_label)
            self.assertGreaterEqual(hop["duration_ms"], 0)
        final: dict[str, Any] = named[-1].json()
        # The same representation as the transaction's own page.
        page = web(self.token).get(f"/api/transactions/{transaction_id}/")
        self.assertEqual(final, page.body)
        return final

    def test_a_transaction_in_flight_streams_each_hop_then_its_final_state(self) -> None:
        answer = web(self.token).relay("hello world", respond_async=True)
        self.assertEqual(answer.status, 202, answer.body)
        transaction_id = answer.body["transaction_id"]
        status, events = stream(transaction_id, self.token)
        self.assertEqual(status, 200)
        final = self.assert_hops_then_settled(events, transaction_id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["message"], expected_final_message("hello world"))

    def test_a_settled_transaction_replays_its_hops_and_honours_last_event_id(self) -> None:
        answer = web(self.token).relay("ping")
        self.assertEqual(answer.status, 200, answer.body)
        transaction_id = answer.body["transaction_id"]
        started = time.monotonic()
        status, events = stream(transaction_id, self.token)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(status, 200)
        self.assert_hops_then_settled(events, transaction_id)
        _, events = stream(transaction_id, self.token, last_event_id=5)
        self.assert_hops_then_settled(events, transaction_id, first=6)

    def test_a_quiet_stream_has_heartbeats_and_ends_timed_out_at_the_deadline(self) -> None:
        # A transaction whose chain was never started: only hop 1, then nothing.
        deadline = timezone.now() + timedelta(seconds=2)
        transaction = transaction_start(message="ping", owner=self.user, deadline_at=deadline)
        started = time.monotonic()
        status, events = stream(str(transaction.id), self.token)
        seconds = time.monotonic() - started
        self.assertEqual(status, 200)
        names = [event.name for event in events]
        self.assertEqual(names[0], "hop")
        self.assertEqual(names[-1], "settled")
        heartbeats = names.count("")
        self.assertGreaterEqual(heartbeats, 3, names)  # every 0.5 s in the tests
        final = events[-1].json()
        self.assertEqual(final["status"], "timed_out")
        self.assertEqual(final["failed_stage"], "kafka_publish_request")
        self.assertEqual(Transaction.objects.get(id=transaction.id).status, "timed_out")
        # At the deadline plus a second's grace, not much later.
        self.assertGreater(seconds, 2.0)
        self.assertLess(seconds, 6.0)

    def test_an_unknown_or_foreign_transaction_is_404_and_staff_see_any(self) -> None:
        answer = web(self.token).relay("mine")
        transaction_id = answer.body["transaction_id"]
        _, stranger = user_with_token("stranger")
        _, staff = user_with_token("staff-watcher", staff=True)
        for token, expected in [(stranger, 404), (staff, 200), (self.token, 200)]:
            with self.subTest(expected=expected):
                self.assertEqual(stream(transaction_id, token)[0], expected)
        self.assertEqual(stream(str(uuid.uuid4()), self.token)[0], 404)
        unknown = web().get(
            f"/api/transactions/{uuid.uuid4()}/events/",
            headers={**bearer(self.token), "Accept": "text/event-stream"},
        )
        self.assertEqual(unknown.status, 404)
        self.assertIn("detail", unknown.body)  # JSON, like the transaction's page
        anonymous = web().get(f"/api/transactions/{transaction_id}/events/")
        self.assertEqual(anonymous.status, 401)

    def test_a_client_that_leaves_mid_stream_frees_its_stream(self) -> None:
        deadline = timezone.now() + timedelta(seconds=30)
        transaction = transaction_start(message="ping", owner=self.user, deadline_at=deadline)
        transaction_id = str(transaction.id)
        client = web(self.token, timeout=10)
        events = client.events(f"/api/transactions/{transaction_id}/events/")
        self.assertEqual(events.status, 200)
        first = next(iter(events))
        self.assertEqual((first.name, first.id), ("hop", "1"))
        self.assertEqual(subscribers(transaction_id), 1)
        _, staff = user_with_token("metrics-reader", staff=True)
        self.assertEqual(open_streams(staff), 1)
        events.close()
        client.close()
        # The next heartbeats meet the closed connection: the stream ends, unsubscribed.
        give_up = time.monotonic() + 10
        while subscribers(transaction_id) and time.monotonic() < give_up:
            time.sleep(0.1)
        self.assertEqual(subscribers(transaction_id), 0)
        self.assertEqual(open_streams(staff), 0)  # its thread is free again
        self.assertEqual(web(self.token).relay("still relaying").status, 200)


class ManyStreamsTests(TransactionTestCase):
    # As many open streams as one web server process holds, of as many users as that takes
    # (beyond, 429: tests/integration/test_connections.py).
    STREAMS = settings.RELAY_EVENT_STREAMS_PER_PROCESS
    WATCHERS = -(-STREAMS // settings.RELAY_EVENT_STREAMS_PER_USER)
    RELAYS = 30

    def relay_latencies(self, token: str) -> list[float]:
        latencies = []
        for n in range(self.RELAYS):
            answer = web(token).relay(f"latency {n}")
            self.assertEqual(answer.status, 200, answer.body)
            latencies.append(answer.seconds)
        return latencies

    def test_open_streams_up_to_the_caps_do_not_starve_relays(self) -> None:
        _, token = user_with_token("many-streams")
        watchers = [user_with_token(f"watcher-{n}") for n in range(self.WATCHERS)]
        before = self.relay_latencies(token)
        deadline = timezone.now() + timedelta(seconds=60)
        # Streams that stay open: transactions in flight (hop 1 done, nothing after it yet),
        # each watcher following as many as one user may.
        owners = [watchers[n % self.WATCHERS] for n in range(self.STREAMS)]
        transactions = [
            str(transaction_start(message=f"open {n}", owner=user, deadline_at=deadline).id)
            for n, (user, _) in enumerate(owners)
        ]
        opened = threading.Barrier(self.STREAMS + 1, timeout=60)
        streams: list[EventStream] = []
        lock = threading.Lock()
        heartbeats = [0] * self.STREAMS

        def watch(index: int) -> None:
            events = web(owners[index][1], timeout=60).events(
                f"/api/transactions/{transactions[index]}/events/"
            )
            with lock:
                streams.append(events)
            arriving = iter(events)
            next(arriving)  # hop 1
            opened.wait()
            try:
                for event in arriving:
                    if event is COMMENT:
                        heartbeats[index] += 1
            except (OSError, ValueError, AttributeError):
                pass  # closed by the test under the reader's feet

        threads = [
            threading.Thread(target=watch, args=(n,), daemon=True) for n in range(self.STREAMS)
        ]
        for thread in threads:
            thread.start()
        opened.wait()
        try:
            during = self.relay_latencies(token)
            time.sleep(1)
            self.assertTrue(all(heartbeats), "every stream is still alive and beating")
        finally:
            for events in streams:
                events.close()
        for thread in threads:
            thread.join(timeout=10)
        print(
            f"\n  relay latency p50 {median(before) * 1000:.0f} ms without streams,"
            f" {median(during) * 1000:.0f} ms with {self.STREAMS} open streams"
            f" (max {max(during) * 1000:.0f} ms)"
        )
        # Generous: the machine is shared; starving would mean timeouts (5 s) or refusals.
        self.assertLess(median(during), max(4 * median(before), 0.5))
