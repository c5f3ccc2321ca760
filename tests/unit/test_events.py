"""Asynchronous relays and event streams, without the services: the ``Prefer`` header, the
``Last-Event-ID`` header, the events' wire format, following a transaction from its record,
and the live page's login."""

from datetime import timedelta
from unittest import mock

from django.contrib.auth.models import User
from django.test import SimpleTestCase, TestCase, override_settings
from django.utils import timezone
from rest_framework.exceptions import Throttled

from relay_app.api.errors import exception_handler
from relay_app.api.events import StreamPlaces, event, event_stream, last_event_id
from relay_app.api.serializers import prefers_async
from relay_app.hops import Stage
from relay_app.models import Hop, Transaction
from relay_app.services.events import Heartbeat, transaction_follow
from relay_app.services.transactions import HopRecord, hops_record


class PreferHeaderTests(TestCase):
    def test_respond_async_is_found_among_other_preferences_in_any_case(self) -> None:
        for value in (
            "respond-async",
            "Respond-Async",
            "wait=10, respond-async",
            "respond-async; foo=bar",
            " handling=lenient ,respond-async ",
        ):
            with self.subTest(value=value):
                self.assertTrue(prefers_async({"Prefer": value}))

    def test_no_header_or_other_preferences_mean_the_blocking_call(self) -> None:
        for headers in ({}, {"Prefer": ""}, {"Prefer": "return=minimal"}, {"Prefer": "async"}):
            with self.subTest(headers=headers):
                self.assertFalse(prefers_async(headers))


class LastEventIdTests(TestCase):
    def test_a_hop_position_is_taken_anything_else_counts_as_none(self) -> None:
        cases = {"3": 3, "8": 8, " 5 ": 5, "0": 0, "9": 0, "-1": 0, "x": 0, "": 0, "²": 0}
        for value, expected in cases.items():
            with self.subTest(value=value):
                self.assertEqual(last_event_id({"Last-Event-ID": value}), expected)
        self.assertEqual(last_event_id({}), 0)


class WireFormatTests(TestCase):
    def test_an_event_has_its_id_name_and_json_on_one_data_line(self) -> None:
        raw = event({"text": "a\nb"}, name="hop", event_id=2).decode()
        self.assertEqual(raw, 'id: 2\nevent: hop\ndata: {"text":"a\\nb"}\n\n')
        self.assertEqual(event({}, name="settled").decode(), "event: settled\ndata: {}\n\n")


@override_settings(RELAY_EVENT_STREAMS_PER_USER=2, RELAY_EVENT_STREAMS_PER_PROCESS=3)
class StreamPlacesTests(SimpleTestCase):
    def test_a_user_and_the_process_hold_at_most_their_share_then_429(self) -> None:
        places = StreamPlaces()
        first = [places.take(1), places.take(1)]
        with self.assertRaises(Throttled) as mine:
            places.take(1)
        self.assertIn("one user", str(mine.exception.detail))
        places.take(2)
        with self.assertRaises(Throttled) as everyone:
            places.take(3)
        self.assertIn("this server", str(everyone.exception.detail))
        # Try again after a stream's longest life: its transaction's deadline and a grace.
        answer = exception_handler(everyone.exception, {})
        assert answer is not None
        self.assertEqual((answer.status_code, answer["Retry-After"]), (429, "6"))
        for give_back in (first[0], first[0]):  # twice, given back once
            give_back()
        places.take(3)
        with self.assertRaises(Throttled):
            places.take(1)

    def test_a_stream_gives_its_place_back_when_closed_even_if_it_never_ran(self) -> None:
        with mock.patch("relay_app.api.events.STREAM_PLACES", StreamPlaces()):
            responses = [
                event_stream("t", user_id=1, after=0, heartbeat_seconds=1) for _ in range(2)
            ]
            with self.assertRaises(Throttled):
                event_stream("t", user_id=1, after=0, heartbeat_seconds=1)
            responses[0].close()
            responses[0].close()  # given back once
            event_stream("t", user_id=1, after=0, heartbeat_seconds=1)
            with self.assertRaises(Throttled):
                event_stream("t", user_id=1, after=0, heartbeat_seconds=1)


