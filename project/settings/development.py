"""Development settings, for ``make run`` and ``make up`` only: a local key, DEBUG, a local
superuser, anonymous relaying, public API docs and gRPC reflection, so the demo needs no setup.

Defaults go into the environment (as in ``test``) so every process the stack starts agrees;
any of them can still be set otherwise, e.g. ``RELAY_ALLOW_ANONYMOUS_RELAY=false make run``.
"""

import os

for _name, _value in {
    # "django-insecure-": production refuses such a key, and `check --deploy` flags it.
    "DJANGO_SECRET_KEY": "django-insecure-development-only",
    "DJANGO_DEBUG": "true",
    "RELAY_ALLOW_ANONYMOUS_RELAY": "true",
    "RELAY_PUBLIC_API_DOCS": "true",
    "RELAY_GRPC_REFLECTION": "true",
}.items():
    os.environ.setdefault(_name, _value)

from .base import *  # noqa: E402,F403

RELAY_ENVIRONMENT = "development"
# `make run` creates a local superuser with a printed password (ensure_development_superuser).
RELAY_DEVELOPMENT_SUPERUSER = True
