"""Who is counted and locked out: the client's address behind trusted proxies, and the login
lockout after repeated failures (the throttles, on Redis: tests/integration/test_limits.py)."""

from django.contrib.auth.models import User
from django.test import (
    Client,
    RequestFactory,
    SimpleTestCase,
    TransactionTestCase,
    override_settings,
    tag,
)

from relay_app.api.client_address import client_address

LOGIN = "/admin/login/"


@override_settings(AXES_FAILURE_LIMIT=3)
@tag("postgres")
class LoginLockoutTests(TransactionTestCase):
    def setUp(self) -> None:
        User.objects.create_superuser("root", password="the-right-password-1")
        User.objects.create_superuser("other", password="another-password-1")

    def log_in(self, username: str, password: str, address: str) -> int:
        response = Client(REMOTE_ADDR=address).post(
            LOGIN, {"username": username, "password": password, "next": "/admin/"}
        )
        return int(response.status_code)

    def test_repeated_failures_lock_out_that_user_from_that_address_alone(self) -> None:
        failures = [self.log_in("root", "wrong", "192.0.2.1") for _ in range(3)]
        self.assertEqual(failures, [200, 200, 429])  # the form again, then locked out
        # Locked: even the right password, from that address, opens nothing...
        self.assertEqual(self.log_in("root", "the-right-password-1", "192.0.2.1"), 429)
        # ... while everyone else behind that address still logs in, and the user elsewhere.
        self.assertEqual(self.log_in("other", "another-password-1", "192.0.2.1"), 302)
        self.assertEqual(self.log_in("root", "the-right-password-1", "192.0.2.99"), 302)

    def test_failures_spread_over_addresses_or_users_lock_nobody_out(self) -> None:
        spread = [self.log_in("root", "wrong", f"198.51.100.{n}") for n in range(3)]
        self.assertEqual(spread, [200, 200, 200])
        names = [self.log_in(name, "guess", "203.0.113.1") for name in ("a", "b", "c")]
        self.assertEqual(names, [200, 200, 200])
        self.assertEqual(self.log_in("root", "the-right-password-1", "203.0.113.1"), 302)

    def test_the_browsable_api_login_is_limited_too(self) -> None:
        for _ in range(3):
            Client(REMOTE_ADDR="203.0.113.5").post(
                "/api-auth/login/", {"username": "root", "password": "wrong"}
            )
        response = Client(REMOTE_ADDR="203.0.113.5").post(
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

    @override_settings(RELAY_TRUSTED_PROXY_COUNT=1, RELAY_TRUSTED_PROXY_ADDRESSES=["10.0.0.2"])
    def test_the_header_counts_only_on_a_connection_from_a_trusted_proxy(self) -> None:
        self.assertEqual(self.address("10.0.0.2", "198.51.100.7"), "198.51.100.7")
        self.assertEqual(self.address("10.0.0.9", "198.51.100.7"), "10.0.0.9")  # went around it
