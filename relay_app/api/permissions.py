"""Who may relay and who may read the API's description; reading transactions needs a login
(the default permission), and each user then sees only their own (``selectors``)."""

from typing import Any

from django.conf import settings
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .authentication import SCRAPER
from .serializers import prefers_async

ANONYMOUS_ASYNC_RELAY = (
    "A token is needed to follow an asynchronous relay (Prefer: respond-async): its url and"
    " events answer only the user who relayed it. Send 'Authorization: Bearer <token>', or"
    " relay without that preference to wait for the answer."
)


class CanRelay(BasePermission):
    """Anyone signed in; anonymous clients too where ``RELAY_ALLOW_ANONYMOUS_RELAY`` is on."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user.is_authenticated or settings.RELAY_ALLOW_ANONYMOUS_RELAY)


class AsyncRelayNeedsCredentials(BasePermission):
    """An asynchronous relay (``Prefer: respond-async``) only for a signed-in client: it is
    followed through links that answer its owner only, which an anonymous client could
    never read. Refused, like any permission, before anything is recorded."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.user.is_authenticated or not prefers_async(request.headers):
            return True
        raise NotAuthenticated(ANONYMOUS_ASYNC_RELAY)


class CanReadApiDocs(BasePermission):
    """The API root, schema and docs: anyone signed in, or anyone where they are public
    (``RELAY_PUBLIC_API_DOCS``, on in development)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user.is_authenticated or settings.RELAY_PUBLIC_API_DOCS)


class CanReadMetrics(BasePermission):
    """Staff users, and the scraper holding ``RELAY_METRICS_TOKEN``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.auth == SCRAPER:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
