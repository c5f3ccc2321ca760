"""Admission: a relay that cannot be done before its deadline, counted from its arrival, is
refused before Django with 503 and a spread Retry-After (or held for it), and nothing is
recorded."""

import json
import os
import socket
import threading
import time
from typing import Any
from unittest import mock

from django.conf import settings
from django.test import SimpleTestCase, TestCase, override_settings
from gunicorn.workers.gthread import TConn

from project.webserver import ArrivalThreadWorker, stamp_arrival
from relay_app.api.admission import DEADLINE_KEY, admitting
from relay_app.api.arrival import ARRIVED_AT
from relay_app.metrics import registry
from relay_app.models import Transaction
from relay_app.services.admission import (
    MOST_WAITING,
    AdmissionGate,
    Overloaded,
    Place,
    RefusalHolds,
    Waiter,
    gate,
    holds,
    relay_ended,
)
from relay_app.services.relay import _count as count_transaction

from ..support import signed_in_client, user_with_token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hold(gate: AdmissionGate, clock: Clock, count: int) -> list[Any]:
    """``count`` relays in flight (the places are kept: a dropped one would be given back)."""
    places = [gate.admit(arrived_at=clock.now) for _ in range(count)]
    for place in places:
        place.__enter__()
    return places


def seconds_until(condition: Any, at_most: float = 10.0) -> bool:
    """Whether ``condition()`` became true within ``at_most`` seconds (polled)."""
    ends = time.monotonic() + at_most
    while not condition():
        if time.monotonic() > ends:
            return False
        time.sleep(0.005)
    return True


def finish(gate: AdmissionGate, clock: Clock, count: int, *, every: float) -> None:
    """``count`` relays, one after another, each taking ``every`` seconds."""
    for _ in range(count):
        with gate.admit(arrived_at=clock.now) as place:
            clock.now += every
            place.succeeded = True


