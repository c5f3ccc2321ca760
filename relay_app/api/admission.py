"""Admission of relay requests, before Django is touched.

A relay waits here for a place while the web process carries as many as it may, and one
that cannot be done before its deadline is refused here, in a WSGI application wrapped
around Django's (``project/wsgi.py``): ahead of Django's request handling, its middleware,
authentication, throttling, parsing and the database, so that waiting and refusing cost next
to nothing while the stack is overloaded (``relay_app/services/admission.py`` says when). The
refusal is a 503 with a JSON body and ``Retry-After``, spread so that refused clients do not
return together. While this process has places for them, the answer is held for that pause (up
to half the deadline; ``Retry-After`` is what is left of it): a client that asks again at once,
as most do, then does not spin. Every other request passes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.urls import reverse

from ..metrics import IN_FLIGHT, REFUSED
from ..services.admission import Overloaded, gate, holds
from .arrival import ARRIVED_AT, REFUSED_AT_CAPACITY

# Where a relay's deadline (seconds since the epoch) is handed from here to the view, in its
# WSGI environ (``request.META``).
DEADLINE_KEY = "relay.deadline"

WsgiApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def admitting(application: WsgiApplication) -> WsgiApplication:
    """``application`` with each relay request first admitted, or refused, here."""
    # (method, path) of each relay route: whether it is the original example's. Resolved on
    # first use: the URLconf is not loaded yet when the application is built.
    relays: dict[tuple[str, str], bool] = {}

    def admitted(request: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # ``request``: its WSGI environ.
        if not relays:
            relays.update(
                {("POST", reverse("relay")): False, ("GET", reverse("original-relay")): True}
            )
        original = relays.get((request.get("REQUEST_METHOD", ""), request.get("PATH_INFO", "")))
        if original is None:
            return application(request, start_response)
        try:
            with (
                gate.admit(arrived_at=request.get(ARRIVED_AT) or time.time()) as place,
                IN_FLIGHT.track_inprogress(),
            ):
                request[DEADLINE_KEY] = place.deadline
                # Django's answer to a relay is whole when it returns (never a stream); the
                # relay service tells the place how its relay ended (``relay_ended``).
                return application(request, start_response)
        except Overloaded as refusal:
            REFUSED.labels("at_capacity").inc()
            # The web server counts this request's CPU as a refusal's (project/webserver.py).
            request[REFUSED_AT_CAPACITY] = True
            return refuse(refusal, original=original, start_response=start_response)

    return admitted


def refuse(
    refusal: Overloaded, *, original: bool, start_response: Callable[..., Any]
) -> list[bytes]:
    """The 503 answer to a refused relay, held for (part of) its pause first if there is a
    place; its ``Retry-After`` the rest of the pause."""
    with holds.place(refusal) as held:
        if held:  # even a sleep of 0 gives up the GIL and costs a system call
            time.sleep(held)
    retry_after = 0 if held >= refusal.pause else math.ceil(refusal.pause - held)
    detail = f"the relay is at capacity: try again in {retry_after} s"
    # The original example's endpoint answers its errors as a JSON string, the API as an object.
    body = json.dumps(f"Error:{detail}" if original else {"detail": detail}).encode()
    start_response(
        "503 Service Unavailable",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Retry-After", str(retry_after)),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [body]
