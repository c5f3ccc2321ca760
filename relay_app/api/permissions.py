"""Who may relay and who may read the API's description; reading transactions needs a login
(the default permission), and each user then sees only their own (``selectors``)."""

from typing import Any

from django.conf import settings
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
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


# Sec-Fetch-Site values of a request a person made on the relay's own pages, or by typing
# the URL: a browser sends the header on every request (Fetch Metadata).
_OWN_SITE = {"same-origin", "none"}
CROSS_SITE_SESSION = (
    "This request came from another site and carries only your session: it relays nothing."
    " Open the URL yourself, or send 'Authorization: Bearer <token>'."
)


class NoCrossSiteSession(BasePermission):
    """A GET that relays (the original example's endpoint) is no safe method: a page of another site
    could make a signed-in person's browser send it (an image, a link) with their session. A session
    is accepted only on a request from the relay's own pages or typed by the person
    (``Sec-Fetch-Site: same-origin`` or ``none``; without that header, an ``Origin`` or
    ``Referer`` of this host); a token, which no other site can attach, always is."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.successful_authenticator, SessionAuthentication):
            return True
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            own = site in _OWN_SITE
        else:
            source = request.headers.get("Origin") or request.headers.get("Referer") or ""
            host = source.partition("://")[2].partition("/")[0]
            own = bool(host) and host == request.get_host()
        if not own:
            raise PermissionDenied(CROSS_SITE_SESSION)
        return True


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
