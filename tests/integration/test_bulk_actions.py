"""Bulk actions and the audit trail through the real stack: a dry run, then a job the real
worker runs at the shared rate, with each item's outcome; a job cancelled part way; every
operator action in the audit trail with its operator and reason; and the admin's bulk cancel
in headless Chromium (screenshots in ``var/screenshots/``)."""

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.test import TransactionTestCase
from django.utils import timezone

from relay_app.hops import expected_final_message
from relay_app.models import AuditEntry, BulkJob, Transaction
from relay_app.services.audit import audit_record
from relay_app.services.bulk import RATE_KEY

from ..support import service_stopped, user_with_token, web
from .test_browser import BASE, browser_page, screenshot
from .test_retries_and_cancel import ScriptedServicer, grpc_server, wait_until_cancelled


def wait_for(condition: Callable[[], Any], seconds: float = 15.0) -> Any:
    give_up = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > give_up:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.05)
    return value


def settled(transaction_id: str) -> Transaction | None:
    """The transaction once it has ended, else None."""
    transaction = Transaction.objects.get(id=transaction_id)
    return None if transaction.status == Transaction.Status.PENDING else transaction


class BulkActionTests(TransactionTestCase):
    def setUp(self) -> None:
        self.user, self.token = user_with_token("bulk-operator")

    def job(self, url: str) -> dict[str, Any]:
        answer = web(self.token).get(urlsplit(url).path)
        self.assertEqual(answer.status, 200, answer.body)
        body: dict[str, Any] = answer.body
        return body

    def test_a_dry_run_then_a_bulk_cancel_of_transactions_in_flight(self) -> None:
        done = web(self.token).relay("done before")
        self.assertEqual(done.status, 200, done.body)
        servicer = ScriptedServicer(lambda request, context, call: wait_until_cancelled(context))
        with grpc_server(servicer):
            # Three transactions held at the gRPC server (a fourth worker process stays free).
            ids = [
                web(self.token).relay(f"held {n}", respond_async=True).body["transaction_id"]
                for n in range(3)
            ]
            wait_for(lambda: len(servicer.calls) == 3)
            one = web(self.token).cancel(ids[0], reason="sent twice")
            self.assertEqual(one.status, 200, one.body)
            bulk = {"action": "cancel", "reason": "why", "filter": {"status": "pending"}}
            dry = web(self.token).request("POST", "/api/transactions/bulk/", json_body=bulk)
            self.assertEqual(dry.status, 200, dry.body)
            self.assertEqual((dry.body["matched"], dry.body["acting"]), (2, 2))
            everything = {"action": "cancel", "reason": "why"}
            dry = web(self.token).request("POST", "/api/transactions/bulk/", json_body=everything)
            skipped = {s["reason"].split(":")[0]: s["count"] for s in dry.body["skipped"]}
            self.assertEqual(skipped, {"succeeded": 1, "cancelled": 1})
            self.assertEqual(Transaction.objects.filter(status="pending").count(), 2)
            run = web(self.token).request(
                "POST",
                "/api/transactions/bulk/",
                json_body={**bulk, "dry_run": False, "reason": "gRPC server stuck"},
            )
            self.assertEqual(run.status, 202, run.body)
            self.assertEqual(run.headers["Location"], run.body["url"])
            job = wait_for(
                lambda: (body := self.job(run.body["url"]))["status"] == "finished" and body
            )
            # The worker cancelled the calls in progress.
            wait_for(lambda: servicer.cancelled >= set(ids[1:]), 5)
        self.assertEqual(job["total"], 2)
        self.assertEqual(job["progress"]["done"], 2, job)
        self.assertEqual(
            [(item["transaction_id"], item["outcome"]) for item in job["items"]["results"]],
            [(ids[1], "done"), (ids[2], "done")],
        )
        for transaction in Transaction.objects.filter(id__in=ids):
            self.assertEqual(transaction.status, "cancelled")
            self.assertEqual(transaction.cancelled_by, self.user)
        single = AuditEntry.objects.get(action="cancel")
        self.assertEqual((single.actor, single.actor_name), (self.user, "bulk-operator"))
        self.assertEqual((single.reason, single.source), ("sent twice", "api"))
        self.assertEqual(single.transaction_ids, [ids[0]])
        (entry,) = AuditEntry.objects.filter(action="bulk_cancel")
        self.assertEqual((entry.actor_name, entry.reason), ("bulk-operator", "gRPC server stuck"))
        self.assertEqual(entry.details["job"], run.body["job_id"])
        self.assertEqual(sorted(entry.transaction_ids), sorted(ids[1:]))

    def test_a_bulk_rerun_of_transactions_failed_at_the_grpc_hop(self) -> None:
        since = timezone.now().isoformat()
        with service_stopped("grpc"), ThreadPoolExecutor(5) as clients:
            failed = list(
                clients.map(lambda n: web(self.token).relay(f"in the outage {n}"), range(5))
            )
        # Failed, or timed out still retrying the gRPC call: both are rerun from that hop.
        self.assertEqual({answer.status for answer in failed} - {503, 504}, set(), failed)
        ids = [answer.body["transaction_id"] for answer in failed]
        bulk = {
            "action": "rerun",
            "reason": "the gRPC server is back",
            "filter": {"created_after": since},
        }
        dry = web(self.token).request("POST", "/api/transactions/bulk/", json_body=bulk)
        self.assertEqual((dry.status, dry.body["acting"]), (200, 5), dry.body)
        self.assertEqual(sorted(dry.body["sample"]), sorted(ids))
        run = web(self.token).request(
            "POST", "/api/transactions/bulk/", json_body={**bulk, "dry_run": False}
        )
        self.assertEqual(run.status, 202, run.body)
        job = wait_for(lambda: (body := self.job(run.body["url"]))["status"] == "finished" and body)
        self.assertEqual(job["progress"]["done"], 5, job)
        reruns = {
            item["transaction_id"]: item["result_transaction_id"]
            for item in job["items"]["results"]
        }
        self.assertEqual(sorted(reruns), sorted(ids))
        for original_id, rerun_id in reruns.items():
            original = Transaction.objects.get(id=original_id)
            self.assertIn(original.status, ("failed", "timed_out"))  # never changed
            rerun: Transaction = wait_for(partial(settled, rerun_id))
            self.assertEqual(rerun.status, "succeeded", rerun.error)
            self.assertEqual(rerun.final_message, expected_final_message(original.message))
            self.assertEqual(rerun.rerun_of_id, original.id)
        (entry,) = AuditEntry.objects.filter(action="bulk_rerun")
        self.assertEqual((entry.actor_name, entry.reason), ("bulk-operator", bulk["reason"]))
        each = AuditEntry.objects.filter(action="rerun")
        self.assertEqual(each.count(), 5)
        self.assertEqual({e.source for e in each}, {"job"})
        self.assertEqual({e.reason for e in each}, {bulk["reason"]})

    def test_a_job_is_paced_by_the_shared_rate_and_stops_when_cancelled(self) -> None:
        # Transactions recorded pending with no chain behind them: only the job touches them.
        ids = [
            str(
                Transaction.objects.create(
                    message="m", owner=self.user, deadline_at=timezone.now() + timedelta(hours=1)
                ).id
            )
            for _ in range(60)
        ]
        run = web(self.token).request(
            "POST",
            "/api/transactions/bulk/",
            json_body={"action": "cancel", "dry_run": False, "reason": "pacing"},
        )
        self.assertEqual(run.status, 202, run.body)
        # At RELAY_BULK_RATE (3 a second, as many at once first), 60 items take some 20 s:
        # cancel while it runs.
        wait_for(lambda: self.job(run.body["url"])["progress"]["done"] >= 15)
        started = BulkJob.objects.get().started_at
        stop = web(self.token).request("POST", urlsplit(run.body["cancel_url"]).path)
        self.assertEqual(stop.status, 200, stop.body)
        stopped_at = timezone.now()
        time.sleep(1.0)  # a step in progress finishes its item, then sees the job cancelled
        job = self.job(run.body["url"])
        self.assertEqual(job["status"], "cancelled")
        progress = job["progress"]
        self.assertEqual(progress["pending"] + progress["running"], 0, progress)
        self.assertGreater(progress["not_run"], 0, progress)
        self.assertEqual(progress["done"] + progress["not_run"], 60, progress)
        cancelled = Transaction.objects.filter(id__in=ids, status="cancelled").count()
        self.assertEqual(cancelled, progress["done"])
        # Paced: no more than the burst plus the rate's share of the time it ran.
        assert started is not None
        ran = (stopped_at - started).total_seconds()
        count, period = settings.RELAY_BULK_RATE
        most = count + count / period * ran + 1
        self.assertLessEqual(progress["done"], most, (progress, ran, RATE_KEY))
        again = web(self.token).request("POST", urlsplit(run.body["cancel_url"]).path)
        self.assertEqual(again.status, 409, again.body)
        (entry,) = AuditEntry.objects.filter(action="bulk_job_cancel")
        self.assertEqual(entry.actor_name, "bulk-operator")

    def test_another_users_job_is_not_found_and_a_user_cannot_choose_an_owner(self) -> None:
        run = web(self.token).request(
            "POST",
            "/api/transactions/bulk/",
            json_body={"action": "cancel", "dry_run": False, "reason": "nothing to do"},
        )
        self.assertEqual(run.status, 202, run.body)
        _, other = user_with_token("bulk-other")
        path = urlsplit(run.body["url"]).path
        self.assertEqual(web(other).get(path).status, 404)
        self.assertEqual(web(other).request("POST", f"{path}cancel/").status, 404)
        self.assertEqual(web(None).get(path).status, 401)
        owner = web(other).request(
            "POST",
            "/api/transactions/bulk/",
            json_body={"action": "cancel", "reason": "why", "filter": {"owner": "bulk-operator"}},
        )
        self.assertEqual(owner.status, 400, owner.body)
        self.assertIn("filter.owner", owner.body["errors"])
        # A job with nothing to do finishes at once.
        self.assertEqual(wait_for(lambda: self.job(run.body["url"])["status"] == "finished"), True)


