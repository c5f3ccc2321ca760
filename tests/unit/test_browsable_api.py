"""The browsable API: a root linking everything, a message form, descriptions in Markdown,
strict lists and errors."""

from collections.abc import Iterator
from unittest import mock

from django.contrib.auth.models import User
from django.test import TestCase
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.views import APIView

from relay_app.models import Transaction

HTML = "text/html"


def api_views(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> Iterator[tuple[str, type[APIView]]]:
    """Each DRF view of the URL map, with its route."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from api_views(pattern.url_patterns, route)
            continue
        view = getattr(pattern.callback, "cls", None)
        if isinstance(view, type) and issubclass(view, APIView):
            yield route, view


class BrowsableApiTests(TestCase):
    def setUp(self) -> None:
        # A person in a browser: signed in with a session (the browsable API is for people).
        self.user = User.objects.create_user("browser")
        self.client = APIClient()
        self.client.force_login(self.user)
        # No Redis here: the relay's throttle lets every request through (tests/integration/
        # test_limits.py counts them for real).
        allow = mock.Mock(**{"hit.return_value": 0.0})
        self.enterContext(
            mock.patch("relay_app.api.throttling.get_rate_limiter", return_value=allow)
        )

    def test_the_api_root_links_every_part(self) -> None:
        links = self.client.get("/api/").json()
        self.assertEqual(
            links,
            {
                "relay": "http://testserver/api/relay/",
                "transactions": "http://testserver/api/transactions/",
                "schema": "http://testserver/api/schema/",
                "docs": "http://testserver/api/docs/",
                "health": "http://testserver/healthz",
                "ready": "http://testserver/readyz",
                "seed": "http://testserver/communication/restKafkaGRPC/",
                "admin": "http://testserver/admin/",
                "live": "http://testserver/live/",
            },
        )
        page = self.client.get("/api/", HTTP_ACCEPT=HTML).content.decode()
        self.assertIn('<a href="http://testserver/api/relay/"', page)

    def test_the_relay_page_has_a_message_form_that_posts_json(self) -> None:
        page = self.client.get("/api/relay/", HTTP_ACCEPT=HTML).content.decode()
        self.assertIn('<textarea name="message"', page)
        self.assertIn('data-override="content-type" value="application/json"', page)
        self.assertIn("/static/relay_app/json-form.js", page)
        self.assertIn("Type a message in the form below and press POST", page)

    def test_opening_the_relay_page_shows_the_form_not_a_405(self) -> None:
        response = self.client.get("/api/relay/", HTTP_ACCEPT=HTML)
        self.assertEqual(response.status_code, 200)
        page = response.content.decode()
        # The request and response boxes, which only show the GET's 405, are hidden.
        self.assertIn('<body class="relay-form-page">', page)
        self.assertIn("/static/relay_app/json-form.css", page)
        self.assertNotIn("not allowed", page)
        self.assertIn("With <code>Prefer: respond-async</code> the answer is 202", page)
        # A program's GET is still refused, and a refused POST still shows its reasons.
        program = self.client.get("/api/relay/", HTTP_ACCEPT="application/json")
        self.assertEqual(program.status_code, 405)
        self.assertEqual(program.json(), {"detail": 'Method "GET" not allowed.'})
        self.assertEqual(program["Allow"], "POST, OPTIONS")
        refused = self.client.post(
            "/api/relay/", b'{"message": ""}', content_type="application/json", HTTP_ACCEPT=HTML
        )
        self.assertNotIn('<body class="relay-form-page">', refused.content.decode())

    def test_every_views_description_is_rendered_from_markdown(self) -> None:
        views = list(api_views(get_resolver().url_patterns))
        self.assertGreaterEqual(len(views), 10)
        for path, view in views:
            with self.subTest(path):
                description = view().get_view_description(html=True)
                self.assertNotIn("`", description)
                if view.__doc__:
                    self.assertTrue(description.startswith("<p>"), description)
        page = self.client.get("/api/transactions/", HTTP_ACCEPT=HTML).content.decode()
        self.assertIn("Add <code>?status=succeeded</code>", page)

    def test_a_refused_message_comes_back_in_the_form_with_its_reason(self) -> None:
        response = self.client.post(
            "/api/relay/", b'{"message": "   "}', content_type="application/json", HTTP_ACCEPT=HTML
        )
        self.assertEqual(response.status_code, 400)
        page = response.content.decode()
        self.assertIn("May not be empty or only whitespace.", page)
        self.assertIn('<textarea name="message"', page)

    def test_the_api_still_refuses_a_form_body(self) -> None:
        response = self.client.post("/api/relay/", {"message": "hello"}, format="multipart")
        self.assertEqual(response.status_code, 415)

    def test_transactions_come_newest_first_with_links_to_each(self) -> None:
        for message in ("first", "second"):
            Transaction.objects.create(message=message, owner=self.user, deadline_at=timezone.now())
        results = self.client.get("/api/transactions/").json()["results"]
        self.assertEqual([r["request_message"] for r in results], ["second", "first"])
        detail = self.client.get(results[0]["url"]).json()
        self.assertEqual(detail["transaction_id"], results[0]["transaction_id"])

    def test_status_and_page_are_taken_once_and_strictly(self) -> None:
        Transaction.objects.create(
            message="m", owner=self.user, deadline_at=timezone.now(), status="failed"
        )
        self.assertEqual(self.client.get("/api/transactions/?status=failed").json()["count"], 1)
        self.assertEqual(self.client.get("/api/transactions/?status=pending").json()["count"], 0)
        for query in ("status=nope", "status=failed&status=pending"):
            with self.subTest(query=query):
                response = self.client.get(f"/api/transactions/?{query}")
                self.assertEqual(response.status_code, 400)
                self.assertEqual(list(response.json()["errors"]), ["status"])
        for query in ("page=", "page=0", "page=x", "page=last", "page=1&page=1", "page=2"):
            with self.subTest(query=query):
                response = self.client.get(f"/api/transactions/?{query}")
                self.assertEqual(response.status_code, 404)
                self.assertEqual(response.json(), {"detail": "Invalid page."})

    def test_every_error_lists_its_reasons_per_field(self) -> None:
        response = self.client.post(
            "/api/relay/", {"message": "hi"}, format="json", headers={"Idempotency-Key": " "}
        )
        self.assertEqual(
            response.json()["errors"],
            {"Idempotency-Key": ["Must be 1 to 255 visible ASCII characters."]},
        )
        response = self.client.get("/api/transactions/?status=nope")
        self.assertIsInstance(response.json()["errors"]["status"], list)
