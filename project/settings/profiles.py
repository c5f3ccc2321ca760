"""Every profile the relay runs in, each defined once: the values it gives the environment's
variables where the process's environment sets none.

A profile's settings module (``development.py``, ``secure.py``, ``cluster.py``, ``test.py``,
``bench.py``, ``chaos.py``, ``chaos_cluster.py``) puts its profile in force
(``environment.use_profile``), then loads the settings of its kind: development's, the test
suite's or production's. Whatever starts a stack (``ops/stack.py``, the test runner, the
benchmark, the chaos runs) starts every process with that module, so every process of a
stack reads the same values, and the environment can still set any of them otherwise
(``RELAY_ALLOW_ANONYMOUS_RELAY=false make run``). ``production.py`` puts none in force: a
deployment's environment says everything.

Each local stack has its own folder and ports, so that any two can run at once; the tools'
ports lie below 32768, where Linux never picks a client connection's own port.
"""

from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def local_stack(
    folder: str, *, kafka: int, redis: int, grpc: int, http: int, metrics: int, flower: int
) -> dict[str, str]:
    """Where a local stack keeps its files (``var/<folder>``) and listens (loopback): Kafka's
    controller on the port after its broker's, the web servers on the ports after
    ``http`` (nginx's, which serves Flower on ``flower`` too), the gRPC servers' metrics ten
    above the workers'."""
    return {
        "RELAY_VAR_DIR": str(ROOT / "var" / folder),
        "KAFKA_ADDRESS": f"127.0.0.1:{kafka}",
        "REDIS_URL": f"redis://127.0.0.1:{redis}/0",
        "GRPC_ADDRESS": f"127.0.0.1:{grpc}",
        "HTTP_ADDRESS": f"127.0.0.1:{http}",
        "RELAY_WORKER_METRICS_ADDRESS": f"127.0.0.1:{metrics}",
        "RELAY_GRPC_METRICS_ADDRESS": f"127.0.0.1:{metrics + 10}",
        "FLOWER_ADDRESS": f"127.0.0.1:{flower}",
    }


def traced_to_zipkin(port: int) -> dict[str, str]:
    """Every process traced to the stack's own Zipkin on ``port`` (loopback), which the
    stack starts; its UI at http://127.0.0.1:<port>/zipkin/."""
    return {
        "ZIPKIN_ADDRESS": f"127.0.0.1:{port}",
        "OTEL_TRACES_EXPORTER": "zipkin_json",
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT": f"http://127.0.0.1:{port}/api/v2/spans",
    }


# Several of each process on one machine (make up-cluster, make chaos-cluster). A Kafka node's
# death stalls its partitions until the others fence it (2 s, ops/kafka/cluster.properties.
# template) and elect new leaders: one Kafka operation may take that long plus a retry.
_CLUSTER = {
    "RELAY_KAFKA_BROKERS": "3",
    "RELAY_WORKERS": "2",
    "RELAY_GRPC_SERVERS": "2",
    "RELAY_WEB_SERVERS": "2",
    "KAFKA_TIMEOUT_SECONDS": "3.5",
}

# make run / make up: a local key, DEBUG, a local superuser, anonymous relaying, public API
# docs and gRPC reflection, so the demo needs no setup; traced to the stack's own collector.
# Not for production: its keys are the repository's, and anyone on the machine may use it.
DEVELOPMENT = {
    **local_stack("", kafka=9092, redis=6379, grpc=50051, http=8000, metrics=9464, flower=5555),
    # "django-insecure-" and "insecure-": production refuses such keys.
    "DJANGO_SECRET_KEY": "django-insecure-development-only",
    "RELAY_CHAIN_SIGNING_KEY": "insecure-development-chain-signing-key-of-the-repository",
    "RELAY_GRPC_CAPABILITY_KEY": "insecure-development-grpc-capability-key-of-the-repository",
    "DJANGO_DEBUG": "true",
    "RELAY_ALLOW_ANONYMOUS_RELAY": "true",
    "RELAY_PUBLIC_API_DOCS": "true",
    "RELAY_GRPC_REFLECTION": "true",
    "RELAY_TRANSACTION_LOG_CONSOLE": "true",
    **traced_to_zipkin(9411),
    "OTEL_BSP_SCHEDULE_DELAY": "500",
}

# The local stacks under production settings (secure, cluster): TLS and credentials on every
# hop; keys, passwords and certificates of their own, made by ops/tls.py in <RELAY_VAR_DIR>/tls
# and handed to each process by the table of processes, each only what it needs
# (docs/security.md); traced to the stack's Zipkin through the proxy, over TLS.
_LOCAL_PRODUCTION = {
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    # nginx terminates TLS in front of the web servers and says so.
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    # No HSTS: a browser would refuse development's plain http://localhost:8000 for a year.
    "DJANGO_SECURE_HSTS_SECONDS": "0",
    # What runs without a role of the table (a manage.py command typed by hand) is given no
    # secret and needs none.
    "RELAY_PROCESS_ROLE": "command",
    **traced_to_zipkin(9411),
    "OTEL_BSP_SCHEDULE_DELAY": "500",
}


# The relay's own Kafka user in those stacks (the workers'): its topics and nothing else.
RELAY_KAFKA_USER = "relay"