@override_settings(RELAY_DEADLINE_SECONDS=5.0, RELAY_ADMISSION_CONCURRENCY=16)
class GateTests(SimpleTestCase):
    """With a rate to go by, at most the concurrency at once; the rest wait in line while they
    can still be done in time. Tests of the rate's rule alone lift the concurrency."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.waits: list[float] = []
        self.gate = AdmissionGate(clock=self.clock, wait=self.nobody_leaves)

    def nobody_leaves(self, woken: threading.Event, timeout: float) -> None:
        """A wait for a place that no relay gives back: it lasts its whole timeout."""
        self.waits.append(timeout)
        self.clock.now += timeout

    def test_the_deadline_counts_from_arrival(self) -> None:
        with self.gate.admit(arrived_at=self.clock.now - 2) as place:
            self.assertEqual(place.deadline, self.clock.now + 3)

    def test_cold_it_takes_on_the_concurrency_and_none_waits(self) -> None:
        held = hold(self.gate, self.clock, 16)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual((len(held), self.waits), (16, []))

    def test_a_request_that_waited_out_its_budget_is_refused(self) -> None:
        with self.assertRaises(Overloaded) as refused:
            self.gate.admit(arrived_at=self.clock.now - 5.01).__enter__()
        self.assertGreaterEqual(refused.exception.retry_after, 1)
        self.assertEqual(refused.exception.status_code, 503)
        self.assertFalse(refused.exception.holdable)

    @override_settings(RELAY_ADMISSION_CONCURRENCY=1000)
    def test_it_refuses_what_the_relays_in_flight_would_make_late(self) -> None:
        finish(self.gate, self.clock, 20, every=0.125)  # 8 relays a second
        # At 8/s, 0.65 x 5 s of work is 26 relays: 25 fit, 2 more would make the last late.
        held = hold(self.gate, self.clock, 25)
        with self.assertRaises(Overloaded) as refused:
            hold(self.gate, self.clock, 2)
        self.assertTrue(1 <= refused.exception.retry_after <= 5)
        self.assertEqual(len(held), 25)

    def test_relays_that_finish_together_count_the_time_they_took(self) -> None:
        # 16 taken on together finish together 2 s later: 8 a second, not 16 in an instant.
        managers = [self.gate.admit(arrived_at=self.clock.now) for _ in range(16)]
        places = [manager.__enter__() for manager in managers]
        self.clock.now += 16 / 8
        for manager, place in zip(managers, places, strict=True):
            place.succeeded = True
            manager.__exit__(None, None, None)
            self.clock.now += 0.001
        with self.settings(RELAY_ADMISSION_CONCURRENCY=1000):
            admitted = hold(self.gate, self.clock, 25)  # 0.65 x 5 s at 8/s: 26
            with self.assertRaises(Overloaded):
                hold(self.gate, self.clock, 2)
        self.assertEqual(len(admitted), 25)

    @override_settings(RELAY_ADMISSION_CONCURRENCY=1000)
    def test_time_spent_waiting_for_a_thread_counts(self) -> None:
        finish(self.gate, self.clock, 20, every=0.1)
        held = hold(self.gate, self.clock, 30)  # 3 s of work ahead
        with self.assertRaises(Overloaded):  # 3 s left, of which 0.65 x 3 may be used
            self.gate.admit(arrived_at=self.clock.now - 2).__enter__()
        with self.gate.admit(arrived_at=self.clock.now):  # 5 s left
            self.assertEqual(len(held), 30)

    def test_beyond_the_concurrency_a_relay_waits_while_it_can_still_start_in_time(self) -> None:
        finish(self.gate, self.clock, 20, every=0.1)  # 10 a second
        held = hold(self.gate, self.clock, 16)
        arrived = self.clock.now
        with self.assertRaises(Overloaded) as refused:
            hold(self.gate, self.clock, 1)  # nobody leaves: it waits, then is refused
        # 16 in flight beside it at 10/s take 1.6 s, 0.65 of the 2.46 s it must have left.
        self.assertAlmostEqual(self.clock.now, arrived + 5 - 1.6 / 0.65)
        self.assertFalse(refused.exception.holdable)  # it waited already
        self.assertEqual((len(held), len(self.gate._waiting)), (16, 0))

    def test_waiters_start_first_come_first_served_as_places_free(self) -> None:
        gate = AdmissionGate(clock=self.clock)  # waits for real: places are given back
        finish(gate, self.clock, 20, every=0.05)
        held = hold(gate, self.clock, 16)
        started: list[int] = []
        done = threading.Event()

        def wait_in_line(number: int) -> None:
            with gate.admit(arrived_at=self.clock.now):
                started.append(number)
                done.wait(10)

        lines = [threading.Thread(target=wait_in_line, args=(n,)) for n in range(3)]
        for number, line in enumerate(lines):
            line.start()
            self.assertTrue(seconds_until(lambda n=number: len(gate._waiting) == n + 1))
        held[0].__exit__(None, None, None)
        self.assertTrue(seconds_until(lambda: started == [0]))
        held[1].__exit__(None, None, None)
        self.assertTrue(seconds_until(lambda: started == [0, 1]))
        done.set()  # 0 and 1 leave: 2 starts
        for line in lines:
            line.join(10)
        self.assertEqual(started, [0, 1, 2])

    def test_no_more_wait_than_their_place_in_line_would_make_late(self) -> None:
        finish(self.gate, self.clock, 20, every=0.2)  # 5 a second: 25 in 5 s
        held = hold(self.gate, self.clock, 16)
        waiting = [Waiter(Place(self.clock.now + 5)) for _ in range(9)]
        self.gate._waiting.extend(waiting)
        with self.assertRaises(Overloaded) as refused:  # the 26th in line: 5.2 s of work
            hold(self.gate, self.clock, 1)
        self.assertEqual(self.waits, [])
        self.assertTrue(refused.exception.holdable)  # refused at once: may be held
        for _ in range(MOST_WAITING - 9):  # a fast stack: only the threads bound the line
            self.gate._waiting.append(Waiter(Place(self.clock.now + 5)))
        with self.settings(RELAY_ADMISSION_INITIAL_RATE=1000.0):
            fast = AdmissionGate(clock=self.clock, wait=self.nobody_leaves)
            held += hold(fast, self.clock, 16)
            fast._waiting.extend(self.gate._waiting)
            with self.assertRaises(Overloaded):
                hold(fast, self.clock, 1)
        self.assertEqual((self.waits, len(held)), ([], 32))

    def test_after_a_quiet_spell_a_slow_rate_still_allows_the_concurrency(self) -> None:
        finish(self.gate, self.clock, 20, every=1.0)  # slow: 1 a second
        self.clock.now += 60
        held = hold(self.gate, self.clock, 16)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual((len(held), self.waits), (16, []))

    def test_a_burst_after_a_quiet_spell_waits_at_the_rate_served_before(self) -> None:
        finish(self.gate, self.clock, 20, every=0.05)  # 20 a second
        self.clock.now += 10  # quiet: the window is empty, the rate learned has faded a little
        held = hold(self.gate, self.clock, 16)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)  # it waited: nobody left
        # 16 at 18.9/s: 0.85 s, 0.65 of 1.3 s; it waited until that was all it had left.
        self.assertEqual(len(self.waits), 1)
        self.assertAlmostEqual(self.waits[0], 5 - 16 / (20 * 0.5 ** (10 / 120)) / 0.65, 2)
        self.assertEqual(len(held), 16)

    def test_over_a_long_quiet_spell_the_rate_learned_fades(self) -> None:
        for half_lives in (10, 2000):  # the second: faded to 0.0 in floating point
            with self.subTest(half_lives=half_lives):
                gate = AdmissionGate(clock=self.clock, wait=self.nobody_leaves)
                finish(gate, self.clock, 20, every=0.05)
                self.clock.now += half_lives * settings.RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS
                held = hold(gate, self.clock, 16)
                with self.assertRaises(Overloaded) as refused:
                    hold(gate, self.clock, 1)
                self.assertEqual((len(held), self.waits), (16, []))
                self.assertTrue(1 <= refused.exception.retry_after <= 5)

    @override_settings(RELAY_ADMISSION_INITIAL_RATE=20.0)
    def test_after_a_start_the_configured_rate_stands_in(self) -> None:
        gate = AdmissionGate(clock=self.clock, wait=self.nobody_leaves)
        held = hold(gate, self.clock, 16)
        with self.assertRaises(Overloaded):
            hold(gate, self.clock, 1)
        self.assertEqual((len(held), len(self.waits)), (16, 1))  # it waited in line

    def test_relays_failing_in_a_row_make_it_forget_the_rate_learned(self) -> None:
        finish(self.gate, self.clock, 20, every=0.05)
        self.clock.now += 10
        for _ in range(10):  # all time out: the stack is failing, not quiet
            with self.gate.admit(arrived_at=self.clock.now) as place:
                self.clock.now += 0.01
                place.succeeded = False
        held = hold(self.gate, self.clock, 16)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual((len(held), self.waits), (16, []))

    @override_settings(RELAY_ADMISSION_CONCURRENCY=1000)
    def test_a_gap_between_bursts_does_not_read_as_a_slow_stack(self) -> None:
        finish(self.gate, self.clock, 10, every=0.1)  # 10 a second
        self.clock.now += 3  # nothing in flight
        finish(self.gate, self.clock, 10, every=0.1)
        held = hold(self.gate, self.clock, 32)  # at 10/s, 3.2 s of work: fits 0.65 x 5 s
        self.assertEqual(len(held), 32)

    def test_only_relays_that_succeeded_count_as_capacity(self) -> None:
        for _ in range(40):  # all time out: finished, but nothing done
            with self.gate.admit(arrived_at=self.clock.now) as place:
                self.clock.now += 0.01
                place.succeeded = False
        held = hold(self.gate, self.clock, 16)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual((len(held), self.waits), (16, []))

    @override_settings(RELAY_ADMISSION_CONCURRENCY=1000)
    def test_requests_that_carried_no_relay_to_its_end_say_nothing_of_the_stack(self) -> None:
        finish(self.gate, self.clock, 20, every=0.05)  # 20 a second
        for _ in range(20):  # answered at once: repeats, asynchronous relays, bad input
            with self.gate.admit(arrived_at=self.clock.now):
                self.clock.now += 0.001
        self.assertAlmostEqual(self.gate._rate(self.clock.now)[0] or 0.0, 20.0)
        self.assertEqual(self.gate._failed_in_a_row, 0)

    def test_the_relay_service_tells_the_place_of_its_thread_how_it_ended(self) -> None:
        ends = {
            Transaction.Status.SUCCEEDED: True,
            Transaction.Status.FAILED: False,
            Transaction.Status.TIMED_OUT: False,
            Transaction.Status.CANCELLED: None,
        }
        for status, succeeded in ends.items():
            with self.subTest(status=status), self.gate.admit(arrived_at=self.clock.now) as place:
                transaction = Transaction(status=status, failed_stage=None)
                count_transaction(transaction, deadline=self.clock.now + 5)
                self.assertIs(place.succeeded, succeeded)
        relay_ended(succeeded=True)  # outside a place (a task, a command): nothing to tell


class ArrivalTests(SimpleTestCase):
    def test_the_web_server_stamps_each_request(self) -> None:
        seen = {}

        def application(environ, start_response):  # type: ignore[no-untyped-def]
            seen.update(environ)
            return []

        before = time.time()
        stamp_arrival(application)({}, lambda *args: None)
        self.assertGreaterEqual(seen[ARRIVED_AT], before)

    def test_the_worker_class_overrides_methods_gunicorn_still_has(self) -> None:
        from gunicorn.workers.gthread import ThreadWorker

        for name in ("enqueue_req", "handle", "load_wsgi"):
            self.assertTrue(callable(getattr(ThreadWorker, name, None)), name)


def call(
    application: Any, method: str, path: str, **environ: Any
) -> tuple[str, dict[str, str], Any]:
    """``application``'s status line, headers and JSON body for one request."""
    started: list[Any] = []
    body = b"".join(
        application(
            {"REQUEST_METHOD": method, "PATH_INFO": path, **environ},
            lambda status, headers, *exc_info: started.extend([status, dict(headers)]),
        )
    )
    return started[0], started[1], json.loads(body)


