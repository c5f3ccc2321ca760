"""Reruns in a real browser: staff rerun a transaction that failed at the gRPC hop from the
admin (the confirmation says what would be done and asks why), then compare the rerun with
its original hop by hop, and pick several failed ones for a rerun that skips what it cannot
rerun; the live page replays the rerun. Screenshots go to ``var/screenshots/``
(``rerun-*``)."""

import secrets
import time

from django.contrib.auth import get_user_model
from django.test import TransactionTestCase

from relay_app.hops import expected_final_message
from relay_app.models import Transaction
from relay_app.services.tokens import api_token_create

from ..support import service_stopped, web
from .test_browser import BASE, browser_page, screenshot

MESSAGE = "rerun me in the admin"


class RerunPagesTests(TransactionTestCase):
    def test_staff_rerun_a_failed_transaction_from_the_admin_then_compare_the_two(self) -> None:
        password = secrets.token_urlsafe(16)
        get_user_model().objects.create_superuser("repairer", password=password)
        token = api_token_create(user=get_user_model().objects.create_user("a-client")).token
        with service_stopped("grpc"):
            failed = web(token).relay(MESSAGE)
        self.assertIn(failed.status, (503, 504), failed.body)
        original_id = failed.body["transaction_id"]
        ok = web(token).relay("it succeeded").body["transaction_id"]

        with browser_page(self) as page:
            page.goto(
                f"{BASE}/admin/login/?next=/admin/relay_app/transaction/{original_id}/change/"
            )
            page.fill("#id_username", "repairer")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_url(f"**/{original_id}/change/")
            page.click("a.relay-rerun-link")
            page.wait_for_url(f"**/{original_id}/rerun/")
            plan = page.locator(".relay-rerun__plan").inner_text()
            self.assertIn("rerun from hop", plan)
            # Hops whose input was recorded: 1-4 (hop 5's input is hop 4's, recorded) or 5.
            options = page.locator("#id_from_hop option").all_inner_texts()
            self.assertIn("4. gRPC client", "".join(options))
            page.select_option("#id_from_hop", "4")
            # A reason is required (the browser asks for it; the form refuses a blank one too).
            self.assertIsNotNone(page.locator("#id_reason").get_attribute("required"))
            page.fill("#id_reason", "the gRPC server is back")
            screenshot(page, "rerun-confirmation")
            page.click("input[type=submit]")
            page.wait_for_url("**/change/")
            self.assertIn("started from hop 4", page.locator(".messagelist").inner_text())
            rerun_url = page.url

        rerun_id = rerun_url.rstrip("/").split("/")[-2]
        rerun = Transaction.objects.get(id=rerun_id)
        give_up = time.monotonic() + 15
        while rerun.status == Transaction.Status.PENDING and time.monotonic() < give_up:
            time.sleep(0.1)
            rerun.refresh_from_db()
        self.assertEqual(rerun.final_message, expected_final_message(MESSAGE))

        with browser_page(self) as page:
            page.goto(f"{BASE}/admin/login/?next=/admin/relay_app/transaction/{rerun_id}/change/")
            page.fill("#id_username", "repairer")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_url(f"**/{rerun_id}/change/")
            self.assertEqual(page.locator(".relay-waterfall__row--inherited").count(), 3)
            screenshot(page, "rerun-change-page")
            page.click("a.relay-compare-link")
            page.wait_for_url(f"**/compare/{original_id}/{rerun_id}/")
            table = page.locator(".relay-compare__table")
            self.assertEqual(table.locator(".relay-compare__cell--inherited").count(), 3)
            self.assertIn("AND GRPC SERVER", table.inner_text().upper())
            self.assertGreater(table.locator("ins.relay-compare__ins").count(), 0)
            screenshot(page, "rerun-compare")

            # The live page replays the rerun: its inherited hops said to be so.
            page.goto(f"{BASE}/live/?transaction={rerun_id}")
            page.locator("#live[data-state='succeeded']").wait_for()
            inherited = page.locator("#hops .live__row[data-state='inherited']")
            self.assertEqual(inherited.count(), 3)
            self.assertIn("inherited, not done again", inherited.first.inner_text())
            self.assertIn("a rerun from hop 4", page.locator("#status").inner_text())
            screenshot(page, "rerun-live")

            # Several at once, by a bulk job: a dry run first; the succeeded one is skipped,
            # saying why.
            page.goto(f"{BASE}/admin/relay_app/transaction/")
            for transaction_id in (original_id, ok):
                page.check(f"input[name=_selected_action][value='{transaction_id}']")
            page.select_option("select[name=action]", "bulk_rerun")
            page.click("button[name=index]")
            content = page.locator("#content-main").inner_text()
            self.assertIn("Of the 2 transaction(s) selected, 1 would be rerun", content)
            self.assertIn("succeeded", content.split("Skipped", 1)[1])
            screenshot(page, "rerun-selected-dry-run")
