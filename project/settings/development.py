"""Development settings, for ``make run`` and ``make up`` only (profiles.DEVELOPMENT): a local
key, DEBUG, a local superuser, anonymous relaying, public API docs and gRPC reflection, so the
demo needs no setup. Not for production: every key here is the repository's."""

from .environment import use_profile
from .profiles import DEVELOPMENT

use_profile(DEVELOPMENT)

from .base import *  # noqa: E402,F403

RELAY_ENVIRONMENT = "development"
RELAY_PROFILE = "development"
# `make run` creates a local superuser with a printed password (ensure_development_superuser).
RELAY_DEVELOPMENT_SUPERUSER = True
