"""Accounts: the local development superuser, under development settings only."""

from typing import Literal

from django.conf import settings
from django.contrib.auth import get_user_model
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
