"""Settings that fail closed: every entry point that serves defaults to production settings,
which refuse to start without their secrets, require HTTPS and keep their errors quiet."""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import IO

from django.conf import settings
from django.test import SimpleTestCase

from ops import processes, tls
from relay_app.auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME

# What production requires before anything else: its secrets.
SECRETS_ONLY = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "relay.example.com",
    "RELAY_CHAIN_SIGNING_KEY": secrets.token_urlsafe(32),
    "RELAY_GRPC_CAPABILITY_KEY": secrets.token_urlsafe(32),
}
# Those, for a network trusted on purpose (as the benchmark and chaos stacks run on loopback).
PLAINTEXT_ON_PURPOSE = {
    **SECRETS_ONLY,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "RELAY_ALLOW_PLAINTEXT": "true",
    # Where nothing answers: a process that starts must not join another stack's.
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "KAFKA_ADDRESS": "127.0.0.1:1",
}
# The minimal production environment docs/security.md documents: those, and TLS with credentials
# on every hop (the local CA of ops/tls.py standing in for a real one).
TLS_DIR = Path(settings.RELAY_VAR_DIR) / "fail-closed" / "tls"
MINIMAL_PRODUCTION = {
    **SECRETS_ONLY,
    **tls.deployment_env(tls.ensure(TLS_DIR)),
    "REDIS_URL": "rediss://redis.example.com:6379/0",
}


