"""Admission: a relay that cannot be done before its deadline, counted from its arrival, is
refused at once with 503 and Retry-After, and nothing is recorded."""

import time
from typing import Any
from unittest import mock

from django.conf import settings
from django.test import SimpleTestCase, TestCase, override_settings
from rest_framework.test import APIClient

from project.webserver import stamp_arrival
from relay_app.api.arrival import ARRIVED_AT
from relay_app.models import Transaction
from relay_app.services.admission import COLD_IN_FLIGHT, AdmissionGate, Overloaded

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


def finish(gate: AdmissionGate, clock: Clock, count: int, *, every: float) -> None:
    """``count`` relays, one after another, each taking ``every`` seconds."""
    for _ in range(count):
        with gate.admit(arrived_at=clock.now) as place:
            clock.now += every
            place.succeeded = True


@override_settings(RELAY_DEADLINE_SECONDS=5.0)
class GateTests(SimpleTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.gate = AdmissionGate(clock=self.clock)

    def test_the_deadline_counts_from_arrival(self) -> None:
        with self.gate.admit(arrived_at=self.clock.now - 2) as place:
            self.assertEqual(place.deadline, self.clock.now + 3)

    def test_cold_it_takes_on_a_fixed_number(self) -> None:
        held = hold(self.gate, self.clock, COLD_IN_FLIGHT)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual(len(held), COLD_IN_FLIGHT)

    def test_a_request_that_waited_out_its_budget_is_refused(self) -> None:
        with self.assertRaises(Overloaded) as refused:
            self.gate.admit(arrived_at=self.clock.now - 5.01).__enter__()
        self.assertGreaterEqual(refused.exception.retry_after, 1)
        self.assertEqual(refused.exception.status_code, 503)

    def test_it_refuses_what_the_relays_in_flight_would_make_late(self) -> None:
        finish(self.gate, self.clock, 20, every=0.125)  # 8 relays a second
        # At 8/s, 0.65 x 5 s of work is 26 relays: 25 fit, 10 more would make the last late.
        held = hold(self.gate, self.clock, 25)
        with self.assertRaises(Overloaded) as refused:
            hold(self.gate, self.clock, 10)
        self.assertTrue(1 <= refused.exception.retry_after <= 5)
        self.assertEqual(len(held), 25)

    def test_relays_that_finish_together_count_the_time_they_took(self) -> None:
        # 16 taken on together finish together 2 s later: 8 a second, not 16 in an instant.
        managers = [self.gate.admit(arrived_at=self.clock.now) for _ in range(COLD_IN_FLIGHT)]
        places = [manager.__enter__() for manager in managers]
        self.clock.now += COLD_IN_FLIGHT / 8
        for manager, place in zip(managers, places, strict=True):
            place.succeeded = True
            manager.__exit__(None, None, None)
            self.clock.now += 0.001
        admitted = hold(self.gate, self.clock, 25)  # 0.65 x 5 s at 8/s: 26
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 5)
        self.assertEqual(len(admitted), 25)

    def test_time_spent_waiting_for_a_thread_counts(self) -> None:
        finish(self.gate, self.clock, 20, every=0.1)
        held = hold(self.gate, self.clock, 30)  # 3 s of work ahead
        with self.assertRaises(Overloaded):  # 3 s left, of which 0.65 x 3 may be used
            self.gate.admit(arrived_at=self.clock.now - 2).__enter__()
        with self.gate.admit(arrived_at=self.clock.now):  # 5 s left
            self.assertEqual(len(held), 30)

    def test_after_a_quiet_spell_a_slow_rate_still_allows_the_fixed_number(self) -> None:
        finish(self.gate, self.clock, 20, every=1.0)  # slow: 1 a second
        self.clock.now += 60
        held = hold(self.gate, self.clock, COLD_IN_FLIGHT)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual(len(held), COLD_IN_FLIGHT)

    def test_a_burst_after_a_quiet_spell_is_taken_on_at_the_rate_served_before(self) -> None:
        finish(self.gate, self.clock, 20, every=0.05)  # 20 a second
        self.clock.now += 10  # quiet: the window is empty, the rate learned has faded a little
        held = hold(self.gate, self.clock, 50)  # 2.6 s of work at 18.9/s: fits 0.65 x 5 s
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 20)
        self.assertEqual(len(held), 50)

    def test_over_a_long_quiet_spell_the_rate_learned_fades(self) -> None:
        for half_lives in (10, 2000):  # the second: faded to 0.0 in floating point
            with self.subTest(half_lives=half_lives):
                gate = AdmissionGate(clock=self.clock)
                finish(gate, self.clock, 20, every=0.05)
                self.clock.now += half_lives * settings.RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS
                held = hold(gate, self.clock, COLD_IN_FLIGHT)
                with self.assertRaises(Overloaded) as refused:
                    hold(gate, self.clock, 1)
                self.assertEqual(len(held), COLD_IN_FLIGHT)
                self.assertTrue(1 <= refused.exception.retry_after <= 5)

    @override_settings(RELAY_ADMISSION_INITIAL_RATE=20.0)
    def test_after_a_start_the_configured_rate_stands_in(self) -> None:
        held = hold(AdmissionGate(clock=self.clock), self.clock, 60)  # 3 s at 20/s
        self.assertEqual(len(held), 60)

    def test_relays_failing_in_a_row_make_it_forget_the_rate_learned(self) -> None:
        finish(self.gate, self.clock, 20, every=0.05)
        self.clock.now += 10
        for _ in range(10):  # all time out: the stack is failing, not quiet
            with self.gate.admit(arrived_at=self.clock.now):
                self.clock.now += 0.01
        held = hold(self.gate, self.clock, COLD_IN_FLIGHT)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual(len(held), COLD_IN_FLIGHT)

    def test_a_gap_between_bursts_does_not_read_as_a_slow_stack(self) -> None:
        finish(self.gate, self.clock, 10, every=0.1)  # 10 a second
        self.clock.now += 3  # nothing in flight
        finish(self.gate, self.clock, 10, every=0.1)
        held = hold(self.gate, self.clock, 30)  # at 10/s, 3 s of work: fits 0.65 x 5 s
        self.assertEqual(len(held), 30)

    def test_only_relays_that_succeeded_count_as_capacity(self) -> None:
        for _ in range(40):  # all time out: finished, but nothing done
            with self.gate.admit(arrived_at=self.clock.now):
                self.clock.now += 0.01
        held = hold(self.gate, self.clock, COLD_IN_FLIGHT)
        with self.assertRaises(Overloaded):
            hold(self.gate, self.clock, 1)
        self.assertEqual(len(held), COLD_IN_FLIGHT)


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


