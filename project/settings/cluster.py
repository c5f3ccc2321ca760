"""The cluster profile of the local stack (``make up-cluster``, profiles.CLUSTER):
development's conveniences, with several of each process on this machine.

Three Kafka brokers and, apart from them, three KRaft controllers; the relay's topics on all
three brokers with two in sync for an acknowledged write; two Celery workers; two gRPC
servers that the client calls round-robin; two web servers behind nginx on HTTP_ADDRESS.
Its data, logs and pids live in ``var/cluster/``.
"""

from .environment import use_profile
from .profiles import CLUSTER

use_profile(CLUSTER)

from .development import *  # noqa: E402,F403

RELAY_PROFILE = "cluster"
