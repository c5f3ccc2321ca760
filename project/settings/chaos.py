"""The chaos runs' stack (profiles.CHAOS): production settings as deployed, on loopback ports
of its own, in plaintext on purpose."""

from .environment import use_profile
from .profiles import CHAOS

use_profile(CHAOS)

from .production import *  # noqa: E402,F403

RELAY_PROFILE = "chaos"
