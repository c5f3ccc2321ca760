"""The cluster chaos runs' stack (profiles.CHAOS_CLUSTER): production settings as deployed,
on loopback ports of its own, in plaintext on purpose."""

from .environment import use_profile
from .profiles import CHAOS_CLUSTER

use_profile(CHAOS_CLUSTER)

from .production import *  # noqa: E402,F403

RELAY_PROFILE = "chaos-cluster"
