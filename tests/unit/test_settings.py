"""Settings guards, the system checks, and what error reports show, without starting anything
(production settings in processes of their own: tests/integration/test_settings_fail_closed.py)."""

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr
from typing import Any
from unittest import mock

from django.conf import settings
from django.core.checks import Tags, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings
from django.views.debug import get_default_exception_reporter_filter

from project.settings import environment
from project.settings.profiles import TEST
from relay_app.checks import StartRefused, check_at_start


class ErrorReportTests(SimpleTestCase):
    @override_settings(
        CELERY_BROKER_URL="redis://:s3cret-password@redis.internal:6379/0",
        DATABASES_URL_COPY="postgres://relay:db-pa55@db.internal/relay",
    )
    def test_error_reports_hide_passwords_inside_urls(self) -> None:
        shown = get_default_exception_reporter_filter().get_safe_settings()
        for name in ("CELERY_BROKER_URL", "DATABASES_URL_COPY"):
            with self.subTest(name):
                self.assertNotIn("s3cret-password", str(shown[name]))
                self.assertNotIn("db-pa55", str(shown[name]))
                self.assertIn("********", shown[name])
        self.assertEqual(
            shown["CELERY_BROKER_URL"], "redis://:********************@redis.internal:6379/0"
        )
        self.assertEqual(shown["SECRET_KEY"], "********************")


class EnvironmentTests(SimpleTestCase):
    """The guards every settings module reads the environment through."""

    def read(self, reader: Callable[..., Any], value: str, *args: Any) -> Any:
        with mock.patch.dict(os.environ, {"SETTING": value}):
            return reader("SETTING", *args)

    def assert_refused(self, reader: Callable[..., Any], value: str, *args: Any) -> None:
        with self.assertRaisesMessage(ImproperlyConfigured, "SETTING"):
            self.read(reader, value, *args)

    def test_rates(self) -> None:
        self.assertEqual(self.read(environment.rate, "120/minute", ""), (120, 60.0))
        self.assertEqual(self.read(environment.rate, "5/Second", ""), (5, 1.0))
        for value in ("0/minute", "fast", "10/fortnight", "-1/second", "1.5/minute"):
            with self.subTest(value):
                self.assert_refused(environment.rate, value, "")

    def test_days_or_off(self) -> None:
        self.assertEqual(self.read(environment.days_or_off, "30", ""), 30.0)
        self.assertIsNone(self.read(environment.days_or_off, "off", ""))
        for value in ("0", "-3", "soon", "inf", "nan"):
            with self.subTest(value):
                self.assert_refused(environment.days_or_off, value, "")

    def test_choices_secrets_hosts_and_headers(self) -> None:
        protocols = ("PLAINTEXT", "SSL", "SASL_SSL")
        self.assertEqual(self.read(environment.choice, "sasl_ssl", "", protocols), "SASL_SSL")
        self.assert_refused(environment.choice, "TLS", "", protocols)
        self.assertEqual(self.read(environment.secret_key, "a" * 50), "a" * 50)
        for value in ("", "  ", "django-insecure-development-only"):
            with self.subTest(secret=value):
                self.assert_refused(environment.secret_key, value)
        self.assertEqual(
            self.read(environment.host_names, "a.example, b.example"), ["a.example", "b.example"]
        )
        self.assert_refused(environment.host_names, ",")
        header = self.read(environment.header_and_value, "HTTP_X_FORWARDED_PROTO,https")
        self.assertEqual(header, ("HTTP_X_FORWARDED_PROTO", "https"))
        self.assert_refused(environment.header_and_value, "X-Forwarded-Proto: https")

    def test_signing_keys_are_long_and_the_deployments_own(self) -> None:
        key = "k" * environment.SIGNING_KEY_MIN_LENGTH
        self.assertEqual(self.read(environment.signing_key, key), key)
        repository_keys = [
            TEST["RELAY_CHAIN_SIGNING_KEY"],  # the test settings'
            "insecure-development-chain-signing-key-of-the-repository",
        ]
        for value in ("", " " * 40, key[1:], *repository_keys):
            with self.subTest(key=value):
                self.assert_refused(environment.signing_key, value)

    def test_a_password_joins_a_url_that_has_none(self) -> None:
        self.assertEqual(
            environment.url_with_password("rediss://h:6379/0", "p@ss"), "rediss://:p%40ss@h:6379/0"
        )
        self.assertEqual(environment.url_with_password("redis://:own@h/0", "p"), "redis://:own@h/0")
        self.assertEqual(environment.url_with_password("redis://h/0", ""), "redis://h/0")


