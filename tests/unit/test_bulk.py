"""Bulk actions without the stack: the dry run's counts, sample and reasons, the input refused
with nothing changed, a job's steps and outcomes, pacing, cancellation, who sees what, and
the admin's pages of jobs, whose queries do not grow with the jobs or their items. The real
worker, Redis and rate: tests/integration/test_bulk_actions.py."""

import re
import uuid
from datetime import timedelta
from typing import Any
from unittest import mock

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import TestCase, tag
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relay_app.admin import ITEMS_SHOWN
from relay_app.models import AuditEntry, BulkJob, BulkJobItem, Transaction
from relay_app.services.bulk import bulk_job_step
from relay_app.services.tokens import api_token_create

from ..support import signed_in_client

BULK = "/api/transactions/bulk/"


def recorded(owner: User | None, status: str, *, error: str = "", stage: int | None = None) -> str:
    transaction = Transaction.objects.create(
        message="m",
        owner=owner,
        status=status,
        error=error,
        failed_stage=stage,
        deadline_at=timezone.now() + timedelta(seconds=30),
    )
    return str(transaction.id)


class Unpaced:
    """The shared rate limiter, always letting the next item through."""

    def hit(self, key: str, rate: tuple[int, float]) -> float:
        return 0.0


class BulkTests(TestCase):
    def setUp(self) -> None:
        self.alice = User.objects.create_user("alice")
        self.bob = User.objects.create_user("bob")
        self.staff = User.objects.create_user("boss", is_staff=True)
        self.client_of = {
            user: signed_in_client(api_token_create(user=user).token)
            for user in (self.alice, self.bob, self.staff)
        }
        self.pending = [recorded(self.alice, "pending") for _ in range(3)]
        self.done = recorded(self.alice, "succeeded")
        self.failed = recorded(self.alice, "failed", error="gRPC UNAVAILABLE", stage=5)
        self.bobs = recorded(self.bob, "pending")
        queued = mock.patch("relay_app.services.bulk._queue_first_step")
        self.queued = queued.start()
        self.addCleanup(queued.stop)
        limiter = mock.patch("relay_app.services.bulk.get_rate_limiter", return_value=Unpaced())
        limiter.start()
        self.addCleanup(limiter.stop)
        wake = mock.patch("relay_app.services.cancel.chain_wake")
        wake.start()
        self.addCleanup(wake.stop)

    def post(self, user: User, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = self.client_of[user].post(BULK, body, format="json")
        return answer.status_code, answer.json()

    def test_a_dry_run_says_what_to_how_many_and_why_the_rest_are_skipped(self) -> None:
        code, body = self.post(self.alice, {"action": "cancel", "reason": "why"})
        self.assertEqual(code, 200, body)
        self.assertEqual((body["dry_run"], body["matched"], body["acting"]), (True, 5, 3))
        self.assertEqual(sorted(body["sample"]), sorted(self.pending))  # not bob's
        reasons = {skipped["reason"]: skipped for skipped in body["skipped"]}
        self.assertEqual(len(reasons), 2)
        self.assertIn("only a pending transaction can be cancelled", next(iter(reasons)))
        self.assertEqual(
            sorted(s["sample"][0] for s in reasons.values()), sorted([self.done, self.failed])
        )
        self.assertFalse(BulkJob.objects.exists())
        self.assertEqual(Transaction.objects.filter(status="pending").count(), 4)

    def test_a_rerun_dry_run_skips_the_pending_and_the_succeeded(self) -> None:
        cancelled = recorded(self.alice, "cancelled")
        code, body = self.post(self.alice, {"action": "rerun", "reason": "why"})
        self.assertEqual(code, 200, body)
        self.assertEqual((body["matched"], body["acting"]), (6, 2))
        self.assertEqual(sorted(body["sample"]), sorted([self.failed, cancelled]))
        skipped = {s["reason"].split(":")[0]: s["count"] for s in body["skipped"]}
        self.assertEqual(skipped, {"pending": 3, "succeeded": 1})

    def test_the_filter_narrows_by_status_hop_error_and_time(self) -> None:
        for criteria, expected in [
            ({"status": "failed"}, 1),
            ({"failed_hop": "grpc_server"}, 1),
            ({"failed_hop": "grpc_client"}, 0),
            ({"error_contains": "unavailable"}, 1),
            ({"created_after": (timezone.now() + timedelta(hours=1)).isoformat()}, 0),
            ({"created_before": (timezone.now() + timedelta(hours=1)).isoformat()}, 5),
        ]:
            with self.subTest(criteria=criteria):
                code, body = self.post(
                    self.alice, {"action": "cancel", "reason": "why", "filter": criteria}
                )
                self.assertEqual((code, body["matched"]), (200, expected), body)

    def test_staff_may_filter_by_owner_and_see_everyone_a_user_may_not(self) -> None:
        code, body = self.post(
            self.staff, {"action": "cancel", "reason": "why", "filter": {"owner": "bob"}}
        )
        self.assertEqual((code, body["matched"], body["sample"]), (200, 1, [self.bobs]))
        code, body = self.post(
            self.staff, {"action": "cancel", "reason": "why", "filter": {"owner": 0}}
        )
        self.assertEqual(code, 400)
        self.assertIn("Must be a string", body["errors"]["filter.owner"][0])
        code, body = self.post(
            self.alice, {"action": "cancel", "reason": "why", "filter": {"owner": "bob"}}
        )
        self.assertEqual(code, 400)
        self.assertIn("Only staff", body["errors"]["filter.owner"][0])

    def test_bad_input_is_refused_by_name_and_changes_nothing(self) -> None:
        refused: list[tuple[dict[str, Any], str]] = [
            ({"action": "delete", "reason": "why"}, "action"),
            (
                {"action": "cancel", "reason": "why", "filter": {"stauts": "failed"}},
                "filter.stauts",
            ),
            ({"action": "cancel", "reason": "why", "filter": {"status": "lost"}}, "filter.status"),
            ({"action": "cancel", "reason": "why", "filter": "failed"}, "filter.non_field_errors"),
            ({"action": "cancel"}, "reason"),
            ({"action": "cancel", "dry_run": False, "reason": "  "}, "reason"),
            ({"action": "cancel", "reason": "x" * 1001}, "reason"),
            # Over the limit as sent, though not once its whitespace (\x1c too) is trimmed.
            ({"action": "cancel", "reason": "x" * 999 + " \x1c"}, "reason"),
            ({"action": "cancel", "reason": "why", "extra": 1}, "extra"),
            ({"action": "cancel", "dry_run": "false", "reason": "r"}, "dry_run"),
            (
                {"action": "cancel", "reason": "why", "filter": {"error_contains": 5}},
                "filter.error_contains",
            ),
            ({"action": "cancel", "reason": ["why"]}, "reason"),
        ]
        for body, field in refused:
            with self.subTest(body=body):
                code, answer = self.post(self.alice, body)
                self.assertEqual(code, 400, answer)
                self.assertIn(field, answer["errors"])
        self.assertFalse(BulkJob.objects.exists())
        self.assertFalse(AuditEntry.objects.filter(action__startswith="bulk").exists())

    def test_a_real_run_is_a_job_whose_steps_act_on_each_item_and_record_why(self) -> None:
        code, body = self.post(
            self.alice, {"action": "cancel", "dry_run": False, "reason": "stuck"}
        )
        self.assertEqual(code, 202, body)
        job = BulkJob.objects.get()
        self.assertEqual(body["url"], f"http://testserver/api/bulk-jobs/{job.id}/")
        self.assertEqual((job.total, job.status, job.created_by), (3, "queued", self.alice))
        self.queued.assert_called_once_with(str(job.id))
        entry = AuditEntry.objects.get(action="bulk_cancel")
        self.assertEqual((entry.actor, entry.reason, entry.source), (self.alice, "stuck", "api"))
        self.assertEqual(entry.transaction_count, 3)
        self.assertEqual(entry.details["job"], str(job.id))
        # One ends on its own before the job reaches it: skipped, with why.
        Transaction.objects.filter(id=self.pending[1]).update(status="succeeded")
        self.assertIsNone(bulk_job_step(job_id=str(job.id)))
        job.refresh_from_db()
        self.assertEqual(job.status, "finished")
        items = list(job.items.order_by("position"))
        self.assertEqual([item.outcome for item in items], ["done", "skipped", "done"])
        self.assertIn("succeeded: it has ended", items[1].detail)
        statuses = Transaction.objects.filter(id__in=self.pending).values_list("status", flat=True)
        self.assertEqual(sorted(statuses), ["cancelled", "cancelled", "succeeded"])
        # Not one audit entry per item: the job's names them.
        self.assertFalse(AuditEntry.objects.filter(action="cancel").exists())
        page = self.client_of[self.alice].get(body["url"]).json()
        self.assertEqual(page["progress"]["done"], 2)
        self.assertEqual(page["progress"]["skipped"], 1)
        self.assertEqual(
            [i["outcome"] for i in page["items"]["results"]], ["done", "skipped", "done"]
        )
        skipped = self.client_of[self.alice].get(body["url"], {"outcome": "skipped"}).json()
        self.assertEqual(skipped["items"]["count"], 1)

    def test_a_step_waits_for_the_shared_rate_and_acts_on_nothing_meanwhile(self) -> None:
        self.post(self.alice, {"action": "cancel", "dry_run": False, "reason": "r"})
        job = BulkJob.objects.get()
        paced = mock.Mock(hit=mock.Mock(return_value=0.25))
        with mock.patch("relay_app.services.bulk.get_rate_limiter", return_value=paced):
            self.assertEqual(bulk_job_step(job_id=str(job.id)), 0.25)
        self.assertEqual(job.items.filter(outcome="pending").count(), 3)
        paced.hit.assert_called_once_with("bulk-items", settings.RELAY_BULK_RATE)

    def test_a_job_cancelled_stops_before_its_next_item_and_says_so_once(self) -> None:
        _code, body = self.post(self.alice, {"action": "cancel", "dry_run": False, "reason": "r"})
        job = BulkJob.objects.get()
        BulkJobItem.objects.filter(job=job, position=1).update(outcome="done")
        cancel = self.client_of[self.alice].post(body["cancel_url"])
        self.assertEqual(cancel.status_code, 200, cancel.content)
        self.assertEqual(cancel.json()["status"], "cancelled")
        self.assertEqual(cancel.json()["progress"]["not_run"], 2)
        self.assertIsNone(bulk_job_step(job_id=str(job.id)))
        self.assertEqual(Transaction.objects.filter(status="pending").count(), 4)  # none cancelled
        again = self.client_of[self.alice].post(body["cancel_url"])
        self.assertEqual(again.status_code, 409)
        entry = AuditEntry.objects.get(action="bulk_job_cancel")
        self.assertEqual((entry.actor, entry.details["job"]), (self.alice, str(job.id)))

    def test_another_users_job_is_not_found_staff_see_it(self) -> None:
        _, body = self.post(self.alice, {"action": "cancel", "dry_run": False, "reason": "r"})
        url, cancel_url = str(body["url"]), str(body["cancel_url"])
        self.assertEqual(self.client_of[self.bob].get(url).status_code, 404)
        self.assertEqual(self.client_of[self.bob].post(cancel_url).status_code, 404)
        self.assertEqual(self.client_of[self.staff].get(url).status_code, 200)
        self.assertEqual(BulkJob.objects.get().status, "queued")


class BulkAdminTests(TestCase):
    def setUp(self) -> None:
        self.staff = User.objects.create_superuser("boss", password="pw-boss-1")
        self.client.force_login(self.staff)
        self.pending = [recorded(None, "pending") for _ in range(2)]
        self.done = recorded(None, "succeeded")
        for target, value in [
            ("relay_app.services.bulk._queue_first_step", None),
            ("relay_app.services.bulk.get_rate_limiter", Unpaced()),
            ("relay_app.services.cancel.chain_wake", None),
        ]:
            patcher = mock.patch(target, return_value=value)
            patcher.start()
            self.addCleanup(patcher.stop)

    def test_the_bulk_cancel_shows_its_dry_run_and_needs_a_reason(self) -> None:
        chosen = {"action": "bulk_cancel", "_selected_action": [*self.pending, self.done]}
        page = self.client.post("/admin/relay_app/transaction/", chosen)
        self.assertEqual(page.status_code, 200)
        text = page.content.decode()
        self.assertIn("Of the <strong>3</strong> transaction(s)", text)
        self.assertIn("<strong>2</strong> would be cancelled", text)
        self.assertIn("succeeded: it has ended", text)
        self.assertIn('name="reason"', text)
        self.assertFalse(BulkJob.objects.exists())
        # Without a reason: the page again, with the error, and still no job.
        again = self.client.post("/admin/relay_app/transaction/", {**chosen, "confirm": "yes"})
        self.assertEqual(again.status_code, 200)
        self.assertIn("This field is required", again.content.decode())
        self.assertFalse(BulkJob.objects.exists())
        started = self.client.post(
            "/admin/relay_app/transaction/", {**chosen, "confirm": "yes", "reason": "stuck"}
        )
        job = BulkJob.objects.get()
        self.assertRedirects(started, f"/admin/relay_app/bulkjob/{job.pk}/change/")
        self.assertEqual((job.total, job.source, job.reason), (2, "admin", "stuck"))
        entry = AuditEntry.objects.get(action="bulk_cancel")
        self.assertEqual((entry.actor, entry.reason, entry.source), (self.staff, "stuck", "admin"))
        running = self.client.get(f"/admin/relay_app/bulkjob/{job.pk}/change/").content.decode()
        self.assertIn("0 of 2 (2 pending)", running)
        self.assertIn('http-equiv="refresh"', running)
        bulk_job_step(job_id=str(job.id))
        finished = self.client.get(f"/admin/relay_app/bulkjob/{job.pk}/change/").content.decode()
        self.assertIn("2 of 2 (2 done)", finished)
        self.assertNotIn('http-equiv="refresh"', finished)

    def test_a_running_job_is_cancelled_from_its_list(self) -> None:
        self.client.post(
            "/admin/relay_app/transaction/",
            {
                "action": "bulk_cancel",
                "_selected_action": self.pending,
                "confirm": "yes",
                "reason": "r",
            },
        )
        job = BulkJob.objects.get()
        self.client.post(
            "/admin/relay_app/bulkjob/", {"action": "cancel_jobs", "_selected_action": [job.pk]}
        )
        job.refresh_from_db()
        self.assertEqual((job.status, job.cancelled_by), ("cancelled", self.staff))
        self.assertEqual(AuditEntry.objects.get(action="bulk_job_cancel").source, "admin")


def job_of(user: User, outcomes: list[str]) -> BulkJob:
    """A job of ``user``'s whose items (one transaction id each) have ``outcomes``."""
    job = BulkJob.objects.create(
        action="cancel", created_by=user, source="admin", reason="r", total=len(outcomes)
    )
    BulkJobItem.objects.bulk_create(
        BulkJobItem(job=job, position=position, transaction_id=uuid.uuid4(), outcome=outcome)
        for position, outcome in enumerate(outcomes, start=1)
    )
    return job


def positions_shown(page: str) -> list[int]:
    """The positions of the items a job's admin page lists, in its order."""
    return [int(n) for n in re.findall(r'class="field-position">\s*<p>(\d+)</p>', page)]


@tag("postgres")
class BulkAdminQueryTests(TestCase):
    """The admin's list of jobs and a job's page: a fixed number of queries, however many
    jobs or items there are."""

    def setUp(self) -> None:
        self.staff = User.objects.create_superuser("boss", password="pw-boss-1")
        self.client.force_login(self.staff)

    def queries(self, url: str) -> tuple[int, str]:
        """How many queries the page at ``url`` takes, and the page. Asked for twice: what
        the first request caches for the process (content types) is not the page's."""
        self.client.get(url)
        with CaptureQueriesContext(connection) as captured:
            page = self.client.get(url)
        self.assertEqual(page.status_code, 200)
        return len(captured), page.content.decode()

    def test_the_job_list_counts_every_rows_progress_in_one_query(self) -> None:
        first = job_of(self.staff, ["done", "pending", "pending", "skipped"])
        job_of(self.staff, [])
        few, text = self.queries("/admin/relay_app/bulkjob/")
        self.assertIn("2 of 4 (2 pending, 1 done, 1 skipped)", text)
        self.assertIn("0 of 0 (no items)", text)
        for n in range(10):
            job_of(self.staff, ["running", "failed", "not_run", "done"][: n % 4 + 1])
        many, text = self.queries("/admin/relay_app/bulkjob/")
        self.assertEqual(text.count("<tr"), 1 + 12)  # the heading, then a row a job
        self.assertIn("3 of 4 (1 running, 1 done, 1 failed, 1 not_run)", text)
        self.assertEqual(many, few)
        # A job's own page reads its progress with it, as the list does.
        self.assertIn(
            "2 of 4 (2 pending, 1 done, 1 skipped)",
            self.client.get(f"/admin/relay_app/bulkjob/{first.pk}/change/").content.decode(),
        )

    def test_a_jobs_page_shows_its_first_items_and_links_to_all(self) -> None:
        small = job_of(self.staff, ["done"] * 3)
        large = job_of(self.staff, ["done"] * (ITEMS_SHOWN + 30))
        few, text = self.queries(f"/admin/relay_app/bulkjob/{small.pk}/change/")
        self.assertEqual(positions_shown(text), [1, 2, 3])
        self.assertIn(
            f'all 3 below; also <a href="/api/bulk-jobs/{small.pk}/">in the API</a>', text
        )
        many, text = self.queries(f"/admin/relay_app/bulkjob/{large.pk}/change/")
        self.assertEqual(positions_shown(text), list(range(1, ITEMS_SHOWN + 1)))
        self.assertIn(
            f'the first {ITEMS_SHOWN} of {ITEMS_SHOWN + 30} below; <a href="/api/bulk-jobs/'
            f'{large.pk}/">all {ITEMS_SHOWN + 30}, a page at a time, in the API</a>',
            text,
        )
        self.assertEqual(many, few)
        # The link leads staff signed in here to every item, a page at a time.
        api = self.client.get(f"/api/bulk-jobs/{large.pk}/?page=3", HTTP_ACCEPT="application/json")
        self.assertEqual(api.status_code, 200)
        self.assertEqual(api.json()["items"]["count"], ITEMS_SHOWN + 30)
        self.assertEqual(api.json()["items"]["results"][0]["position"], 101)
