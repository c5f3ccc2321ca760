"""The local development superuser's credential, and the guard that refuses it elsewhere."""

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.http import HttpRequest

# Printed by every `make run`: a credential for one developer's machine, never a secret.
DEVELOPMENT_USERNAME = "admin"
DEVELOPMENT_PASSWORD = "development-only"  # noqa: S105 - public, refused outside development


def _refused(password: str | None) -> bool:
    return password == DEVELOPMENT_PASSWORD and not settings.RELAY_DEVELOPMENT_SUPERUSER


class GuardedModelBackend(ModelBackend):
    """Django's ``ModelBackend``, except that the development password opens nothing unless
    the settings are development's.

    A database that came from a development machine may still hold that superuser, and its
    password is printed by every ``make run``: in production it must not log anyone in.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if _refused(password):
            return None
        return super().authenticate(request, username, password, **kwargs)

    async def aauthenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if _refused(password):
            return None
        return await super().aauthenticate(request, username, password, **kwargs)
