"""The admin: staff only, read-only, the list's columns and times, search and filters, the
waterfall."""

import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.test import TestCase, override_settings
from django.utils import timezone

from relay_app.admin import TransactionAdmin
from relay_app.hops import Stage, expected_final_message
from relay_app.models import Hop, Transaction

LIST = "/admin/relay_app/transaction/"


def recorded(
    message: str, *, status: str = "succeeded", age: timedelta = timedelta()
) -> Transaction:
    """A transaction as the relay records it: eight hops 5 ms apart, each 2 ms long."""
    start = timezone.now() - age - timedelta(seconds=1)
    transaction = Transaction.objects.create(
        message=message,
        status=status,
        final_message=expected_final_message(message) if status == "succeeded" else "",
        deadline_at=start + timedelta(seconds=5),
        finished_at=start + timedelta(milliseconds=42),
    )
    Transaction.objects.filter(id=transaction.id).update(created_at=start)
    text = message
    for stage in Stage:
        text = stage.spec.apply(text)
        kafka = stage.slug.startswith("kafka")
        Hop.objects.create(
            transaction=transaction,
            stage=stage,
            text=text,
            started_at=start + timedelta(milliseconds=5 * (stage - 1)),
            finished_at=start + timedelta(milliseconds=5 * (stage - 1) + 2),
            kafka_topic="CommunicationTopic" if kafka else "",
            kafka_partition=1 if kafka else None,
            kafka_offset=100 + stage if kafka else None,
        )
    transaction.refresh_from_db()
    return transaction


