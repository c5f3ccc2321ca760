"""The relay throttles per user and per address, counted in the real Redis (who is counted,
and the login lockout: tests/unit/test_limits.py)."""

from typing import Any

import redis
from django.conf import settings
from django.test import TransactionTestCase, override_settings
from rest_framework.test import APIClient

from relay_app.models import Transaction

from ..support import signed_in_client, user_with_token

THREE_A_MINUTE = (3, 60.0)


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