class FollowTests(TestCase):
    """Without Redis the stream polls the record: the same events, only later."""

    def transaction(self, *, hops: int, status: str, deadline_in: float = 5.0) -> Transaction:
        now = timezone.now()
        transaction = Transaction.objects.create(
            message="hi", deadline_at=now + timedelta(seconds=deadline_in)
        )
        text = "hi"
        records = []
        for stage in list(Stage)[:hops]:
            text = stage.spec.apply(text)
            records.append(HopRecord(stage, text, now, now + timedelta(milliseconds=stage)))
        hops_record(transaction_id=str(transaction.id), hops=records)
        # Settled after its hops: hops are recorded only while it is pending.
        Transaction.objects.filter(id=transaction.id).update(status=status)
        transaction.refresh_from_db()
        return transaction

    def test_a_settled_transaction_gives_its_hops_then_itself_then_ends(self) -> None:
        transaction = self.transaction(hops=8, status=Transaction.Status.SUCCEEDED)
        events = list(transaction_follow(transaction_id=str(transaction.id), heartbeat_seconds=10))
        self.assertEqual([e.stage for e in events[:-1] if isinstance(e, Hop)], list(range(1, 9)))
        final = events[-1]
        assert isinstance(final, Transaction)
        self.assertEqual(final.status, Transaction.Status.SUCCEEDED)

    def test_hops_up_to_the_last_event_id_are_skipped(self) -> None:
        transaction = self.transaction(hops=8, status=Transaction.Status.SUCCEEDED)
        events = transaction_follow(
            transaction_id=str(transaction.id), after=6, heartbeat_seconds=10
        )
        self.assertEqual([e.stage for e in events if isinstance(e, Hop)], [7, 8])

    def test_a_pending_transaction_past_its_deadline_is_timed_out_and_the_stream_ends(
        self,
    ) -> None:
        transaction = self.transaction(hops=3, status=Transaction.Status.PENDING, deadline_in=-5)
        events = list(transaction_follow(transaction_id=str(transaction.id), heartbeat_seconds=10))
        self.assertEqual(len(events), 4)
        final = events[-1]
        assert isinstance(final, Transaction)
        self.assertEqual(final.status, Transaction.Status.TIMED_OUT)
        self.assertEqual(final.failed_stage, Stage.GRPC_CLIENT)

    def test_a_quiet_stream_sends_heartbeats_until_the_deadline(self) -> None:
        transaction = self.transaction(hops=1, status=Transaction.Status.PENDING, deadline_in=0)
        events = list(transaction_follow(transaction_id=str(transaction.id), heartbeat_seconds=0.2))
        # One second of grace after the deadline: a few heartbeats, then the timed-out end.
        self.assertGreaterEqual(sum(isinstance(e, Heartbeat) for e in events), 3)
        self.assertEqual(events[-1].status, Transaction.Status.TIMED_OUT)  # type: ignore[union-attr]


class LivePageTests(TestCase):
    def test_signing_in_comes_first(self) -> None:
        response = self.client.get("/live/")
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response["Location"], "/api-auth/login/?next=/live/")

    def test_the_page_has_eight_rows_and_only_this_servers_assets(self) -> None:
        self.client.force_login(User.objects.create_user("watcher"))
        response = self.client.get("/live/")
        self.assertEqual(response.status_code, 200)
        page = response.content.decode()
        self.assertEqual(page.count('class="live__row"'), 8)
        self.assertIn('src="/static/relay_app/live.js"', page)
        self.assertIn('href="/static/relay_app/live.css"', page)
        self.assertNotIn("http://", page.replace("http://testserver", ""))
        self.assertNotIn("https://", page)
        self.assertIn("csrftoken", response.cookies)