class AdminTests(TestCase):
    def setUp(self) -> None:
        self.staff = get_user_model().objects.create_superuser("staff", password="pw-staff-1")
        self.client.force_login(self.staff)

    def assert_shows(self, page: str, text: str, *, shown: bool = True) -> None:
        """Like assertIn, without printing the whole page when it fails."""
        if (text in page) != shown:
            self.fail(f"{text!r} is {'not ' if shown else ''}on the page")

    def test_only_staff_can_see_transactions(self) -> None:
        self.client.logout()
        self.assertRedirects(self.client.get(LIST), f"/admin/login/?next={LIST}")
        get_user_model().objects.create_user("visitor", password="pw-visitor-1")
        # A request for the login lockout (django-axes) to count the attempt against.
        self.client.login(request=HttpRequest(), username="visitor", password="pw-visitor-1")
        self.assertRedirects(self.client.get(LIST), f"/admin/login/?next={LIST}")

    def test_the_list_shows_each_column_newest_first(self) -> None:
        older = recorded("older message", age=timedelta(hours=1))
        newer = recorded("x" * 200)
        page = self.client.get(LIST).content.decode()
        for header in ("Id", "Status", "Owner", "Message", "Duration", "Created at"):
            self.assert_shows(page, f">{header}</")
        self.assert_shows(page, ">Final text</", shown=False)  # on the transaction's page
        self.assertLess(page.index(str(newer.id)), page.index(str(older.id)))
        self.assert_shows(page, "x" * 39 + "…")  # the message, cut to an excerpt
        self.assert_shows(page, "x" * 41, shown=False)
        self.assert_shows(page, "42.0 ms")
        quick = recorded("quick")
        Transaction.objects.filter(id=quick.id).update(finished_at=quick.created_at)
        # Longest first: the older one, though the quick one is newer.
        # The columns as the list counts them: the actions' checkbox first.
        duration = TransactionAdmin.list_display.index("total_duration") + 1
        by_duration = self.client.get(LIST, {"o": f"-{duration}"}).content.decode()
        self.assertLess(by_duration.index(str(older.id)), by_duration.index(str(quick.id)))

    def test_the_list_shows_a_short_id_and_times_to_the_second(self) -> None:
        transaction = recorded("hello")
        page = self.client.get(LIST).content.decode()
        short = str(transaction.id)[:8]
        self.assert_shows(page, f'<span title="{transaction.id}">{short}</span>')
        created = timezone.localtime(transaction.created_at).strftime("%Y-%m-%d %H:%M:%S")
        self.assert_shows(page, f'<td class="field-created_at nowrap">{created}</td>')

    def test_the_transaction_page_shows_times_to_the_second(self) -> None:
        transaction = recorded("hello")
        page = self.client.get(f"{LIST}{transaction.id}/change/").content.decode()
        assert transaction.finished_at is not None
        for field, at in (
            ("created_at", transaction.created_at),
            ("finished_at", transaction.finished_at),
        ):
            with self.subTest(field):
                shown = re.search(
                    rf'field-{field}.*?<div class="readonly">([^<]*)</div>', page, re.DOTALL
                )
                assert shown is not None
                self.assertEqual(shown[1], timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S"))

    def test_the_transaction_page_links_to_its_trace_in_the_viewer(self) -> None:
        transaction = recorded("hello")
        Transaction.objects.filter(id=transaction.id).update(trace_id="ab" * 16)
        with override_settings(RELAY_TRACE_URL="https://traces.example/t/{trace_id}"):
            page = self.client.get(f"{LIST}{transaction.id}/change/").content.decode()
        self.assertIn(f'<a href="https://traces.example/t/{"ab" * 16}"', page)
        with override_settings(RELAY_TRACE_URL=""):
            page = self.client.get(f"{LIST}{transaction.id}/change/").content.decode()
        self.assertNotIn("traces.example", page)
        self.assertIn("ab" * 16, page)

    def test_view_site_opens_the_landing_page(self) -> None:
        page = self.client.get("/admin/").content.decode()
        self.assert_shows(page, '<a href="/">View site</a>')

    def test_search_finds_a_transaction_by_its_message_or_its_id(self) -> None:
        wanted = recorded("find the needle here")
        other = recorded("something else")
        for term in ("needle", str(wanted.id), str(wanted.id)[:8]):
            with self.subTest(term=term):
                page = self.client.get(LIST, {"q": term}).content.decode()
                self.assert_shows(page, str(wanted.id))
                self.assert_shows(page, str(other.id), shown=False)

    def test_filters_by_status_and_by_date_and_pages_through_many(self) -> None:
        failed = recorded("it failed", status="failed")
        ok = recorded("it worked")
        page = self.client.get(LIST, {"status__exact": "failed"}).content.decode()
        self.assert_shows(page, str(failed.id))
        self.assert_shows(page, str(ok.id), shown=False)
        today = timezone.localdate()
        page = self.client.get(
            LIST, {"created_at__year": today.year, "created_at__month": today.month}
        ).content.decode()
        self.assert_shows(page, str(ok.id))
        Transaction.objects.bulk_create(
            Transaction(message=f"m{i}", deadline_at=timezone.now()) for i in range(60)
        )
        page = self.client.get(LIST).content.decode()
        self.assertEqual(len(re.findall(r'<th class="field-short_id"', page)), 50)  # one a row
        self.assert_shows(page, "62 transactions")

    def test_transactions_and_hops_cannot_be_added_changed_or_deleted(self) -> None:
        transaction = recorded("read only")
        self.assertEqual(self.client.get(f"{LIST}add/").status_code, 403)
        change = f"{LIST}{transaction.id}/change/"
        self.assertEqual(self.client.post(change, {"message": "edited"}).status_code, 403)
        self.assertEqual(self.client.post(f"{LIST}{transaction.id}/delete/").status_code, 403)
        page = self.client.get(change).content.decode()
        self.assert_shows(page, 'name="_save"', shown=False)
        self.assert_shows(page, "Delete", shown=False)
        transaction.refresh_from_db()
        self.assertEqual(transaction.message, "read only")
        self.assertEqual(transaction.hops.count(), 8)

    def test_the_transaction_page_links_the_live_page_to_replay_it(self) -> None:
        transaction = recorded("hello world")
        page = self.client.get(f"{LIST}{transaction.id}/change/").content.decode()
        self.assertIn(f'href="/live/?transaction={transaction.id}"', page)

    def test_the_transaction_page_shows_every_hop_in_order_and_the_waterfall(self) -> None:
        transaction = recorded("hello world")
        page = self.client.get(f"{LIST}{transaction.id}/change/").content.decode()
        positions = [page.index(stage.spec.description + "<") for stage in Stage]
        self.assertEqual(positions, sorted(positions))
        self.assert_shows(page, "hello world from rest and Kafka publisher and Kafka consumer")
        self.assert_shows(page, "CommunicationTopic")
        self.assert_shows(page, ">102<")  # hop 2's Kafka offset
        bars = re.findall(
            r'class="relay-waterfall__bar relay-waterfall__bar--(\w+)" style="left: ([\d.]+)%;'
            r' width: ([\d.]+)%"',
            page,
        )
        self.assertEqual(len(bars), 8)
        self.assertEqual([kind for kind, _, _ in bars][:4], ["rest", "kafka", "kafka", "grpc"])
        # Hop n starts 5 (n - 1) ms into a 42 ms transaction and lasts 2 ms.
        for n, (_, left, width) in enumerate(bars, start=1):
            self.assertAlmostEqual(float(left), 5 * (n - 1) / 42 * 100, places=2)
            self.assertAlmostEqual(float(width), 2 / 42 * 100, places=2)
        self.assert_shows(page, "/static/relay_app/transaction.css")
        # Nothing loaded from another host (links out, to Flower or a trace, are no load).
        self.assertNotRegex(page, r'(src=|<link[^>]*href=)"(https?:)?//')

    def test_the_transaction_page_says_where_its_dead_letter_went(self) -> None:
        transaction = recorded("hello world", status="failed")
        page = self.client.get(f"{LIST}{transaction.id}/change/").content.decode()
        self.assert_shows(page, "relay-waterfall__dead-letter", shown=False)
        Transaction.objects.filter(id=transaction.id).update(
            dead_letter_topic="CommunicationTopic.DLT",
            dead_letter_partition=1,
            dead_letter_offset=7,
            dead_letter_at=timezone.now(),
        )
        page = self.client.get(f"{LIST}{transaction.id}/change/").content.decode()
        self.assert_shows(page, "CommunicationTopic.DLT[1]@7 (redrive: rerun from hop 4)")
        self.assert_shows(page, "Dead letter: the record hop 3 read went to")
        self.assert_shows(page, "a rerun from hop 4 redrives it")
