"""The relay's own pages: the landing page at ``/`` and the login page saying who can log in."""

import re

from django.test import TestCase, override_settings
from django.utils import timezone

from relay_app.auth import DEVELOPMENT_USERNAME
from relay_app.hops import expected_final_message
from relay_app.models import Transaction

LOGIN = "/api-auth/login/"


class LandingPageTests(TestCase):
    def test_anyone_sees_what_the_relay_is_and_a_link_to_each_part(self) -> None:
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        page = response.content.decode()
        self.assertIn("REST → Kafka → gRPC → Kafka → REST", page)
        self.assertIn(expected_final_message("hello world"), page)
        links = set(re.findall(r'<a href="([^"]+)"', page))
        self.assertEqual(
            links,
            {"/live/", "/api/", "/api/docs/", "/api/schema/", "/admin/", "/healthz", "/readyz"},
        )
        self.assertIn("/static/relay_app/live.css", page)
        self.assertNotRegex(page, r'(src|href)="(https?:)?//')  # nothing from another host

    def test_it_shows_no_transaction(self) -> None:
        Transaction.objects.create(message="a secret of someone's", deadline_at=timezone.now())
        page = self.client.get("/").content.decode()
        self.assertNotIn("a secret", page)
        self.assertNotIn("A SECRET", page)

    def test_it_answers_get_and_head_only(self) -> None:
        self.assertEqual(self.client.head("/").status_code, 200)
        self.assertEqual(self.client.post("/").status_code, 405)


class WhoCanLogInTests(TestCase):
    def test_the_live_page_sends_to_a_login_that_names_a_user_with_a_password(self) -> None:
        response = self.client.get("/live/", follow=True)
        self.assertEqual(response.redirect_chain, [(f"{LOGIN}?next=/live/", 302)])
        page = response.content.decode()
        self.assertIn("Log in as a user with a password", page)
        self.assertIn("<code>python manage.py changepassword USERNAME</code>", page)
        self.assertNotIn(f"<strong>{DEVELOPMENT_USERNAME}</strong>", page)

    @override_settings(RELAY_DEVELOPMENT_SUPERUSER=True)
    def test_in_development_it_names_the_development_superuser(self) -> None:
        for path in (LOGIN, "/"):
            with self.subTest(path):
                page = self.client.get(path).content.decode()
                self.assertIn(
                    f"Log in as <strong>{DEVELOPMENT_USERNAME}</strong>, the development superuser",
                    page,
                )
