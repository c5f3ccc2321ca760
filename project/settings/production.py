"""Production settings: they fail closed.

Nothing starts without ``DJANGO_SECRET_KEY`` and ``DJANGO_ALLOWED_HOSTS``; DEBUG is off
whatever the environment says; HTTPS is required (redirect, HSTS, secure cookies, with no
switch to turn them off). Behind a TLS-terminating proxy, say which header it sets
(``DJANGO_SECURE_PROXY_SSL_HEADER``). ``make check-deploy`` checks all of this.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY, env

RELAY_ENVIRONMENT = "production"
DEBUG = False
# Never the local development superuser: not created, and its password refused at login.
RELAY_DEVELOPMENT_SUPERUSER = False

# Development's and test's keys are in the repository, and marked as Django marks its own.
if not SECRET_KEY.strip() or SECRET_KEY.startswith("django-insecure-"):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be a secret of your own (e.g. the output of"
        " `python -c 'import secrets; print(secrets.token_urlsafe(50))'`), not empty and not"
        " one of the repository's django-insecure- keys"
    )

ALLOWED_HOSTS = [host for host in env.list("DJANGO_ALLOWED_HOSTS", default=[]) if host]
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must name the host names this server answers for,"
        " comma-separated (e.g. relay.example.com)"
    )
# Origins (scheme and host) from which a logged-in browser may POST, when not the host itself.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS only. A plain-HTTP request is redirected, except the health check, which load
# balancers and the local stack probe over plain HTTP from inside the network.
SECURE_SSL_REDIRECT = True
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True


def _proxy_ssl_header() -> tuple[str, str] | None:
    """``HTTP_X_FORWARDED_PROTO,https``: the header a TLS-terminating proxy sets, and its value.

    Trusted only when configured: the proxy must set or strip that header on every request,
    or any client could claim to have come over HTTPS.
    """
    raw = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    if not header.startswith("HTTP_") or not value:
        raise ImproperlyConfigured(
            "DJANGO_SECURE_PROXY_SSL_HEADER must be the header's WSGI name and its value,"
            f" e.g. HTTP_X_FORWARDED_PROTO,https; not {raw!r}"
        )
    return header, value


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
