"""The client's network address, as the throttles and the login lockout count it."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str | None:
    """The IP address the request came from, through at most ``RELAY_TRUSTED_PROXY_COUNT``
    proxies; ``None`` if there is none (a Unix socket, say).

    Each proxy appends the address it received the request from to X-Forwarded-For, so the
    client's is the one that many entries from the end; anything before it was written by
    the client and proves nothing. With no trusted proxy the header is ignored altogether,
    and so it is on a connection that does not come from RELAY_TRUSTED_PROXY_ADDRESSES (when
    set); an entry that is no IP address counts as no entry.
    """
    remote = _valid(str(request.META.get("REMOTE_ADDR") or ""))
    proxies: int = settings.RELAY_TRUSTED_PROXY_COUNT
    trusted: list[str] = settings.RELAY_TRUSTED_PROXY_ADDRESSES
    if proxies <= 0 or (trusted and remote not in trusted):
        return remote  # no proxy, or this connection does not come from one
    forwarded = [
        entry
        for entry in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if entry.strip()
    ]
    if not forwarded:
        return remote
    # Fewer entries than proxies: it passed fewer of them, and the first entry is still a proxy's.
    return _valid(forwarded[-min(proxies, len(forwarded))]) or remote
