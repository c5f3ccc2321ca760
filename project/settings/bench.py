"""The bench runs' stack (profiles.BENCH): production settings as deployed, on loopback ports
of its own, in plaintext on purpose."""

from .environment import use_profile
from .profiles import BENCH

use_profile(BENCH)

from .production import *  # noqa: E402,F403

RELAY_PROFILE = "bench"
