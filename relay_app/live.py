"""The live page: a person types a message and watches its eight hops arrive.

The page itself is static HTML with this app's own script (``static/relay_app/live.js``);
it relays through the API like any client, with ``Prefer: respond-async``, and follows the
transaction's event stream. A session login is needed: the API's rules apply to the page.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from .hops import HOPS, Stage


@require_safe
@ensure_csrf_cookie
@login_required(login_url=reverse_lazy("rest_framework:login"))
def live_page(request: HttpRequest) -> HttpResponse:
    """The page, with the eight hops' rows ready for their timings.

    Signing in goes through the browsable API's login, which takes any user (the admin's
    takes staff only).
    """
    hops = [
        {
            "position": stage.value,
            "slug": stage.slug,
            "kind": stage.slug.split("_")[0],  # rest, kafka or grpc: its colour
            "label": HOPS[stage].description,
        }
        for stage in Stage
    ]
    return render(request, "relay_app/live.html", {"hops": hops})
