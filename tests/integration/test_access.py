"""Who may do what: API tokens, owners, anonymous clients, sessions, the health check's details.

Through the real stack: requests go over HTTP to the web server the runner started, or
through Django's test client in this process, and every relay runs on the real services.
"""

import base64
import json
from io import StringIO
from typing import Any

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import TransactionTestCase, override_settings, tag
from rest_framework.test import APIClient

from relay_app.hops import expected_final_message
from relay_app.models import Transaction

from ..support import bearer, signed_in_client, user_with_token, web

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def create_api_token(username: str, *args: str) -> tuple[str, str]:
    """What ``manage.py create_api_token`` prints: everything, and its last line."""
    out = StringIO()
    call_command("create_api_token", username, *args, stdout=out)
    return out.getvalue(), out.getvalue().splitlines()[-1]


@tag("postgres")
class ApiTokenTests(TransactionTestCase):
    def test_the_command_makes_a_user_who_is_not_staff_and_prints_the_token_last(self) -> None:
        output, token = create_api_token("alice")
        alice = User.objects.get(username="alice")
        self.assertFalse(alice.is_staff or alice.is_superuser)
        self.assertFalse(alice.has_usable_password())
        self.assertRegex(token, r"^rly_[A-Za-z0-9_-]{40,}$")
        self.assertIn("not staff", output)
        answer = web(token).relay("hello world")
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.body["owner"], "alice")

    def test_an_existing_user_keeps_their_flags_so_staff_get_a_staff_token(self) -> None:
        User.objects.create_superuser("admin", password="an-admin-password-1")
        _, token = create_api_token("admin")
        admin = User.objects.get(username="admin")
        self.assertTrue(admin.is_staff and admin.is_superuser)
        self.assertTrue(admin.check_password("an-admin-password-1"))
        _, other = user_with_token("someone")
        theirs = web(other).relay("not the admin's").body["transaction_id"]
        seen = signed_in_client(token).get(f"/api/transactions/{theirs}/")
        self.assertEqual(seen.status_code, 200)  # staff see every transaction

    def test_a_revoked_token_or_an_inactive_user_opens_nothing(self) -> None:
        _, token = user_with_token("carol")
        self.assertEqual(web(token).relay("before").status, 200)
        call_command("revoke_api_tokens", "--prefix", token[:12], stdout=StringIO())
        self.assertEqual(web(token).relay("after").status, 401)
        _, second = user_with_token("dave")
        User.objects.filter(username="dave").update(is_active=False)
        self.assertEqual(web(second).relay("inactive").status, 401)
        self.assertEqual(Transaction.objects.filter(message__in=["after", "inactive"]).count(), 0)


@tag("postgres")
class AuthenticationTests(TransactionTestCase):
    def assert_401(self, answer: Any) -> None:
        self.assertEqual(answer.status, 401, answer.body)
        self.assertEqual(answer.headers.get("Content-Type"), "application/json")
        self.assertIsInstance(answer.body["detail"], str)
        self.assertEqual(answer.headers.get("WWW-Authenticate"), 'Bearer realm="relay"')

    def test_without_a_valid_token_nothing_is_read_or_relayed(self) -> None:
        _, token = user_with_token("erin")
        web(token).relay("erin's secret")
        refused = {
            "no credentials": {},
            "an unknown token": bearer("rly_not-a-token-anyone-was-given"),
            "an empty token": {"Authorization": "Bearer "},
            "two tokens": {"Authorization": f"Bearer {token} {token}"},
            "another scheme": {"Authorization": f"Token {token}"},
        }
        for case, headers in refused.items():
            with self.subTest(case):
                for path in ("/api/transactions/", f"/api/transactions/{UNKNOWN_ID}/"):
                    answer = web().get(path, headers=headers)
                    self.assert_401(answer)
                    self.assertNotIn("erin's secret", json.dumps(answer.body))
                self.assert_401(web().relay("hello", headers=headers))
                self.assert_401(web().get("/communication/restKafkaGRPC/", headers=headers))
        self.assertEqual(Transaction.objects.count(), 1)

    def test_http_basic_is_refused_even_with_the_right_password(self) -> None:
        User.objects.create_user("frank", password="franks-password-1")
        basic = "Basic " + base64.b64encode(b"frank:franks-password-1").decode()
        self.assert_401(web().get("/api/transactions/", headers={"Authorization": basic}))
        answer = web().relay("hi", headers={"Authorization": basic})
        self.assert_401(answer)
        self.assertIn("Bearer", answer.body["detail"])
        self.assertEqual(Transaction.objects.count(), 0)

    def test_a_session_login_works_for_the_browsable_api(self) -> None:
        User.objects.create_user("gina", password="ginas-password-1")
        client = APIClient(enforce_csrf_checks=True)
        login = client.get("/api-auth/login/")
        csrf = login.cookies["csrftoken"].value
        answer = client.post(
            "/api-auth/login/",
            {"username": "gina", "password": "ginas-password-1", "next": "/api/transactions/"},
            HTTP_X_CSRFTOKEN=csrf,
        )
        self.assertEqual(answer.status_code, 302, answer.content[:500])
        self.assertEqual(client.get("/api/transactions/").status_code, 200)
        # A session's writes need the CSRF token, as any cookie-based login must.
        no_csrf = client.post("/api/relay/", {"message": "hi"}, format="json")
        self.assertEqual(no_csrf.status_code, 403)
        relayed = client.post(
            "/api/relay/",
            {"message": "hi"},
            format="json",
            HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
        )
        self.assertEqual(relayed.status_code, 200, relayed.content[:500])
        self.assertEqual(relayed.json()["owner"], "gina")


