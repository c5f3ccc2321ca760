"""The local development superuser: made under development settings only, refused elsewhere.

Under production settings, see tests/integration/test_settings_fail_closed.py.
"""

from io import StringIO

from django.conf import settings
from django.contrib.auth import authenticate as check_login
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import RequestFactory, TestCase, override_settings

from ops.stack import admin_login
from relay_app.auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME


def authenticate(*, username: str, password: str) -> User | None:
    """A login as the admin's form makes it, with the request the login lockout counts."""
    user = check_login(RequestFactory().post("/admin/login/"), username=username, password=password)
    assert user is None or isinstance(user, User)
    return user


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
        with override_settings(RELAY_DEVELOPMENT_SUPERUSER=True):
            login = admin_login(settings)
        self.assertIn(f"{DEVELOPMENT_USERNAME} / {DEVELOPMENT_PASSWORD}", login)
        self.assertIn("NOT FOR PRODUCTION", login)
        # Elsewhere: the command that makes a staff user, as it runs with these settings.
        self.assertIn("manage.py createsuperuser", admin_login(settings))
