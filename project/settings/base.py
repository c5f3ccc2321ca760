"""Settings shared by every environment, read from the environment in one place, one module
per concern: Django itself (``core``), ``security``, the ``api``, the ``relay``, ``kafka``,
``celery`` (with Redis), ``grpc`` and ``observability``.

Each setting has the name of its environment variable (Django's own take a ``DJANGO_``
prefix there: ``DJANGO_SECRET_KEY`` is ``SECRET_KEY``); ``.env.example`` lists them all with
their defaults. The defaults are the safe ones: who may do what is closed unless a profile
(``profiles.py``) or the environment opens it.
"""

from .api import *  # noqa: F403
from .celery import *  # noqa: F403
from .core import *  # noqa: F403
from .environment import RENAMED_IN_USE
from .grpc import *  # noqa: F403
from .kafka import *  # noqa: F403
from .observability import *  # noqa: F403
from .relay import *  # noqa: F403
from .security import *  # noqa: F403

# Variables the environment still sets under their old names: {old: new} (relay.W004).
RELAY_RENAMED_VARIABLES = dict(RENAMED_IN_USE)
# The settings in force: "development", "production" or "test" (the profile says which).
RELAY_ENVIRONMENT = "base"
# The profile in force (profiles.py), if any: "development", "secure", "test", "bench"...
RELAY_PROFILE = ""