class BulkInBrowserTests(TransactionTestCase):
    def test_staff_cancel_in_bulk_from_the_filtered_list_and_read_the_audit_trail(self) -> None:
        password = secrets.token_urlsafe(16)
        staff = User.objects.create_superuser("bulk-admin", password=password)
        owner = User.objects.create_user("bulk-owner")
        for n in range(4):
            Transaction.objects.create(
                message=f"stuck {n}", owner=owner, deadline_at=timezone.now() + timedelta(hours=1)
            )
        Transaction.objects.create(
            message="over", owner=owner, status="succeeded", deadline_at=timezone.now()
        )
        audit_record(actor=staff, action="cancel", reason="a single one, earlier", source="api")

        with browser_page(self) as page:
            page.goto(f"{BASE}/admin/login/?next=/admin/relay_app/transaction/")
            page.fill("#id_username", "bulk-admin")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_selector("#result_list")
            page.check("#action-toggle")  # every row of the (filtered) list
            page.select_option("select[name=action]", "bulk_cancel")
            page.click("button[name=index]")
            page.wait_for_selector("textarea[name=reason]")
            self.assertIn("<strong>4</strong> would be cancelled", page.content())
            self.assertIn("succeeded: it has ended", page.content())
            screenshot(page, "admin-bulk-confirmation")
            page.fill("textarea[name=reason]", "stuck behind the gRPC outage")
            page.click(".submit-row input[type=submit]")
            page.wait_for_url("**/bulkjob/**/change/")
            page.get_by_text("4 of 4 (4 done)").wait_for()  # the page reloads itself
            screenshot(page, "admin-bulk-job")
            page.goto(f"{BASE}/admin/relay_app/auditentry/")
            page.wait_for_selector("#result_list")
            rows = page.locator("#result_list tbody tr")
            self.assertEqual(rows.count(), 2)
            self.assertIn("bulk cancel", rows.first.inner_text())
            self.assertIn("stuck behind the gRPC outage", rows.first.inner_text())
            screenshot(page, "admin-audit-list")
        self.assertEqual(Transaction.objects.filter(status="cancelled").count(), 4)
