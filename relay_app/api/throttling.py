"""Relay requests per user, or per client address for anonymous clients: 429 beyond the rate."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from ..integrations.rate_limit import get_rate_limiter
from ..metrics import REFUSED
from .client_address import client_address


class RelayThrottle(BaseThrottle):
    """``RELAY_THROTTLE_RATE`` per user, ``RELAY_ANONYMOUS_THROTTLE_RATE`` per address.

    It runs before the view reads the body, so a refused request creates nothing; DRF
    answers 429 with ``Retry-After``.
    """

    def __init__(self) -> None:
        self._wait = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.user.is_authenticated:
            key, rate = f"user:{request.user.pk}", settings.RELAY_THROTTLE_RATE
        else:
            key = f"address:{client_address(request) or 'unknown'}"
            rate = settings.RELAY_ANONYMOUS_THROTTLE_RATE
        self._wait = get_rate_limiter().hit(key, rate)
        if self._wait:
            REFUSED.labels("throttled").inc()
        return self._wait == 0.0

    def wait(self) -> float:
        return self._wait
