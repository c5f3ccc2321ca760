"""Template tags of the relay's own pages (the landing page, the login page)."""

from typing import Any

from django import template
from django.conf import settings

from ..auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME

register = template.Library()


@register.inclusion_tag("relay_app/login_hint.html")
def login_hint() -> dict[str, Any]:
    """Who can log in, from the settings alone: development's superuser where the settings
    make one, otherwise any user with a password (one made by ``create_api_token`` has
    only a token until it is given a password)."""
    if settings.RELAY_DEVELOPMENT_SUPERUSER:
        return {"username": DEVELOPMENT_USERNAME, "password": DEVELOPMENT_PASSWORD}
    return {}
