"""The cluster profile of the local stack (``make up-cluster``, profiles.CLUSTER): the secure
profile's production settings, TLS and identities, with several of each process.

Three Kafka brokers and, apart from them, three KRaft controllers; the relay's topics on all
three brokers with two in sync for an acknowledged write; two Celery workers; two gRPC
servers that the client calls round-robin; two web servers behind nginx on HTTP_ADDRESS.
Its data, logs, pids and identities (``tls/``) live in ``var/cluster/``.
"""

import os

from .environment import use_profile
from .profiles import CLUSTER, with_local_tls

use_profile(with_local_tls(CLUSTER, os.environ))

from .production import *  # noqa: E402,F403

RELAY_PROFILE = "cluster"
