"""A person in a real browser: the landing page, the admin's list, search, transaction page
and waterfall, the browsable API's message form, the API docs and schema, the live page and
the viewers (a trace in Zipkin, the tasks in Flower), against the stack the runner started.

Headless Chromium from the system's packages (``ops/bootstrap.sh --tests`` installs it),
driven by Playwright. Screenshots go to ``var/screenshots/``.
"""

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import TransactionTestCase
from playwright.sync_api import Locator, Page, sync_playwright

from ops.traces import spans_of
from relay_app.hops import Stage, expected_final_message
from relay_app.models import Transaction
from relay_app.services.tokens import api_token_create

from ..support import service_stopped, web

CHROMIUM = os.environ.get("RELAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Chromium offline: no background connections, which this closed network refuses anyway.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
# How far the page, and the admin's list of results, could scroll sideways: {element:
# [scrollWidth, clientWidth]}.
NO_SIDEWAYS_SCROLL = """() => Object.fromEntries(
  [["page", document.documentElement], ["list", document.querySelector("#changelist .results")]]
    .map(([name, element]) => [name, [element.scrollWidth, element.clientWidth]]))"""
TO_THE_SECOND = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"
BASE = f"http://{settings.HTTP_ADDRESS}"
TIMEOUT_MS = 15_000


@contextmanager
def browser_page(
    test: TransactionTestCase, *, also: frozenset[str] = frozenset()
) -> Iterator[Page]:
    """A page in a fresh headless Chromium (its own empty profile); checks on the way out
    that it asked this server only (and the viewers in ``also``), for no external asset.

    Playwright runs an event loop while it is open, and Django refuses the ORM inside one:
    tests touch the database before and after this block, never within it.
    """
    if not Path(CHROMIUM).exists():
        test.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs it (ops/bootstrap.sh --tests),"
            " or point RELAY_CHROMIUM at one"
        )
    hosts: set[str] = set()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
            yield page
        finally:
            browser.close()
    test.assertLessEqual(hosts, {settings.HTTP_ADDRESS, *also})
    test.assertIn(settings.HTTP_ADDRESS, hosts)


def person(username: str) -> str:
    """A user who signs in with a password in a browser (not staff); returns the password."""
    password = secrets.token_urlsafe(16)
    get_user_model().objects.create_user(username, password=password)
    return password


def log_in(page: Page, username: str, password: str, *, then: str) -> None:
    """Sign in on the browsable API's login page, which then opens ``then``."""
    page.goto(f"{BASE}/api-auth/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#submit-id-submit")
    page.wait_for_url(f"{BASE}{then}")


