"""Limits on how much one client may do: relay throttles per user and per address, and the
lockout after repeated failed logins. Against the real Redis and database."""

from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.test import (
    Client,
    RequestFactory,
    SimpleTestCase,
    TransactionTestCase,
    override_settings,
)
from rest_framework.test import APIClient

from relay_app.api.client_address import client_address
from relay_app.models import Transaction

from .support import signed_in_client, user_with_token

THREE_A_MINUTE = (3, 60.0)
LOGIN = "/admin/login/"


def forget_rates() -> None:
    """Empty every rate bucket in Redis, so a test starts with full ones."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    try:
        for key in client.scan_iter("relay:rate:*"):
            client.delete(key)
    finally:
        client.close()


@override_settings(RELAY_THROTTLE_RATE=THREE_A_MINUTE, RELAY_ANONYMOUS_THROTTLE_RATE=THREE_A_MINUTE)
class ThrottleTests(TransactionTestCase):
    def setUp(self) -> None:
        forget_rates()
        self.addCleanup(forget_rates)

    def relay(self, client: APIClient, message: str, **extra: Any) -> int:
        return int(
            client.post("/api/relay/", {"message": message}, format="json", **extra).status_code
        )

    def test_a_user_over_the_rate_gets_429_with_retry_after_and_nothing_is_created(self) -> None:
        _, token = user_with_token("busy")
        client = signed_in_client(token)
        self.assertEqual([self.relay(client, f"m{i}") for i in range(3)], [200, 200, 200])
        refused = client.post("/api/relay/", {"message": "one too many"}, format="json")
        self.assertEqual(refused.status_code, 429)
        self.assertIn("throttled", refused.json()["detail"])
        # One request every 20 s at three a minute: that long to wait, in whole seconds.
        self.assertIn(int(refused["Retry-After"]), range(19, 21))
        self.assertEqual(client.get("/communication/restKafkaGRPC/").status_code, 429)
        self.assertFalse(Transaction.objects.filter(message="one too many").exists())
        self.assertEqual(Transaction.objects.count(), 3)
        # Another user has a rate of their own; reading is not counted.
        _, other = user_with_token("calm")
        self.assertEqual(self.relay(signed_in_client(other), "mine"), 200)
        self.assertEqual(client.get("/api/transactions/").status_code, 200)

    def relay_anonymously(self, *, remote: str, forwarded_for: list[str]) -> list[int]:
        """Anonymous relays from ``remote``, one per X-Forwarded-For value; their statuses."""
        client = APIClient()
        return [
            self.relay(client, f"m{i}", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
            for i, forwarded in enumerate(forwarded_for)
        ]

    @override_settings(RELAY_ALLOW_ANONYMOUS_RELAY=True)
    def test_anonymous_clients_are_counted_per_address_and_cannot_forge_one(self) -> None:
        # X-Forwarded-For from a client is ignored when no proxy is trusted.
        forged = [f"203.0.113.{i}" for i in range(4)]
        statuses = self.relay_anonymously(remote="192.0.2.1", forwarded_for=forged)
        self.assertEqual(statuses, [200, 200, 200, 429])
        elsewhere = self.relay_anonymously(remote="192.0.2.2", forwarded_for=forged[:1])
        self.assertEqual(elsewhere, [200])

    @override_settings(RELAY_ALLOW_ANONYMOUS_RELAY=True, RELAY_TRUSTED_PROXY_COUNT=1)
    def test_behind_a_trusted_proxy_the_address_it_forwards_is_counted(self) -> None:
        # The proxy appends the address it saw; what the client wrote before it proves nothing.
        through_proxy = [f"1.1.1.{i}, 198.51.100.7" for i in range(4)]
        statuses = self.relay_anonymously(remote="10.0.0.1", forwarded_for=through_proxy)
        self.assertEqual(statuses, [200, 200, 200, 429])
        other = self.relay_anonymously(remote="10.0.0.1", forwarded_for=["198.51.100.8"])
        self.assertEqual(other, [200])


@override_settings(AXES_FAILURE_LIMIT=3)
class LoginLockoutTests(TransactionTestCase):
    def setUp(self) -> None:
        User.objects.create_superuser("root", password="the-right-password-1")
        User.objects.create_superuser("other", password="another-password-1")

    def log_in(self, username: str, password: str, address: str) -> int:
        response = Client(REMOTE_ADDR=address).post(
            LOGIN, {"username": username, "password": password, "next": "/admin/"}
        )
        return int(response.status_code)

    def test_repeated_failures_for_one_user_lock_that_user_out_from_anywhere(self) -> None:
        failures = [self.log_in("root", "wrong", f"192.0.2.{n}") for n in range(3)]
        self.assertEqual(failures, [200, 200, 429])  # the form again, then locked out
        # Locked: even the right password, from yet another address, opens nothing.
        self.assertEqual(self.log_in("root", "the-right-password-1", "192.0.2.99"), 429)
        self.assertEqual(self.log_in("other", "another-password-1", "192.0.2.99"), 302)

    def test_repeated_failures_from_one_address_lock_that_address_out(self) -> None:
        failures = [self.log_in(name, "guess", "198.51.100.1") for name in ("a", "b", "c")]
        self.assertEqual(failures, [200, 200, 429])
        self.assertEqual(self.log_in("root", "the-right-password-1", "198.51.100.1"), 429)
        self.assertEqual(self.log_in("root", "the-right-password-1", "198.51.100.2"), 302)

    def test_the_browsable_api_login_is_limited_too(self) -> None:
        for _ in range(3):
            Client(REMOTE_ADDR="203.0.113.5").post(
                "/api-auth/login/", {"username": "root", "password": "wrong"}
            )
        response = Client(REMOTE_ADDR="203.0.113.6").post(
            "/api-auth/login/", {"username": "root", "password": "the-right-password-1"}
        )
        self.assertEqual(response.status_code, 429)
        self.assertIn("Too many failed logins", response.content.decode())


class ClientAddressTests(SimpleTestCase):
    def address(self, remote: str, forwarded: str | None = None) -> str | None:
        request = RequestFactory().get("/")
        request.META["REMOTE_ADDR"] = remote
        if forwarded is not None:
            request.META["HTTP_X_FORWARDED_FOR"] = forwarded
        return client_address(request)

    def test_without_a_trusted_proxy_only_the_connection_counts(self) -> None:
        self.assertEqual(self.address("192.0.2.1", "203.0.113.9"), "192.0.2.1")
        self.assertEqual(self.address("::1"), "::1")
        self.assertIsNone(self.address(""))  # a Unix socket has none

    @override_settings(RELAY_TRUSTED_PROXY_COUNT=2)
    def test_behind_trusted_proxies_the_entry_they_wrote_counts_and_nothing_else(self) -> None:
        self.assertEqual(
            self.address("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.1"), "198.51.100.7"
        )
        self.assertEqual(self.address("10.0.0.2", "198.51.100.7"), "198.51.100.7")
        self.assertEqual(self.address("10.0.0.2"), "10.0.0.2")
        # Not an IP address (a proxy that writes "unknown", or a port): the connection's.
        self.assertEqual(self.address("10.0.0.2", "unknown, 10.0.0.1"), "10.0.0.2")
        self.assertEqual(self.address("10.0.0.2", " 2001:db8::1 , 10.0.0.1"), "2001:db8::1")
