"""System checks (``manage.py check``; ``make check-deploy`` fails on any warning)."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

# What development settings turn on for the demo's sake, and production must not:
# (setting, its check's id, what it opens to anyone, what to do instead).
DEVELOPMENT_CONVENIENCES = [
    (
        "RELAY_ALLOW_ANONYMOUS_RELAY",
        "relay.W001",
        "anyone who can reach the server may relay messages, limited only by"
        " RELAY_ANONYMOUS_THROTTLE_RATE per address",
        "give clients API tokens (manage.py create_api_token USERNAME)",
    ),
    (
        "RELAY_PUBLIC_API_DOCS",
        "relay.W002",
        "anyone may read the API root, its schema and its docs",
        "signed-in users still see them",
    ),
]


@register(Tags.security)
def development_conveniences_in_production(**_: Any) -> list[CheckMessage]:
    """Each convenience of development that is turned on under production settings."""
    if settings.RELAY_ENVIRONMENT != "production":
        return []
    return [
        Warning(
            f"{name} is on under production settings: {opens}.",
            hint=f"Unset {name}; {instead}.",
            id=check_id,
        )
        for name, check_id, opens, instead in DEVELOPMENT_CONVENIENCES
        if getattr(settings, name)
    ]
