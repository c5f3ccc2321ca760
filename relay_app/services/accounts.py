"""Accounts: users made for API tokens, and the local development superuser (development only)."""

import getpass
from typing import Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from ..auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME

DevelopmentSuperuserState = Literal["created", "present", "password changed"]


def development_superuser_ensure() -> DevelopmentSuperuserState:
    """Create the development superuser if missing; say whether it still has its password.

    Raises ``ImproperlyConfigured`` unless the settings allow it
    (``RELAY_DEVELOPMENT_SUPERUSER``, true only in ``project.settings.development``).
    """
    if not settings.RELAY_DEVELOPMENT_SUPERUSER:
        raise ImproperlyConfigured(
            "the development superuser is created under development settings only"
            " (RELAY_DEVELOPMENT_SUPERUSER is off); use `manage.py createsuperuser`"
        )
    users = get_user_model().objects
    user = users.filter(username=DEVELOPMENT_USERNAME).first()
    if user is None:
        users.create_superuser(DEVELOPMENT_USERNAME, password=DEVELOPMENT_PASSWORD)
        return "created"
    return "present" if user.check_password(DEVELOPMENT_PASSWORD) else "password changed"


def user_get_or_create(*, username: str) -> tuple[User, bool]:
    """The user called ``username`` and whether it was made now.

    A new user is not staff and has no password: it signs in with API tokens only. An
    existing user is returned as it is, its flags and password unchanged. Raises Django's
    ``ValidationError`` for a name the user model refuses.
    """
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False
    user = User(username=username)
    user.set_unusable_password()
    user.full_clean()
    user.save()
    return user, True


def operator_name() -> str:
    """Who runs a management command, as the audit trail names them: their login on this
    machine (``cli:`` before it), since a command has no signed-in user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container's numeric user): the command alone
        return "cli"
