"""``Authorization: Bearer <token>``: how API clients say who they are."""

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from ..services.tokens import api_token_authenticate


def _credentials(request: Request) -> tuple[str, str]:
    """The ``Authorization`` header's scheme and credentials, each stripped ("" if absent)."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    return scheme, token.strip()


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """An API token in the ``Authorization`` header (``manage.py create_api_token`` makes one).

    Any other scheme in that header is refused rather than ignored: HTTP Basic would
    otherwise pass silently as an anonymous request. A request without the header is left
    to the next authentication (a browser's session).
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if not request.META.get("HTTP_AUTHORIZATION"):
            return None
        scheme, token = _credentials(request)
        if scheme.lower() != self.keyword.lower():
            raise exceptions.AuthenticationFailed(
                f"Send an API token as 'Authorization: Bearer <token>'; the {scheme!r} scheme"
                " is not accepted."
            )
        if not token or any(character.isspace() for character in token):
            raise exceptions.AuthenticationFailed(
                "The Authorization header must be 'Bearer <token>', with one token."
            )
        found = api_token_authenticate(token=token)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        return found

    def authenticate_header(self, request: Request) -> str:
        """Makes a missing or wrong credential a 401 (not a 403) that names the scheme."""
        return f'{self.keyword} realm="relay"'


SCRAPER = "metrics scraper"


class ScraperTokenAuthentication(authentication.BaseAuthentication):
    """``RELAY_METRICS_TOKEN`` as a bearer token: a Prometheus scraper, which is no user.

    Any other header is left to the next authentication (a staff user's API token)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        expected = settings.RELAY_METRICS_TOKEN
        scheme, token = _credentials(request)
        if not expected or scheme.lower() != BearerTokenAuthentication.keyword.lower():
            return None
        if hmac.compare_digest(token.encode(), expected.encode()):
            return (AnonymousUser(), SCRAPER)
        return None

    def authenticate_header(self, request: Request) -> str:
        """As for API tokens: no credentials is a 401 that names the scheme."""
        return f'{BearerTokenAuthentication.keyword} realm="relay"'
