"""The local development superuser: made under development settings only, refused elsewhere."""

import os
import subprocess
import sys
import tempfile
import textwrap
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.contrib.auth import authenticate as check_login
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import RequestFactory, TestCase, override_settings

from ops.stack import Stack, _admin_login
from relay_app.auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME

# What a production machine sets, and nothing from the test settings' defaults.
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "project.settings.production",
    "DJANGO_SECRET_KEY": "production-test-key-not-the-development-one",
    "DJANGO_ALLOWED_HOSTS": "relay.example",
    # These tests are about logins; the transport's own checks are tested elsewhere.
    "RELAY_ALLOW_PLAINTEXT": "true",
}

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


def authenticate(*, username: str, password: str) -> User | None:
    """A login as the admin's form makes it, with the request the login lockout counts."""
    user = check_login(RequestFactory().post("/admin/login/"), username=username, password=password)
    assert user is None or isinstance(user, User)
    return user


def production(args: list[str], database: Path) -> subprocess.CompletedProcess[str]:
    """Run Python with the production settings on its own database file."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RELAY_"))},
        **PRODUCTION_ENV,
        "DATABASE_URL": f"sqlite:///{database}",
        "RELAY_VAR_DIR": str(database.parent),
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class DevelopmentSuperuserTests(TestCase):
    @override_settings(RELAY_DEVELOPMENT_SUPERUSER=True)
    def test_development_settings_create_it_once_and_say_loudly_how_to_log_in(self) -> None:
        out = StringIO()
        call_command("ensure_development_superuser", stdout=out)
        call_command("ensure_development_superuser", stdout=out)
        self.assertIn("LOCAL DEVELOPMENT SUPERUSER", out.getvalue())
        self.assertIn(f"password {DEVELOPMENT_PASSWORD!r} (created)", out.getvalue())
        self.assertIn("(present)", out.getvalue())
        user = get_user_model().objects.get(username=DEVELOPMENT_USERNAME)
        self.assertTrue(user.is_superuser and user.is_staff)
        self.assertEqual(
            authenticate(username=DEVELOPMENT_USERNAME, password=DEVELOPMENT_PASSWORD), user
        )

    @override_settings(RELAY_DEVELOPMENT_SUPERUSER=True)
    def test_a_password_the_developer_changed_is_kept(self) -> None:
        get_user_model().objects.create_superuser(DEVELOPMENT_USERNAME, password="mine-now-1")
        out = StringIO()
        call_command("ensure_development_superuser", stdout=out)
        self.assertIn("with the password you gave it", out.getvalue())
        self.assertIsNotNone(authenticate(username=DEVELOPMENT_USERNAME, password="mine-now-1"))

    def test_other_settings_refuse_to_create_it_and_refuse_its_password(self) -> None:
        self.assertFalse(settings.RELAY_DEVELOPMENT_SUPERUSER)
        with self.assertRaisesMessage(CommandError, "refused"):
            call_command("ensure_development_superuser", stdout=StringIO())
        self.assertFalse(get_user_model().objects.exists())
        get_user_model().objects.create_superuser(
            DEVELOPMENT_USERNAME, password=DEVELOPMENT_PASSWORD
        )
        self.assertIsNone(
            authenticate(username=DEVELOPMENT_USERNAME, password=DEVELOPMENT_PASSWORD)
        )

    def test_make_run_says_how_to_log_into_the_admin(self) -> None:
        stack = Stack(var_dir=settings.VAR_DIR / "stack-test")
        with override_settings(RELAY_DEVELOPMENT_SUPERUSER=True):
            login = _admin_login(stack)
        self.assertIn(f"{DEVELOPMENT_USERNAME} / {DEVELOPMENT_PASSWORD}", login)
        self.assertIn("LOCAL DEVELOPMENT CREDENTIAL", login)
        self.assertIn("createsuperuser", _admin_login(stack))

    def test_production_settings_refuse_the_command(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            database = Path(scratch) / "db.sqlite3"
            result = production(["manage.py", "ensure_development_superuser"], database)
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn("refused", result.stderr)
            self.assertNotIn("LOCAL DEVELOPMENT SUPERUSER", result.stdout)
            self.assertFalse(database.exists())  # refused before touching any database

    def test_production_settings_refuse_the_development_password_at_login(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            result = production(["-c", PRODUCTION_LOGIN], Path(scratch) / "db.sqlite3")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(result.stdout.strip(), "refused")