def clean_env(env: dict[str, str], *, settings_module: str | None = None) -> dict[str, str]:
    """A clean environment: nothing from the test settings, ``env`` on top."""
    ours = ("DJANGO_", "RELAY_", "OTEL_", "KAFKA_", "REDIS_", "GRPC_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    if settings_module:
        clean["DJANGO_SETTINGS_MODULE"] = settings_module
    clean["RELAY_VAR_DIR"] = str(settings.RELAY_VAR_DIR / "fail-closed")
    return {**clean, **env}


def run(
    args: list[str], env: dict[str, str], *, settings_module: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Python in a clean environment (``clean_env``)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=clean_env(env, settings_module=settings_module),
        capture_output=True,
        text=True,
        timeout=120,
    )


# Under production settings, a database that already holds the development superuser (one
# copied from a development machine): that login must fail, another user's must work.
PRODUCTION_LOGIN = textwrap.dedent(
    f"""
    import django
    django.setup()
    from django.contrib.auth import authenticate as check_login, get_user_model
    from django.core.management import call_command
    from django.test import RequestFactory
    def authenticate(**credentials):
        return check_login(RequestFactory().post("/admin/login/"), **credentials)
    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    users.create_superuser({DEVELOPMENT_USERNAME!r}, password={DEVELOPMENT_PASSWORD!r})
    users.create_superuser("operator", password="a-real-secret-1")
    assert authenticate(username={DEVELOPMENT_USERNAME!r},
                        password={DEVELOPMENT_PASSWORD!r}) is None
    assert authenticate(username="operator", password={DEVELOPMENT_PASSWORD!r}) is None
    assert authenticate(username="operator", password="a-real-secret-1") is not None
    print("refused")
    """
)

SETTINGS_IN_FORCE = "from django.conf import settings; print(settings.RELAY_ENVIRONMENT)"
PRODUCTION = "project.settings.production"


class EntryPointTests(SimpleTestCase):
    def test_each_entry_point_that_serves_defaults_to_production(self) -> None:
        entry_points = {
            "web (project.wsgi)": f"import project.wsgi; {SETTINGS_IN_FORCE}",
            "worker (project.celery)": (
                f"import project.celery, django; django.setup(); {SETTINGS_IN_FORCE}"
            ),
        }
        for name, code in entry_points.items():
            with self.subTest(name):
                bare = run(["-c", code], {})
                self.assertNotEqual(bare.returncode, 0)
                self.assertIn("DJANGO_SECRET_KEY", bare.stderr)
                configured = run(["-c", code], PLAINTEXT_ON_PURPOSE)
                self.assertEqual(configured.returncode, 0, configured.stderr[-1500:])
                self.assertEqual(configured.stdout.split()[-1], "production")

    def test_the_grpc_server_refuses_to_start_without_production_secrets(self) -> None:
        bare = run(["-m", "project.grpcserver", "--address", "127.0.0.1:0"], {})
        self.assertNotEqual(bare.returncode, 0)
        self.assertIn("DJANGO_SECRET_KEY", bare.stderr)

    def test_manage_py_keeps_development_for_local_commands(self) -> None:
        local = run(["manage.py", "shell", "-c", SETTINGS_IN_FORCE], {})
        self.assertEqual(local.returncode, 0, local.stderr[-1500:])
        self.assertEqual(local.stdout.split()[-1], "development")


class ProductionSettingsTests(SimpleTestCase):
    production = "project.settings.production"

    def test_production_refuses_to_start_without_its_secrets(self) -> None:
        cases = {
            "no secret key": {"DJANGO_ALLOWED_HOSTS": "relay.example.com"},
            "an empty secret key": {"DJANGO_SECRET_KEY": " ", "DJANGO_ALLOWED_HOSTS": "a.example"},
            "the development key": {
                "DJANGO_SECRET_KEY": "django-insecure-development-only",
                "DJANGO_ALLOWED_HOSTS": "relay.example.com",
            },
            "no allowed hosts": {"DJANGO_SECRET_KEY": SECRETS_ONLY["DJANGO_SECRET_KEY"]},
            "empty allowed hosts": {**SECRETS_ONLY, "DJANGO_ALLOWED_HOSTS": ","},
            "no chain signing key": {**SECRETS_ONLY, "RELAY_CHAIN_SIGNING_KEY": ""},
            "a short chain signing key": {**SECRETS_ONLY, "RELAY_CHAIN_SIGNING_KEY": "k" * 31},
            "the development capability key": {
                **SECRETS_ONLY,
                "RELAY_GRPC_CAPABILITY_KEY": (
                    "insecure-development-grpc-capability-key-of-the-repository"
                ),
            },
        }
        for case, env in cases.items():
            with self.subTest(case):
                started = run(["manage.py", "check"], env, settings_module=self.production)
                self.assertNotEqual(started.returncode, 0)
                self.assertIn("ImproperlyConfigured", started.stderr)
                self.assertRegex(
                    started.stderr,
                    r"DJANGO_(SECRET_KEY|ALLOWED_HOSTS)|RELAY_(CHAIN_SIGNING|GRPC_CAPABILITY)_KEY",
                )

    def test_check_deploy_passes_with_the_minimal_environment_and_warns_otherwise(self) -> None:
        command = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]
        passed = run(command, MINIMAL_PRODUCTION, settings_module=self.production)
        self.assertEqual(passed.returncode, 0, passed.stderr[-2000:])
        for variable, check in (
            ("RELAY_ALLOW_ANONYMOUS_RELAY", "relay.W001"),
            ("RELAY_PUBLIC_API_DOCS", "relay.W002"),
        ):
            with self.subTest(variable):
                env = {**MINIMAL_PRODUCTION, variable: "true"}
                warned = run(command, env, settings_module=self.production)
                self.assertNotEqual(warned.returncode, 0)
                self.assertIn(check, warned.stderr)
        debug = run(
            command, {**MINIMAL_PRODUCTION, "DJANGO_DEBUG": "true"}, settings_module=self.production
        )
        self.assertEqual(debug.returncode, 0, "DJANGO_DEBUG cannot turn DEBUG on in production")

    def test_a_plaintext_or_credential_less_hop_fails_the_check_unless_allowed_on_purpose(
        self,
    ) -> None:
        cases = {
            "every hop in plaintext": (SECRETS_ONLY, ["relay.E001", "relay.E002", "relay.E003"]),
            "Kafka in plaintext": (
                {**MINIMAL_PRODUCTION, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
                ["relay.E001"],
            ),
            "Kafka without its password": (
                {**MINIMAL_PRODUCTION, "KAFKA_SASL_PASSWORD": ""},
                ["relay.E001"],
            ),
            "Redis in plaintext": (
                {**MINIMAL_PRODUCTION, "REDIS_URL": "redis://redis.example.com:6379/0"},
                ["relay.E002"],
            ),
            "Redis without a password": (
                {**MINIMAL_PRODUCTION, "REDIS_PASSWORD": ""},
                ["relay.E002"],
            ),
            "a gRPC client without a certificate": (
                {**MINIMAL_PRODUCTION, "GRPC_TLS_CERT_FILE": ""},
                ["relay.E003"],
            ),
            "a gRPC server that admits anyone": (
                {**MINIMAL_PRODUCTION, "GRPC_SERVER_TLS_CA_FILE": ""},
                ["relay.E003"],
            ),
            "a certificate file that is not there": (
                {**MINIMAL_PRODUCTION, "GRPC_TLS_CA_FILE": "/nonexistent/ca.pem"},
                ["relay.E004"],
            ),
        }
        for case, (env, errors) in cases.items():
            with self.subTest(case):
                checked = run(["manage.py", "check"], env, settings_module=self.production)
                self.assertNotEqual(checked.returncode, 0, checked.stdout)
                self.assertEqual(sorted(set(re.findall(r"relay\.E\d+", checked.stderr))), errors)
        allowed = run(
            ["manage.py", "check"],
            {**SECRETS_ONLY, "RELAY_ALLOW_PLAINTEXT": "true"},
            settings_module=self.production,
        )
        self.assertEqual(allowed.returncode, 0, allowed.stderr[-2000:])
        self.assertIn("relay.W003", allowed.stderr)  # still said, as a warning

    def test_production_requires_https_and_answers_anonymous_callers_with_401(self) -> None:
        probe = textwrap.dedent(
            """
            import json, django
            django.setup()
            from django.conf import settings
            from django.core.management import call_command
            from django.test import Client
            call_command("migrate", verbosity=0)
            client = Client(HTTP_HOST="relay.example.com")
            plain = client.get("/api/transactions/")
            health = client.get("/healthz")
            https = client.get("/api/transactions/", HTTP_X_FORWARDED_PROTO="https")
            relay = client.post("/api/relay/", {"message": "hi"}, content_type="application/json",
                                HTTP_X_FORWARDED_PROTO="https")
            docs = client.get("/api/schema/", HTTP_X_FORWARDED_PROTO="https")
            print(json.dumps({
                "plain": [plain.status_code, plain.get("Location")],
                "health_redirected": health.status_code in (301, 302),
                "https": [https.status_code, https.get("Strict-Transport-Security"), https.json()],
                "relay": relay.status_code,
                "docs": docs.status_code,
                "cookies_secure": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
                "debug": settings.DEBUG,
                "csrf_origins": settings.CSRF_TRUSTED_ORIGINS,
            }))
            """
        )
        env = {
            **SECRETS_ONLY,
            "RELAY_ALLOW_PLAINTEXT": "true",  # the probe needs no dependency, only HTTP's rules
            "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://relay.example.com",
            "DJANGO_DEBUG": "true",
            "DATABASE_URL": f"sqlite:///{settings.RELAY_VAR_DIR / 'fail-closed' / 'db.sqlite3'}",
        }
        result = run(["-c", probe], env, settings_module=self.production)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(seen["plain"], [301, "https://relay.example.com/api/transactions/"])
        self.assertFalse(seen["health_redirected"])
        status, hsts, body = seen["https"]
        self.assertEqual(status, 401)
        self.assertEqual(hsts, "max-age=31536000; includeSubDomains; preload")
        self.assertIn("detail", body)
        self.assertEqual(seen["relay"], 401)
        self.assertEqual(seen["docs"], 401)
        self.assertEqual(seen["cookies_secure"], [True, True])
        self.assertFalse(seen["debug"])
        self.assertEqual(seen["csrf_origins"], ["https://relay.example.com"])


def in_production(args: list[str], database: Path) -> subprocess.CompletedProcess[str]:
    """Python under production settings on its own database file (transport aside)."""
    env = {**SECRETS_ONLY, "RELAY_ALLOW_PLAINTEXT": "true", "DATABASE_URL": f"sqlite:///{database}"}
    return run(args, env, settings_module="project.settings.production")


class DevelopmentSuperuserInProductionTests(SimpleTestCase):
    def test_production_settings_refuse_the_command(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            database = Path(scratch) / "db.sqlite3"
            result = in_production(["manage.py", "ensure_development_superuser"], database)
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn("refused", result.stderr)
            self.assertNotIn("LOCAL DEVELOPMENT SUPERUSER", result.stdout)
            self.assertFalse(database.exists())  # refused before touching any database

    def test_production_settings_refuse_the_development_password_at_login(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            result = in_production(["-c", PRODUCTION_LOGIN], Path(scratch) / "db.sqlite3")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(result.stdout.strip(), "refused")


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def entry_points() -> dict[str, list[str]]:
    """Each process that serves, as the process table starts it, on a port of its own."""
    commands = {
        "web": processes.web_command(free_address()),
        "worker": processes.worker_command(hostname="fail-closed@%h", pool="solo", concurrency=1),
        "grpc": processes.grpc_command(free_address()),
    }
    return {
        name: [sys.executable if part == processes.PYTHON else part for part in command]
        for name, command in commands.items()
    }


class StartUnderProductionSettingsTests(SimpleTestCase):
    """Each process that serves runs the system checks as it starts under production
    settings, and refuses to start on any error, whoever skipped ``manage.py check``."""

    def test_each_refuses_to_start_with_a_weak_key_any_host_or_plaintext(self) -> None:
        cases = {
            "a weak secret key": (
                {**PLAINTEXT_ON_PURPOSE, "DJANGO_SECRET_KEY": "weak-and-short"},
                "relay.E007",
            ),
            "any host": ({**PLAINTEXT_ON_PURPOSE, "DJANGO_ALLOWED_HOSTS": "*"}, "relay.E008"),
            "plaintext without the opt-out": (
                {**PLAINTEXT_ON_PURPOSE, "RELAY_ALLOW_PLAINTEXT": "false"},
                "relay.E001",
            ),
        }
        for name, command in entry_points().items():
            for case, (env, error) in cases.items():
                with self.subTest(process=name, case=case):
                    started = run(command[1:], env, settings_module=PRODUCTION)
                    output = started.stdout + started.stderr
                    self.assertNotEqual(started.returncode, 0, output[-2000:])
                    self.assertIn(f"{name} refuses to start under production settings", output)
                    self.assertIn(error, output)

    def test_each_starts_with_plaintext_allowed_on_purpose_saying_so(self) -> None:
        for name, command in entry_points().items():
            with self.subTest(process=name):
                output = self.start_briefly(command, PLAINTEXT_ON_PURPOSE)
                self.assertIn(f"{name}: ?: (relay.W003) Plaintext allowed on purpose", output)
                self.assertNotIn("refuses to start", output)

    def start_briefly(self, command: list[str], env: dict[str, str]) -> str:
        """Start ``command`` in a clean environment; once it has said its warnings, and still
        runs a few seconds later, stop it: its output."""
        with tempfile.TemporaryFile("w+") as output:
            process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=clean_env(env, settings_module=PRODUCTION),
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                give_up = time.monotonic() + 60
                while "relay.W003" not in read(output) and time.monotonic() < give_up:
                    self.assertIsNone(process.poll(), read(output)[-2000:])
                    time.sleep(0.2)
                time.sleep(3)
                self.assertIsNone(process.poll(), read(output)[-2000:])  # serving, not refused
            finally:
                process.terminate()
                process.wait(timeout=30)
            return read(output)


def read(file: IO[str]) -> str:
    file.seek(0)
    return file.read()
