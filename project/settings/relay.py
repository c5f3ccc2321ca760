"""The relay itself: one deadline per transaction, the longest message, settling and keeping
transactions, and how many of each process the local stack runs."""

from .environment import days_or_off, env

# One budget per transaction, shared by every hop (seconds).
RELAY_DEADLINE_SECONDS = env.float("RELAY_DEADLINE_SECONDS", default=5.0)
# Admission (relay_app/services/admission.py): the rate a web process assumes after a start,
# in relays per second (0: none, a fixed number at once until it has measured one), and how
# fast a measured rate fades over a quiet spell.
RELAY_ADMISSION_INITIAL_RATE = env.float("RELAY_ADMISSION_INITIAL_RATE", default=0.0)
RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS = env.float(
    "RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS", default=120.0
)
# Longest message accepted, in characters. Even at 4 UTF-8 bytes a character and with the
# hops' own text, a record stays far below Kafka's 1 MB default limit.
RELAY_MESSAGE_MAX_LENGTH = env.int("RELAY_MESSAGE_MAX_LENGTH", default=10_000)

# A transaction still pending this long after its deadline lost its waiter; the sweep
# (`manage.py settle_stale_transactions`) times it out.
RELAY_STALE_GRACE_SECONDS = env.float("RELAY_STALE_GRACE_SECONDS", default=30.0)

# How often the worker's beat runs that sweep (seconds).
RELAY_SWEEP_INTERVAL_SECONDS = env.float("RELAY_SWEEP_INTERVAL_SECONDS", default=15.0)
# Settled transactions older than this many days are deleted with their hops by the worker's
# beat (`manage.py purge_transactions` by hand); "off" keeps them for ever.
RELAY_RETENTION_DAYS = days_or_off("RELAY_RETENTION_DAYS", default="30")

# How many of each process the local stack runs (ops/processes.py); the cluster profile
# (make up-cluster) runs several. Several brokers and servers take consecutive ports from the
# first address of KAFKA_ADDRESS, GRPC_ADDRESS and HTTP_ADDRESS.
RELAY_KAFKA_BROKERS = env.int("RELAY_KAFKA_BROKERS", default=1)
RELAY_WORKERS = env.int("RELAY_WORKERS", default=1)
RELAY_GRPC_SERVERS = env.int("RELAY_GRPC_SERVERS", default=1)
RELAY_WEB_SERVERS = env.int("RELAY_WEB_SERVERS", default=1)
