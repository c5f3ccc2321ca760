"""Development settings: a local key and DEBUG, for ``make run`` and ``make test`` only."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "development-only-not-secret")
os.environ.setdefault("DJANGO_DEBUG", "true")

from .base import *  # noqa: F403