@tag("postgres")
class OwnershipTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.alice = user_with_token("alice")
        _, self.bob = user_with_token("bob")
        _, self.staff = user_with_token("staff", staff=True)

    def ids(self, token: str) -> set[str]:
        body = web(token).get("/api/transactions/").body
        return {row["transaction_id"] for row in body["results"]}

    def test_users_see_their_own_transactions_and_staff_see_all(self) -> None:
        alices = web(self.alice).relay("alice's message").body["transaction_id"]
        bobs = web(self.bob).relay("bob's message").body["transaction_id"]
        self.assertEqual(self.ids(self.alice), {alices})
        self.assertEqual(self.ids(self.bob), {bobs})
        self.assertEqual(self.ids(self.staff), {alices, bobs})
        mine = web(self.alice).get(f"/api/transactions/{alices}/")
        self.assertEqual(mine.status, 200)
        self.assertEqual(mine.body["request_message"], "alice's message")

    def test_another_users_transaction_is_a_404_exactly_like_an_unknown_one(self) -> None:
        alices = web(self.alice).relay("alice's message").body["transaction_id"]
        foreign = web(self.bob).get(f"/api/transactions/{alices}/")
        unknown = web(self.bob).get(f"/api/transactions/{UNKNOWN_ID}/")
        self.assertEqual((foreign.status, unknown.status), (404, 404))
        self.assertEqual(
            foreign.body["detail"].replace(alices, "ID"),
            unknown.body["detail"].replace(UNKNOWN_ID, "ID"),
        )
        self.assertNotIn("alice", json.dumps(foreign.body))

    def test_an_idempotency_key_belongs_to_its_owner(self) -> None:
        key = {"Idempotency-Key": "order-1"}
        alices = web(self.alice).relay("alice pays", headers=key)
        bobs = web(self.bob).relay("bob pays", headers=key)  # no 422: not alice's key
        self.assertEqual((alices.status, bobs.status), (200, 200))
        self.assertNotEqual(alices.body["transaction_id"], bobs.body["transaction_id"])
        # Bob sending alice's key with alice's message gets a transaction of his own.
        copy = web(self.bob).relay("alice pays", idempotency_key="order-2")
        again = web(self.bob).relay("alice pays", idempotency_key="order-2")
        self.assertEqual(copy.body["transaction_id"], again.body["transaction_id"])
        self.assertNotEqual(copy.body["transaction_id"], alices.body["transaction_id"])
        replay = web(self.alice).relay("alice pays", headers=key)
        self.assertEqual(replay.body["transaction_id"], alices.body["transaction_id"])
        self.assertEqual(Transaction.objects.filter(idempotency_key="order-1").count(), 2)


@tag("postgres")
class AnonymousRelayTests(TransactionTestCase):
    @override_settings(RELAY_ALLOW_ANONYMOUS_RELAY=True)
    def test_where_allowed_anonymous_blocking_relays_are_owned_by_nobody_seen_by_staff_only(
        self,
    ) -> None:
        client = APIClient()
        answer = client.post("/api/relay/", {"message": "anonymous"}, format="json")
        self.assertEqual(answer.status_code, 200, answer.content[:300])
        self.assertEqual(answer.json()["message"], expected_final_message("anonymous"))
        self.assertIsNone(answer.json()["owner"])
        self.assertEqual(client.get("/communication/restKafkaGRPC/").status_code, 200)
        # An asynchronous relay is not: its links would answer this client 401.
        refused = client.post(
            "/api/relay/", {"message": "later"}, format="json", headers={"Prefer": "respond-async"}
        )
        self.assertEqual(refused.status_code, 401)
        self.assertIn("A token is needed to follow an asynchronous relay", refused.json()["detail"])
        self.assertEqual(Transaction.objects.filter(owner=None).count(), 2)
        # Reading still needs a login; a user does not see them; staff do.
        self.assertEqual(client.get("/api/transactions/").status_code, 401)
        _, user = user_with_token("user")
        _, staff = user_with_token("staff", staff=True)
        self.assertEqual(signed_in_client(user).get("/api/transactions/").json()["count"], 0)
        self.assertEqual(signed_in_client(staff).get("/api/transactions/").json()["count"], 2)
        one = answer.json()["transaction_id"]
        self.assertEqual(signed_in_client(user).get(f"/api/transactions/{one}/").status_code, 404)


@tag("postgres")
class HealthTests(TransactionTestCase):
    def test_liveness_is_the_web_server_answering(self) -> None:
        alive = web().get("/healthz")
        self.assertEqual((alive.status, alive.body), (200, {"status": "ok"}))

    def test_readiness_tells_anonymous_callers_up_or_down_and_staff_why(self) -> None:
        anonymous = web().get("/readyz")
        self.assertEqual((anonymous.status, anonymous.body), (200, {"status": "ok"}))
        _, user = user_with_token("user")
        self.assertEqual(web(user).get("/readyz").body, {"status": "ok"})
        _, staff = user_with_token("staff", staff=True)
        checks = web(staff).get("/readyz").body["checks"]
        self.assertEqual(
            {name: check["status"] for name, check in checks.items()},
            dict.fromkeys(("database", "redis", "kafka", "grpc", "worker"), "ok"),
        )
        for check in checks.values():
            self.assertGreaterEqual(check["latency_ms"], 0)