def with_local_tls(profile: dict[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """``profile`` with TLS on every hop, verified against the CA of ops/tls.py's folder
    (``<RELAY_VAR_DIR>/tls``, the environment's or the profile's): what every process of
    the stack may know. Each process's own key and secrets come from the table of processes."""
    folder = Path(environ.get("RELAY_VAR_DIR", profile["RELAY_VAR_DIR"])) / "tls"
    ca = str(folder / "ca.pem")
    zipkin = environ.get("ZIPKIN_ADDRESS", profile.get("ZIPKIN_ADDRESS", ""))
    return {
        **profile,
        "RELAY_TLS_DIR": str(folder),
        "REDIS_URL": profile["REDIS_URL"].replace("redis://", "rediss://", 1),
        "REDIS_TLS_CA_FILE": ca,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": RELAY_KAFKA_USER,
        "KAFKA_TLS_CA_FILE": ca,
        "GRPC_TLS_CA_FILE": ca,
        "GRPC_SERVER_TLS_CA_FILE": ca,
        "HTTP_TLS_CERT_FILE": str(folder / "proxy.pem"),
        "HTTP_TLS_KEY_FILE": str(folder / "proxy-key.pem"),
        "HTTP_TLS_CA_FILE": ca,
        "RELAY_METRICS_TLS_CA_FILE": ca,
        # Spans go to the proxy in front of Zipkin, over TLS, each process with its certificate.
        **(
            {
                "OTEL_EXPORTER_ZIPKIN_ENDPOINT": f"https://{zipkin}/api/v2/spans",
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": ca,
            }
            if zipkin
            else {}
        ),
    }


# make up-secure: the development stack's processes and ports, under production settings.
SECURE = {
    **local_stack(
        "secure", kafka=9092, redis=6379, grpc=50051, http=8000, metrics=9464, flower=5555
    ),
    **_LOCAL_PRODUCTION,
}

# make up-cluster: three Kafka brokers (and three KRaft controllers apart), two workers, two
# gRPC servers and two web servers behind nginx, under production settings as secure's.
CLUSTER = {
    **local_stack(
        "cluster", kafka=9092, redis=6379, grpc=50051, http=8000, metrics=9464, flower=5555
    ),
    **_LOCAL_PRODUCTION,
    **_CLUSTER,
}

# The test suite (make test): its own ports and folder, so it never meets a running stack.
TEST = {
    **local_stack(
        "test", kafka=19092, redis=16379, grpc=15051, http=18000, metrics=19464, flower=15555
    ),
    "DJANGO_SECRET_KEY": "django-insecure-test-only",
    "RELAY_CHAIN_SIGNING_KEY": "insecure-test-chain-signing-key-of-the-repository",
    "RELAY_GRPC_CAPABILITY_KEY": "insecure-test-grpc-capability-key-of-the-repository",
    # Traced, to the stack's own Zipkin (tests/integration/test_tracing.py reads it back), but
    # only the requests whose client sends a sampled traceparent: exporting every span of
    # hundreds of relays cost the CPU that pushed the 200-clients test past its deadlines.
    **traced_to_zipkin(19411),
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0",
    "RELAY_METRICS_TOKEN": "test-only-scraper-token",
    "RELAY_WORKER_CONCURRENCY": "4",
    # The original example's lines go to the transaction log file only; the suite's output stays
    # readable.
    "RELAY_TRANSACTION_LOG_CONSOLE": "false",
    # The suite relays hundreds of messages as one user; the throttle's own tests set a rate.
    "RELAY_THROTTLE_RATE": "100000/second",
    "RELAY_ANONYMOUS_THROTTLE_RATE": "100000/second",
    # Event streams' heartbeats come soon enough to be seen, and a client that left noticed.
    "RELAY_EVENTS_HEARTBEAT_SECONDS": "0.5",
}

# The benchmark's and the chaos runs' stacks: production settings as deployed, on loopback,
# in plaintext on purpose (they measure the relay's own cost), untraced (the benchmark's
# --tracing traces it to a Zipkin of its own), one user driving the whole load at a rate its
# throttle never reaches. Their secret keys are made for each run (ops/stack.py, fresh_stack).
_TOOL = {
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "RELAY_ALLOW_PLAINTEXT": "true",
    "RELAY_THROTTLE_RATE": "100000/second",
    "RELAY_TRANSACTION_LOG_CONSOLE": "false",
    "OTEL_TRACES_EXPORTER": "none",
}
BENCH = {
    **_TOOL,
    **local_stack(
        "bench", kafka=22092, redis=22379, grpc=22051, http=22000, metrics=22464, flower=22555
    ),
}
CHAOS = {
    **_TOOL,
    **local_stack(
        "chaos", kafka=23092, redis=23379, grpc=23051, http=23000, metrics=23464, flower=23555
    ),
}
CHAOS_CLUSTER = {
    **_TOOL,
    **local_stack(
        "chaos-cluster",
        kafka=24092,
        redis=24379,
        grpc=24051,
        http=24000,
        metrics=24464,
        flower=24555,
    ),
    **_CLUSTER,
    # A transaction whose waiter died with its web server is timed out within seconds.
    "RELAY_STALE_GRACE_SECONDS": "1",
    "RELAY_SWEEP_INTERVAL_SECONDS": "2",
}