SECURE_TRANSPORT = {
    "SECRET_KEY": "a-secret-of-the-deployments-own-" + "0123456789abcdefghij",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_USERNAME": "relay",
    "KAFKA_SASL_PASSWORD": "secret",
    "REDIS_TLS": {"ssl_cert_reqs": "required"},
    "CELERY_BROKER_URL": "rediss://:secret@redis.example:6379/0",
    "GRPC_TLS_CA_FILE": __file__,
    "GRPC_TLS_CERT_FILE": __file__,
    "GRPC_TLS_KEY_FILE": __file__,
    "GRPC_SERVER_TLS_CERT_FILE": __file__,
    "GRPC_SERVER_TLS_KEY_FILE": __file__,
    "GRPC_SERVER_TLS_CA_FILE": __file__,
}


def relay_checks() -> list[str]:
    """The ids of the relay's own security checks that fire under the settings in force."""
    fired = {message.id or "" for message in run_checks(tags=[Tags.security])}
    return sorted(check for check in fired if check.startswith("relay."))


@override_settings(RELAY_ENVIRONMENT="production", **SECURE_TRANSPORT)
class SystemCheckTests(SimpleTestCase):
    """What production settings refuse (relay_app/checks.py), without a process of their own."""

    def test_production_with_tls_and_credentials_on_every_hop_passes(self) -> None:
        self.assertEqual(relay_checks(), [])

    def test_each_plaintext_or_credential_less_hop_is_an_error(self) -> None:
        cases: dict[str, list[dict[str, Any]]] = {
            "relay.E001": [{"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, {"KAFKA_SASL_PASSWORD": ""}],
            "relay.E002": [{"REDIS_TLS": {}}, {"CELERY_BROKER_URL": "rediss://redis.example/0"}],
            "relay.E003": [{"GRPC_TLS_CA_FILE": ""}, {"GRPC_SERVER_TLS_CA_FILE": ""}],
            "relay.E004": [{"GRPC_TLS_CA_FILE": "/nonexistent/ca.pem"}],
        }
        for error, changes in cases.items():
            for change in changes:
                with self.subTest(change=change), override_settings(**change):
                    self.assertIn(error, relay_checks())

    def test_plaintext_allowed_on_purpose_is_a_warning_and_development_conveniences_too(
        self,
    ) -> None:
        with override_settings(KAFKA_SECURITY_PROTOCOL="PLAINTEXT", RELAY_ALLOW_PLAINTEXT=True):
            self.assertEqual(relay_checks(), ["relay.W003"])
        with override_settings(RELAY_ALLOW_ANONYMOUS_RELAY=True, RELAY_PUBLIC_API_DOCS=True):
            self.assertEqual(relay_checks(), ["relay.W001", "relay.W002"])

    def test_a_weak_secret_key_or_any_host_is_an_error(self) -> None:
        for key in ("short", "django-insecure-" + "k" * 50, "ab" * 30):
            with self.subTest(key=key), override_settings(SECRET_KEY=key):
                self.assertEqual(relay_checks(), ["relay.E007"])
        with override_settings(SECRET_KEY_FALLBACKS=["old"]):
            self.assertEqual(relay_checks(), ["relay.E007"])
        with override_settings(ALLOWED_HOSTS=["relay.example.com", "*"]):
            self.assertEqual(relay_checks(), ["relay.E008"])
        with override_settings(RELAY_ENVIRONMENT="development", SECRET_KEY="short"):
            self.assertEqual(relay_checks(), [])


@override_settings(RELAY_ENVIRONMENT="production", **SECURE_TRANSPORT)
class CheckAtStartTests(SimpleTestCase):
    """What each process that serves runs as it starts (their starts under production
    settings: tests/integration/test_settings_fail_closed.py)."""

    def start(self) -> str:
        """``check_at_start``'s warnings; ``StartRefused`` on an error."""
        with redirect_stderr(io.StringIO()) as printed:
            check_at_start("web")
        return printed.getvalue()

    def test_errors_refuse_the_start_naming_each(self) -> None:
        with (
            override_settings(SECRET_KEY="short", ALLOWED_HOSTS=["*"]),
            self.assertRaises(StartRefused) as refused,
        ):
            self.start()
        message = str(refused.exception.code)
        self.assertTrue(message.startswith("web refuses to start"), message)
        for error in ("relay.E007", "relay.E008"):
            self.assertIn(error, message)

    def test_warnings_are_printed_and_allowed(self) -> None:
        with override_settings(KAFKA_SECURITY_PROTOCOL="PLAINTEXT", RELAY_ALLOW_PLAINTEXT=True):
            printed = self.start()
        self.assertIn("web: ?: (relay.W003) Plaintext allowed on purpose", printed)

    def test_other_settings_start_unchecked(self) -> None:
        with override_settings(RELAY_ENVIRONMENT="development", SECRET_KEY="short"):
            self.assertEqual(self.start(), "")
        with override_settings(
            RELAY_ENVIRONMENT="development", KAFKA_SECURITY_PROTOCOL="PLAINTEXT"
        ):
            self.assertEqual(relay_checks(), [])


# In a fresh process: the profile's values, the environment's over them, and what is left of
# the environment afterwards (a profile writes nothing into it).
PROFILE_PROBE = """
import json, os
import django
django.setup()
from django.conf import settings
print(json.dumps({
    "kafka": settings.KAFKA_ADDRESS,
    "http": settings.HTTP_ADDRESS,
    "renamed": settings.RELAY_RENAMED_VARIABLES,
    "written": sorted(set(os.environ) - set(json.loads(os.environ["BEFORE"]))),
}))
"""


def probe_profile(module: str, **variables: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env = {**clean, "DJANGO_SETTINGS_MODULE": module, **variables}
    env["BEFORE"] = json.dumps(sorted([*env, "BEFORE", "TZ"]))  # TZ: Django's own, from TIME_ZONE
    run = subprocess.run(
        [sys.executable, "-c", PROFILE_PROBE],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return result


class ProfileTests(SimpleTestCase):
    def test_a_profile_gives_its_values_and_writes_nothing_into_the_environment(self) -> None:
        found = probe_profile("project.settings.test")
        self.assertEqual(found["kafka"], TEST["KAFKA_ADDRESS"])
        self.assertEqual(found["written"], [])
        # The environment still wins over the profile.
        found = probe_profile("project.settings.test", KAFKA_ADDRESS="127.0.0.1:1")
        self.assertEqual(found["kafka"], "127.0.0.1:1")

    def test_an_old_name_is_still_read_and_named_for_renaming(self) -> None:
        found = probe_profile("project.settings.development", RELAY_HTTP_ADDRESS="127.0.0.1:7")
        self.assertEqual(found["http"], "127.0.0.1:7")
        self.assertEqual(found["renamed"], {"RELAY_HTTP_ADDRESS": "HTTP_ADDRESS"})
        # The new name wins where both are set.
        found = probe_profile(
            "project.settings.development",
            RELAY_HTTP_ADDRESS="127.0.0.1:7",
            HTTP_ADDRESS="127.0.0.1:8",
        )
        self.assertEqual((found["http"], found["renamed"]), ("127.0.0.1:8", {}))
        with override_settings(RELAY_RENAMED_VARIABLES={"RELAY_HTTP_ADDRESS": "HTTP_ADDRESS"}):
            self.assertIn("relay.W004", {message.id for message in run_checks()})
