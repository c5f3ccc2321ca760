"""Which representation a request gets: the browsable API (HTML) is for people signed in."""

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer
from rest_framework.request import Request


class BrowsableForSignedInPeople(DefaultContentNegotiation):
    """DRF's negotiation, offering the browsable API only to a browser signed in with a
    session, or to anyone where the API docs are public (``RELAY_PUBLIC_API_DOCS``).

    Anyone else gets JSON: a browser's ``*/*`` picks it, so an anonymous visitor in
    production reads a 401 in JSON rather than a page describing the API. Negotiation runs
    before the view authenticates, so this looks at the session's user, which Django's own
    middleware has found (an API token is for programs, which want JSON anyway).
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> Any:
        session_user = getattr(request._request, "user", None)
        signed_in = bool(session_user is not None and session_user.is_authenticated)
        if not (signed_in or settings.RELAY_PUBLIC_API_DOCS):
            renderers = [r for r in renderers if not isinstance(r, BrowsableAPIRenderer)]
        return super().select_renderer(request, renderers, format_suffix)


class AcceptHeaderOnly(DefaultContentNegotiation):
    """The representation the ``Accept`` header asks for, whatever a ``?format=`` says: probes
    and scrapers (``/healthz``, ``/readyz``) read the header alone, and an unknown format in
    the URL is no reason to answer 404."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)  # type: ignore[assignment]