def unreached(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise AssertionError("a refused relay reached Django")


@override_settings(RELAY_DEADLINE_SECONDS=5.0, RELAY_ADMISSION_HELD_REFUSALS=1)
class RefusalTests(SimpleTestCase):
    def test_refused_relays_answer_503_with_retry_after_before_django(self) -> None:
        late: dict[str, Any] = {ARRIVED_AT: time.time() - 6}
        status, headers, body = call(admitting(unreached), "POST", "/api/relay/", **late)
        self.assertEqual(status, "503 Service Unavailable")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertGreaterEqual(int(headers["Retry-After"]), 1)
        self.assertIn("at capacity", body["detail"])
        status, _, body = call(admitting(unreached), "GET", "/communication/restKafkaGRPC/", **late)
        self.assertEqual(status, "503 Service Unavailable")
        self.assertTrue(body.startswith("Error:the relay is at capacity"))

    def test_a_refusal_at_capacity_is_held_for_its_pause_while_there_is_a_place(self) -> None:
        with mock.patch("relay_app.api.admission.time.sleep") as sleep:
            for pause, held, retry_after in ((1.3, 1.3, "0"), (4.2, 2.5, "2")):
                with (
                    self.subTest(pause=pause),
                    mock.patch.object(gate, "admit", side_effect=Overloaded(pause)),
                ):
                    _, headers, body = call(admitting(unreached), "POST", "/api/relay/")
                    sleep.assert_called_with(held)  # at most half the deadline
                    self.assertEqual(headers["Retry-After"], retry_after)  # the rest
                    self.assertIn(f"try again in {retry_after} s", body["detail"])
            sleep.reset_mock()
            with (
                holds.place(Overloaded(1.0)),  # the one place is taken: answered at once
                mock.patch.object(gate, "admit", side_effect=Overloaded(1.3)),
            ):
                _, headers, _ = call(admitting(unreached), "POST", "/api/relay/")
            sleep.assert_not_called()
            self.assertEqual(headers["Retry-After"], "2")

    def test_refusals_are_held_only_in_threads_the_relays_leave(self) -> None:
        relays = [90]  # in flight and in line: 6 of the 96 threads left
        beside = RefusalHolds(beside=lambda: relays[0])
        with self.settings(RELAY_ADMISSION_HELD_REFUSALS=56):
            places = [beside.place(Overloaded(2.0)) for _ in range(7)]
            held = [place.__enter__() for place in places]
            self.assertEqual(held, [2.0] * 6 + [0.0])
            for place in places:
                place.__exit__(None, None, None)
            relays[0] = 96  # a line that takes every thread: refusals answered at once
            with beside.place(Overloaded(2.0)) as none:
                self.assertEqual(none, 0.0)

    def test_refused_clients_are_told_to_return_at_different_times(self) -> None:
        clock = Clock()
        busy = AdmissionGate(clock=clock)
        finish(busy, clock, 20, every=0.1)  # 10 a second
        with self.settings(RELAY_ADMISSION_CONCURRENCY=1000):
            held = hold(busy, clock, 25)  # 2.5 s of work ahead
            pauses = set()
            for _ in range(50):  # each with 3 s left, of which 0.65 x 3 s may be used
                with self.assertRaises(Overloaded) as refused:
                    busy.admit(arrived_at=clock.now - 2).__enter__()
                pauses.add(refused.exception.pause)
        self.assertEqual((len(held), busy._in_flight), (25, 25))
        self.assertGreater(len(pauses), 40)
        self.assertTrue(all(2.5 <= pause <= 3.75 for pause in pauses), pauses)

    def test_other_requests_pass_untouched(self) -> None:
        passed = []

        def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            passed.append(environ["PATH_INFO"])
            start_response("401 Unauthorized", [])
            return [b"{}"]

        late: dict[str, Any] = {ARRIVED_AT: time.time() - 60}
        for method, path in (("GET", "/api/transactions/"), ("GET", "/api/relay/")):
            self.assertEqual(call(admitting(application), method, path, **late)[0][:3], "401")
        self.assertEqual(passed, ["/api/transactions/", "/api/relay/"])

    def test_an_admitted_relay_is_handed_the_deadline_from_its_arrival(self) -> None:
        seen: dict[str, Any] = {}

        def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            seen.update(environ)
            start_response("200 OK", [])
            return [b"{}"]

        arrived = time.time() - 1
        call(admitting(application), "POST", "/api/relay/", **{ARRIVED_AT: arrived})
        self.assertEqual(seen[DEADLINE_KEY], arrived + 5.0)


def refusal_cpu() -> float:
    """The web server's ``relay_refusal_cpu_seconds_total`` so far."""
    return registry().get_sample_value("relay_refusal_cpu_seconds_total") or 0.0


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU."""
    ends = time.thread_time() + seconds
    while time.thread_time() < ends:
        pass


@override_settings(RELAY_DEADLINE_SECONDS=5.0, RELAY_ADMISSION_HELD_REFUSALS=1)
class RefusalCpuTests(SimpleTestCase):
    """gunicorn's worker, driven on a socket pair, counts the CPU of each request admission
    refused, and of no other."""

    def setUp(self) -> None:
        from gunicorn.config import Config
        from gunicorn.glogging import Logger

        config = Config()
        self.worker = ArrivalThreadWorker(0, os.getppid(), [], None, 30, config, Logger(config))
        self.addCleanup(self.worker.tmp.close)

    def serve(self, application: Any) -> bytes:
        """One relay request through the worker's handling; the answer it sent."""
        self.worker.wsgi = stamp_arrival(admitting(application))
        client, server = socket.socketpair()
        with client, server:
            client.sendall(b"POST /api/relay/ HTTP/1.1\r\nHost: relay\r\nContent-Length: 0\r\n\r\n")
            conn = TConn(self.worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
            self.worker.handle(conn)
            client.settimeout(5.0)
            return client.recv(65536)

    def test_a_refused_requests_cpu_is_counted_and_its_held_pause_is_not(self) -> None:
        def refusing(pause: float) -> Any:
            def overloaded(*args: Any, **kwargs: Any) -> Any:
                burn(0.02)  # the refusal's own work, made large enough to see
                raise Overloaded(pause)

            return mock.patch.object(gate, "admit", side_effect=overloaded)

        before, began = refusal_cpu(), time.monotonic()
        with refusing(0.6):  # held for 0.6 s, a sleep
            answer = self.serve(unreached)
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 "), answer[:40])
        self.assertGreaterEqual(time.monotonic() - began, 0.6)
        self.assertGreaterEqual(refusal_cpu() - before, 0.02)
        self.assertLess(refusal_cpu() - before, 0.3)  # not the hold's 0.6 s

    def test_an_admitted_requests_cpu_is_not_counted(self) -> None:
        def busy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            burn(0.05)
            start_response("200 OK", [("Content-Length", "2")])
            return [b"{}"]

        before = refusal_cpu()
        answer = self.serve(busy)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:40])
        self.assertEqual(refusal_cpu(), before)


class ViewDeadlineTests(TestCase):
    def test_the_view_relays_with_the_deadline_admission_handed_it(self) -> None:
        _, token = user_with_token("early")
        deadline = time.time() + 4
        with mock.patch("relay_app.api.views.relay_message") as relay:
            relay.side_effect = RuntimeError("stop here")
            with self.assertRaises(RuntimeError):
                handed: dict[str, Any] = {DEADLINE_KEY: deadline}
                signed_in_client(token).post(
                    "/api/relay/", {"message": "hi"}, format="json", **handed
                )
        self.assertEqual(relay.call_args.kwargs["deadline"], deadline)
        self.assertFalse(Transaction.objects.exists())