@override_settings(RELAY_DEADLINE_SECONDS=5.0)
class RefusalTests(TestCase):
    def test_refused_relays_answer_503_with_retry_after_and_record_nothing(self) -> None:
        _, token = user_with_token("late")
        client = signed_in_client(token)
        late: dict[str, Any] = {ARRIVED_AT: time.time() - 6}
        answer = client.post("/api/relay/", {"message": "hi"}, format="json", **late)
        self.assertEqual(answer.status_code, 503)
        self.assertGreaterEqual(int(answer["Retry-After"]), 1)
        self.assertIn("at capacity", answer.json()["detail"])
        original = client.get("/communication/restKafkaGRPC/", **late)
        self.assertEqual(original.status_code, 503)
        self.assertTrue(original.json().startswith("Error:the relay is at capacity"))
        self.assertFalse(Transaction.objects.exists())

    def test_other_requests_are_never_refused(self) -> None:
        late: dict[str, Any] = {ARRIVED_AT: time.time() - 60}
        self.assertEqual(APIClient().get("/api/transactions/", **late).status_code, 401)

    def test_an_admitted_relay_gets_the_deadline_from_its_arrival(self) -> None:
        _, token = user_with_token("early")
        arrived = time.time() - 1
        with mock.patch("relay_app.api.views.relay_message") as relay:
            relay.side_effect = RuntimeError("stop here")
            with self.assertRaises(RuntimeError):
                arrival: dict[str, Any] = {ARRIVED_AT: arrived}
                signed_in_client(token).post(
                    "/api/relay/", {"message": "hi"}, format="json", **arrival
                )
        self.assertEqual(relay.call_args.kwargs["deadline"], arrived + 5.0)
