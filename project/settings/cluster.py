"""The cluster profile of the local stack (``make up-cluster``): development's conveniences,
with several of each process on this machine.

Three Kafka brokers and, apart from them, three KRaft controllers; the relay's topics on all
three brokers with two in sync for an acknowledged write; two Celery workers; two gRPC
servers that the client calls round-robin; two web servers behind nginx on
RELAY_HTTP_ADDRESS. Its data, logs and pids live in ``var/cluster/``.
"""

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent.parent
for _name, _value in {
    "RELAY_VAR_DIR": str(_ROOT / "var" / "cluster"),
    "RELAY_KAFKA_BROKERS": "3",
    "RELAY_WORKERS": "2",
    "RELAY_GRPC_SERVERS": "2",
    "RELAY_WEB_SERVERS": "2",
    # A Kafka node's death stalls its partitions until the others fence it (2 s, see
    # ops/kafka/cluster.properties.template) and elect new leaders: one Kafka operation may
    # take that long plus a retry before Kafka counts as down.
    "KAFKA_TIMEOUT_SECONDS": "3.5",
}.items():
    os.environ.setdefault(_name, _value)

from .development import *  # noqa: E402,F403

RELAY_ENVIRONMENT = "cluster"
