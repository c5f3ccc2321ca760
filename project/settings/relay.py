"""The relay itself: one deadline per transaction, the longest message, settling and keeping
transactions, and how many of each process the local stack runs."""

from .environment import days_or_off, env, rate

# One budget per transaction, shared by every hop (seconds).
RELAY_DEADLINE_SECONDS = env.float("RELAY_DEADLINE_SECONDS", default=5.0)
# Admission (relay_app/services/admission.py): the rate a web process assumes after a start,
# in relays per second (0: none, a fixed number at once until it has measured one), and how
# fast a measured rate fades over a quiet spell.
RELAY_ADMISSION_INITIAL_RATE = env.float("RELAY_ADMISSION_INITIAL_RATE", default=0.0)
RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS = env.float(
    "RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS", default=120.0
)
# Relays a web process carries at once (admission): the rest wait for a place, first come
# first served, while they can still be done in time.
RELAY_ADMISSION_CONCURRENCY = env.int("RELAY_ADMISSION_CONCURRENCY", default=16)
# Refusals a web process holds for their pause (up to half the deadline) before it answers
# them (0: every refusal answered at once). Each holds one of its 128 threads
# (ops/processes.py WEB_THREADS), and only while relays in flight and in line leave one of the
# 96 that relays may take (relay_app/services/admission.py THREADS_FOR_RELAYS).
RELAY_ADMISSION_HELD_REFUSALS = env.int("RELAY_ADMISSION_HELD_REFUSALS", default=56)
# Longest message accepted, in characters. Even at 4 UTF-8 bytes a character and with the
# hops' own text, a record stays far below Kafka's 1 MB default limit.
RELAY_MESSAGE_MAX_LENGTH = env.int("RELAY_MESSAGE_MAX_LENGTH", default=10_000)

# A transaction still pending this long after its deadline lost its waiter; the sweep
# (`manage.py settle_stale_transactions`) times it out.
RELAY_STALE_GRACE_SECONDS = env.float("RELAY_STALE_GRACE_SECONDS", default=30.0)

# How often the worker's beat runs that sweep (seconds).
RELAY_SWEEP_INTERVAL_SECONDS = env.float("RELAY_SWEEP_INTERVAL_SECONDS", default=15.0)
# Settled transactions older than this many days are deleted with their hops by the worker's
# beat (`manage.py purge_transactions` by hand), and bulk jobs that ended that long ago with
# their items (the audit trail stays); "off" keeps them for ever.
RELAY_RETENTION_DAYS = days_or_off("RELAY_RETENTION_DAYS", default="30")
# Bulk jobs (relay_app/services/bulk.py) act on this many transactions at most, all jobs and
# processes together (one token bucket in Redis), so live traffic keeps its throughput: on two
# cores (about 16 relays a second), 3 a second keeps 92 % of it, 10 a second 34 % (make chaos).
RELAY_BULK_RATE = rate("RELAY_BULK_RATE", default="3/second")

# How many of each process the local stack runs (ops/processes.py); the cluster profile
# (make up-cluster) runs several. Several brokers and servers take consecutive ports from the
# first address of KAFKA_ADDRESS, GRPC_ADDRESS and HTTP_ADDRESS.
RELAY_KAFKA_BROKERS = env.int("RELAY_KAFKA_BROKERS", default=1)
RELAY_WORKERS = env.int("RELAY_WORKERS", default=1)
RELAY_GRPC_SERVERS = env.int("RELAY_GRPC_SERVERS", default=1)
RELAY_WEB_SERVERS = env.int("RELAY_WEB_SERVERS", default=1)

