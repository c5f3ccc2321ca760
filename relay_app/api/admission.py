"""Admission of relay requests, before anything else is spent on them.

A relay that cannot be done before its deadline is refused here, ahead of authentication,
throttling and parsing, so that refusing costs next to nothing while the stack is
overloaded (``relay_app/services/admission.py`` says when). Every other request passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from ..metrics import IN_FLIGHT, REFUSED
from ..services.admission import Overloaded, gate
from .arrival import ARRIVED_AT
from .errors import unlogged

# Where a request carries its deadline from here to the view.
DEADLINE_ATTRIBUTE = "relay_deadline"


class RelayAdmissionMiddleware:
    """Holds a place at the gate for each relay request while it is served."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # (method, path) of each relay route: whether it is the original example's. Resolved on
        # first use: the URLconf is not loaded yet when middleware is built.
        self._relays: dict[tuple[str, str], bool] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._relays is None:
            self._relays = {
                ("POST", reverse("relay")): False,
                ("GET", reverse("original-relay")): True,
            }
        original = self._relays.get((request.method or "", request.path))
        if original is None:
            return self.get_response(request)
        try:
            with (
                gate.admit(arrived_at=request.META.get(ARRIVED_AT) or time.time()) as place,
                IN_FLIGHT.track_inprogress(),
            ):
                setattr(request, DEADLINE_ATTRIBUTE, place.deadline)
                response = self.get_response(request)
                place.succeeded = response.status_code == 200
                return response
        except Overloaded as exc:
            REFUSED.labels("at_capacity").inc()
            # The original example's endpoint answers its errors as a JSON string, the API as an
            # object.
            body = f"Error:{exc}" if original else {"detail": str(exc)}
            response = JsonResponse(body, status=exc.status_code, safe=False)
            response["Retry-After"] = str(exc.retry_after)
            return unlogged(response)
