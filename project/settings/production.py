"""Production settings: they fail closed.

Nothing starts without ``DJANGO_ALLOWED_HOSTS`` and the secrets of its role
(``RELAY_PROCESS_ROLE``, ``ROLE_SECRETS``): ``DJANGO_SECRET_KEY`` and the two keys of
message authentication (``RELAY_CHAIN_SIGNING_KEY``, ``RELAY_GRPC_CAPABILITY_KEY``); DEBUG is off
whatever the environment says; HTTPS is required (redirect, HSTS, secure cookies, with no
switch to turn them off). Behind a TLS-terminating proxy, say which header it sets
(``DJANGO_SECURE_PROXY_SSL_HEADER``). ``make check-deploy`` checks all of this, and
``relay_app/checks.py`` that every hop has TLS and credentials.
"""

import secrets
from collections.abc import Callable

from .base import *  # noqa: F403
from .environment import env, host_names, secret_key, signing_key

RELAY_ENVIRONMENT = "production"
RELAY_PROFILE = "production"
DEBUG = False
# Never the local development superuser: not created, and its password refused at login.
RELAY_DEVELOPMENT_SUPERUSER = False

# The secrets each kind of process uses, and so must be given; a process whose role is not
# said needs them all. None is read where it is not used, so none need be handed out there.
ROLE_SECRETS = {
    "web": ("DJANGO_SECRET_KEY", "RELAY_CHAIN_SIGNING_KEY"),
    "worker": ("RELAY_CHAIN_SIGNING_KEY", "RELAY_GRPC_CAPABILITY_KEY"),
    "grpc": ("RELAY_GRPC_CAPABILITY_KEY",),
    "": ("DJANGO_SECRET_KEY", "RELAY_CHAIN_SIGNING_KEY", "RELAY_GRPC_CAPABILITY_KEY"),
}
_NEEDED = ROLE_SECRETS.get(RELAY_PROCESS_ROLE, ())  # noqa: F405


def _secret(name: str, read: Callable[[str], str]) -> str:
    return read(name) if name in _NEEDED else str(env.str(name, default=""))


# A role that signs nothing for another process (a worker, a gRPC server) is given no key:
# it gets a random one of its own, for whatever reads the setting (Celery's conf command).
SECRET_KEY = _secret("DJANGO_SECRET_KEY", secret_key) or secrets.token_urlsafe(50)
# A weak key is an error of the relay's own here (relay.E007), not Django's warnings.
SILENCED_SYSTEM_CHECKS = ["security.W009", "security.W025"]
ALLOWED_HOSTS = host_names("DJANGO_ALLOWED_HOSTS")
# Message authentication: web servers and workers need the first, workers and gRPC servers
# the second (docs/security.md).
RELAY_CHAIN_SIGNING_KEY = _secret("RELAY_CHAIN_SIGNING_KEY", signing_key)
RELAY_GRPC_CAPABILITY_KEY = _secret("RELAY_GRPC_CAPABILITY_KEY", signing_key)
# Origins (scheme and host) from which a logged-in browser may POST, when not the host itself.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS only. A plain-HTTP request is redirected, except the health and readiness checks,
# which load balancers and the local stack probe over plain HTTP from inside the network.
SECURE_SSL_REDIRECT = True
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