def screenshot(what: Page | Locator, name: str) -> None:
    """The whole page, or one part of it, as ``var/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = str(SCREENSHOTS / f"{name}.png")
    if isinstance(what, Page):
        what.screenshot(path=path, full_page=True)
    else:
        what.screenshot(path=path)


class ViewersInBrowserTests(TransactionTestCase):
    def test_staff_open_a_relays_trace_in_zipkin_and_its_tasks_in_flower_from_the_admin(
        self,
    ) -> None:
        password = secrets.token_urlsafe(16)
        get_user_model().objects.create_superuser("viewer", password=password)
        token = api_token_create(user=get_user_model().objects.get(username="viewer")).token
        # Sampled: the test stack traces what a client asks it to (profiles.TEST).
        traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
        answer = web(token).relay("seen in the viewers", headers={"traceparent": traceparent})
        self.assertEqual(answer.status, 200, answer.body)
        transaction_id, trace_url = answer.body["transaction_id"], answer.body["trace_url"]
        zipkin, flower = settings.ZIPKIN_ADDRESS, settings.FLOWER_ADDRESS
        give_up = time.monotonic() + 15
        while len(spans_of(answer.body["trace_id"], zipkin=zipkin)) < 20:
            self.assertLess(time.monotonic(), give_up, "Zipkin did not get the trace")
            time.sleep(0.3)

        with browser_page(self, also=frozenset({zipkin, flower})) as page:
            page.goto(
                f"{BASE}/admin/login/?next=/admin/relay_app/transaction/{transaction_id}/change/"
            )
            page.fill("#id_username", "viewer")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_url(f"**/{transaction_id}/change/")
            trace_link = page.locator(".field-trace a")
            self.assertEqual(trace_link.get_attribute("href"), trace_url)
            tasks = page.locator("td.field-task a")
            self.assertEqual(tasks.count(), 6)  # hops 2-7, each its task's page in Flower
            screenshot(page, "admin-viewer-links")

            page.goto(trace_url)
            # The very trace, across the web, the worker and the gRPC server, hop by hop.
            page.get_by_text(answer.body["trace_id"]).first.wait_for()
            page.get_by_text("relay-web: hop 1 rest_request").first.wait_for()
            page.get_by_text("relay-worker: hop 2 kafka_publish_request").first.wait_for()
            self.assertIn("3", page.locator("text=Services").locator("..").inner_text())
            screenshot(page, "zipkin-trace")

            page.goto(f"http://{flower}/tasks")
            page.get_by_text("relay.consume_reply").first.wait_for()
            screenshot(page, "flower-tasks")
            page.goto(f"http://{flower}/task/{transaction_id}")
            page.get_by_text("SUCCESS").first.wait_for()


class AdminInBrowserTests(TransactionTestCase):
    def test_staff_find_a_transaction_by_its_message_and_see_its_hops_and_waterfall(self) -> None:
        password = secrets.token_urlsafe(16)
        get_user_model().objects.create_superuser("inspector", password=password)
        # Relayed by a client of the API; staff see every user's transactions.
        client = get_user_model().objects.create_user("api-client")
        token = api_token_create(user=client).token
        message = f"find me in the admin {secrets.token_hex(4)}"
        answer = web(token).relay(message)
        self.assertEqual(answer.status, 200, answer.body)
        web(token).relay("another message, not the one searched for")
        # Long, and with words too long to wrap: the list must still fit the screen.
        web(token).relay(" ".join(["supercalifragilistic" * 3] * 10))
        transaction_id = answer.body["transaction_id"]

        with browser_page(self) as page:
            page.goto(f"{BASE}/admin/")
            self.assertIn("/admin/login/", page.url)  # staff only
            page.fill("#id_username", "inspector")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.get_by_role("link", name="Transactions", exact=True).first.click()
            page.wait_for_selector("#result_list")
            # Readable at 1280 px: nothing to scroll sideways, the page or the list.
            screenshot(page, "admin-list")
            widths = page.evaluate(NO_SIDEWAYS_SCROLL)
            for element, (scroll, client) in widths.items():
                self.assertLessEqual(scroll, client, f"{element} scrolls sideways")
            self.assertRegex(
                page.locator("#result_list td.field-created_at").first.inner_text(), TO_THE_SECOND
            )

            page.fill("#searchbar", message)
            page.press("#searchbar", "Enter")
            page.wait_for_url(lambda url: "q=" in url)
            rows = page.locator("#result_list tbody tr")
            self.assertEqual(rows.count(), 1)
            row = rows.first.inner_text()
            self.assertIn(transaction_id[:8], row)  # the id, short; all of it on hover
            self.assertEqual(
                rows.first.locator(f"span[title='{transaction_id}']").inner_text(),
                transaction_id[:8],
            )
            self.assertIn(message, row)
            self.assertIn("Succeeded", row)
            self.assertRegex(row, r"\t\d+(\.\d+)? m?s\t")  # the total duration
            screenshot(page, "admin-search")

            page.click(f"#result_list a[href*='{transaction_id}']")
            page.wait_for_selector(".relay-waterfall")
            for field in ("created_at", "finished_at"):
                shown = page.locator(f".field-{field} .readonly").inner_text()
                self.assertRegex(shown, TO_THE_SECOND)

            hop_rows = page.locator("#hops-group tbody tr.has_original")
            self.assertEqual(hop_rows.count(), len(Stage))
            text = message
            for index, stage in enumerate(Stage):
                text = stage.spec.apply(text)
                cells = hop_rows.nth(index)
                self.assertEqual(cells.locator("td.field-position").inner_text(), str(stage.value))
                self.assertEqual(
                    cells.locator("td.field-stage_label").inner_text(), stage.spec.description
                )
                self.assertEqual(cells.locator("td.field-text").inner_text(), text)
                self.assertRegex(cells.locator("td.field-hop_duration").inner_text(), r" ms$")
                topic = cells.locator("td.field-kafka_topic").inner_text()
                if stage.slug.startswith("kafka"):
                    self.assertIn(topic, {settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC})
                    self.assertRegex(cells.locator("td.field-kafka_offset").inner_text(), r"^\d+$")
                else:
                    self.assertEqual(topic, "-")

            waterfall = page.locator(".relay-waterfall")
            self.assertIn("8 hops on a common time axis", waterfall.locator("h2").inner_text())
            bars = waterfall.locator(".relay-waterfall__rows .relay-waterfall__row")
            self.assertEqual(
                [bars.nth(i).get_attribute("data-stage") for i in range(bars.count())],
                [stage.slug for stage in Stage],
            )
            # Drawn on one axis: each bar inside its track, none starting before the one
            # before it started (the hops run one after another).
            lefts = []
            for i in range(bars.count()):
                track = bars.nth(i).locator(".relay-waterfall__track").bounding_box()
                bar = bars.nth(i).locator(".relay-waterfall__bar").bounding_box()
                assert track is not None and bar is not None
                self.assertGreater(bar["width"], 0)
                self.assertGreaterEqual(bar["x"], track["x"] - 0.5)
                self.assertLessEqual(bar["x"] + bar["width"], track["x"] + track["width"] + 0.5)
                lefts.append(bar["x"])
            self.assertEqual(lefts, sorted(lefts))
            self.assertGreater(lefts[-1], lefts[0])
            screenshot(page, "admin-transaction")


class BrowsableApiInBrowserTests(TransactionTestCase):
    def test_a_person_types_a_message_in_the_form_and_sees_the_uppercase_result(self) -> None:
        message = "hello from a browser"
        password = person("browser-user")
        with browser_page(self) as page:
            page.goto(f"{BASE}/api/transactions/")
            self.assertIn("Authentication credentials were not provided", page.content())
            log_in(page, "browser-user", password, then="/api/")
            page.click(f"a[href='{BASE}/api/relay/']")  # the API root links the relay
            page.wait_for_url("**/api/relay/")
            # The page is the description and the form: no 405 for opening it.
            self.assertTrue(page.locator(".response-info").is_hidden())
            self.assertNotIn("405", page.inner_text("body"))
            description = page.locator(".content-main .pull-left")
            self.assertEqual(
                description.locator("code").first.inner_text(), '{"message": "hello world"}'
            )
            screenshot(page, "browsable-api-relay-form")
            page.fill("textarea[name=message]", message)
            page.click("#post-object-form button:has-text('POST')")
            page.wait_for_selector("text=HTTP 200 OK")
            response = page.locator(".response-info").inner_text()
            screenshot(page, "browsable-api-relay")
        self.assertIn(f'"message": "{expected_final_message(message)}"', response)
        self.assertIn('"status": "succeeded"', response)
        self.assertIn('"owner": "browser-user"', response)
        transaction = Transaction.objects.get(message=message)
        self.assertEqual(transaction.status, Transaction.Status.SUCCEEDED)
        self.assertEqual(transaction.owner, get_user_model().objects.get(username="browser-user"))

    def test_the_api_docs_relay_a_message_with_try_it_out(self) -> None:
        password = person("docs-reader")
        with browser_page(self) as page:
            log_in(page, "docs-reader", password, then="/api/docs/")
            operations = page.locator(".opblock")
            operations.first.wait_for()
            # Every operation of the schema: relay, seed, transactions (6, with the event
            # stream, cancel, rerun and compare), bulk actions (3: start, a job, its cancel),
            # health, readiness, metrics, the API root.
            self.assertEqual(operations.count(), 16)
            relay = page.locator(".opblock-post:has-text('/api/relay/')")
            relay.locator(".opblock-summary").click()
            relay.locator("button:has-text('Try it out')").click()
            relay.locator("button:has-text('Execute')").click()
            status = relay.locator(".live-responses-table tr.response .response-col_status").first
            status.wait_for()
            self.assertTrue(status.inner_text().strip().startswith("200"), status.inner_text())
            body = relay.locator(
                ".live-responses-table tr.response .response-col_description pre"
            ).first
            self.assertIn(expected_final_message("hello world"), body.inner_text())
            screenshot(relay, "api-docs-relay")
            # The schema itself, shown on a page rather than downloaded.
            page.goto(f"{BASE}/api/schema/")
            self.assertIn("openapi: 3.0.3", page.inner_text(".response-info"))
            screenshot(page, "api-schema")


class LandingPageInBrowserTests(TransactionTestCase):
    def test_a_visitor_finds_each_part_and_learns_who_can_log_in(self) -> None:
        with browser_page(self) as page:
            page.goto(f"{BASE}/")
            self.assertIn(expected_final_message("hello world"), page.inner_text("main"))
            screenshot(page, "landing")
            page.click("text=Live page")
            page.wait_for_url("**/api-auth/login/?next=/live/")
            hint = page.inner_text(".relay-login-hint")
            screenshot(page, "login")
        self.assertIn("Log in as a user with a password", hint)
        self.assertIn("changepassword USERNAME", hint)


# Records when each hop's row of the live page is filled, to see them arrive one by one.
WATCH_ARRIVALS = """
window.relayArrivals = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.target.dataset.state === "done") {
      window.relayArrivals.push([Number(change.target.dataset.position), performance.now()]);
    }
  }
}).observe(document.getElementById("hops"), {subtree: true, attributeFilter: ["data-state"]});
"""


class LivePageInBrowserTests(TransactionTestCase):
    def test_a_person_watches_the_eight_hops_arrive_then_the_final_text(self) -> None:
        message = "hello from the live page"
        password = person("live-watcher")
        with browser_page(self) as page:
            page.goto(f"{BASE}/live/")
            self.assertIn("/api-auth/login/", page.url)  # signing in comes first
            log_in(page, "live-watcher", password, then="/api/")
            page.click(f"a[href='{BASE}/live/']")  # the API root links the live page
            page.wait_for_url("**/live/")
            page.evaluate(WATCH_ARRIVALS)
            page.fill("#message", message)
            page.click("#send")
            page.wait_for_selector("#live[data-state=succeeded]")
            arrivals = page.evaluate("window.relayArrivals")
            rows = page.locator("#hops .live__row")
            self.assertEqual(rows.count(), len(Stage))
            text = message
            lefts = []
            for index, stage in enumerate(Stage):
                text = stage.spec.apply(text)
                row = rows.nth(index)
                self.assertEqual(row.get_attribute("data-state"), "done")
                self.assertEqual(row.locator(".live__text").inner_text(), text)
                self.assertRegex(row.locator(".live__duration").inner_text(), r"^\d+\.\d\d ms$")
                bar = row.locator(".live__bar").bounding_box()
                track = row.locator(".live__track").bounding_box()
                assert bar is not None and track is not None
                self.assertGreater(bar["width"], 0)
                self.assertLessEqual(bar["x"] + bar["width"], track["x"] + track["width"] + 0.5)
                lefts.append(bar["x"])
            self.assertEqual(lefts, sorted(lefts))
            self.assertEqual(page.inner_text("#final-text"), expected_final_message(message))
            self.assertIn("Succeeded", page.inner_text("#status"))
            self.assertTrue(page.locator("#error").is_hidden())
            transaction_id = page.get_attribute("#live", "data-transaction")
            screenshot(page, "live-succeeded")
            # The admin's "Replay live" link: the same transaction's hops, from its record.
            page.goto(f"{BASE}/live/?transaction={transaction_id}")
            page.wait_for_selector("#live[data-state=succeeded]")
            self.assertEqual(page.locator("#hops .live__row[data-state=done]").count(), 8)
            self.assertEqual(page.inner_text("#final-text"), expected_final_message(message))
        assert transaction_id is not None
        # Each hop's row was filled once, in order: they came one after another.
        self.assertEqual([position for position, _ in arrivals], list(range(1, 9)))
        transaction = Transaction.objects.get(id=transaction_id)
        self.assertEqual(transaction.status, Transaction.Status.SUCCEEDED)
        self.assertEqual(transaction.owner.get_username(), "live-watcher")  # type: ignore[union-attr]

    def test_errors_are_shown_in_words(self) -> None:
        password = person("live-errors")
        too_long = "x" * (settings.RELAY_MESSAGE_MAX_LENGTH + 1)
        with service_stopped("worker"), browser_page(self) as page:
            log_in(page, "live-errors", password, then="/live/")
            page.fill("#message", too_long)
            page.click("#send")
            page.wait_for_selector("#live[data-state=error]")
            refused = page.inner_text("#error")
            # No worker: the stream ends at the deadline, timed out.
            page.fill("#message", "nobody will carry this")
            page.click("#send")
            page.wait_for_selector("#live[data-state=timed_out]", timeout=20_000)
            timed_out = page.inner_text("#error")
            screenshot(page, "live-timed-out")
        self.assertIn("The message was refused", refused)
        self.assertIn("10000 characters", refused)
        self.assertIn("The relay timed out: the deadline", timed_out)
        self.assertIn("kafka_publish_request", timed_out)
