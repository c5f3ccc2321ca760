"""Development settings: a local key, DEBUG and a local superuser, for ``make run`` only."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "development-only-not-secret")
os.environ.setdefault("DJANGO_DEBUG", "true")

from .base import *  # noqa: F403

# `make run` creates a local superuser with a printed password (ensure_development_superuser).
RELAY_DEVELOPMENT_SUPERUSER = True