# The retry policy of each hop that talks to another server (relay_app/retries.py checks it
# and names the variable at fault): how many attempts in all, the delay before the second
# (seconds), the factor it grows by, its largest value, the jitter (a share of each delay,
# 0-1, taken at random off it), and which errors are worth another attempt. An attempt is
# made only while the time left covers what the hop typically takes, measured by each
# worker process on its successful attempts and seeded with *_TYPICAL_SECONDS.
#
# gRPC (hop 5): status codes worth another attempt; INVALID_ARGUMENT and PERMISSION_DENIED
# never are. A call waits GRPC_CONNECT_TIMEOUT_SECONDS at most for a connection each time.
RELAY_RETRY_GRPC_ATTEMPTS = env.int("RELAY_RETRY_GRPC_ATTEMPTS", default=4)
RELAY_RETRY_GRPC_FIRST_DELAY_SECONDS = env.float(
    "RELAY_RETRY_GRPC_FIRST_DELAY_SECONDS", default=0.05
)
RELAY_RETRY_GRPC_BACKOFF = env.float("RELAY_RETRY_GRPC_BACKOFF", default=2.0)
RELAY_RETRY_GRPC_MAX_DELAY_SECONDS = env.float("RELAY_RETRY_GRPC_MAX_DELAY_SECONDS", default=0.5)
RELAY_RETRY_GRPC_JITTER = env.float("RELAY_RETRY_GRPC_JITTER", default=0.2)
RELAY_RETRY_GRPC_ON = env.list("RELAY_RETRY_GRPC_ON", default=["UNAVAILABLE"])
RELAY_RETRY_GRPC_TYPICAL_SECONDS = env.float("RELAY_RETRY_GRPC_TYPICAL_SECONDS", default=0.02)
# Kafka publish (hops 2 and 6): only what cannot have written a record. ``not_queued``: the
# producer could not take the record (no partition leader known in time); ``unacknowledged``:
# no acknowledgement in time, so the next attempt waits again for the same record, never
# sending it twice (the producer's own retries, idempotent, go on meanwhile).
RELAY_RETRY_KAFKA_PUBLISH_ATTEMPTS = env.int("RELAY_RETRY_KAFKA_PUBLISH_ATTEMPTS", default=3)
RELAY_RETRY_KAFKA_PUBLISH_FIRST_DELAY_SECONDS = env.float(
    "RELAY_RETRY_KAFKA_PUBLISH_FIRST_DELAY_SECONDS", default=0.1
)
RELAY_RETRY_KAFKA_PUBLISH_BACKOFF = env.float("RELAY_RETRY_KAFKA_PUBLISH_BACKOFF", default=2.0)
RELAY_RETRY_KAFKA_PUBLISH_MAX_DELAY_SECONDS = env.float(
    "RELAY_RETRY_KAFKA_PUBLISH_MAX_DELAY_SECONDS", default=0.5
)
RELAY_RETRY_KAFKA_PUBLISH_JITTER = env.float("RELAY_RETRY_KAFKA_PUBLISH_JITTER", default=0.2)
RELAY_RETRY_KAFKA_PUBLISH_ON = env.list(
    "RELAY_RETRY_KAFKA_PUBLISH_ON", default=["not_queued", "unacknowledged"]
)
RELAY_RETRY_KAFKA_PUBLISH_TYPICAL_SECONDS = env.float(
    "RELAY_RETRY_KAFKA_PUBLISH_TYPICAL_SECONDS", default=0.02
)
# Kafka consume (hops 3 and 7): reading has no effect, so ``not_readable`` (the record did not
# arrive in time) and ``broker_error`` (a connection or a leader lost) are worth another read;
# a record of another transaction never is.
RELAY_RETRY_KAFKA_CONSUME_ATTEMPTS = env.int("RELAY_RETRY_KAFKA_CONSUME_ATTEMPTS", default=3)
RELAY_RETRY_KAFKA_CONSUME_FIRST_DELAY_SECONDS = env.float(
    "RELAY_RETRY_KAFKA_CONSUME_FIRST_DELAY_SECONDS", default=0.05
)
RELAY_RETRY_KAFKA_CONSUME_BACKOFF = env.float("RELAY_RETRY_KAFKA_CONSUME_BACKOFF", default=2.0)
RELAY_RETRY_KAFKA_CONSUME_MAX_DELAY_SECONDS = env.float(
    "RELAY_RETRY_KAFKA_CONSUME_MAX_DELAY_SECONDS", default=0.5
)
RELAY_RETRY_KAFKA_CONSUME_JITTER = env.float("RELAY_RETRY_KAFKA_CONSUME_JITTER", default=0.2)
RELAY_RETRY_KAFKA_CONSUME_ON = env.list(
    "RELAY_RETRY_KAFKA_CONSUME_ON", default=["not_readable", "broker_error"]
)
RELAY_RETRY_KAFKA_CONSUME_TYPICAL_SECONDS = env.float(
    "RELAY_RETRY_KAFKA_CONSUME_TYPICAL_SECONDS", default=0.02
)
# While a hop waits on another server, how often it looks whether its transaction was
# cancelled (or otherwise ended), to stop waiting (seconds).
RELAY_CANCEL_CHECK_SECONDS = env.float("RELAY_CANCEL_CHECK_SECONDS", default=0.05)
