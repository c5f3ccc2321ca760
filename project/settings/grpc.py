"""gRPC: the servers of hop 5, the client's connection, mutual TLS and reflection."""

from .environment import addresses, env
from .relay import RELAY_GRPC_SERVERS

# The gRPC servers: the client balances its calls over all of them (round_robin), and over
# every address a name resolves to (a scaled compose service).
GRPC_ADDRESS = addresses("GRPC_ADDRESS", "127.0.0.1:50051", count=RELAY_GRPC_SERVERS, step=1)
# How long the gRPC client waits for a connection before the server counts as unavailable.
GRPC_CONNECT_TIMEOUT_SECONDS = env.float("GRPC_CONNECT_TIMEOUT_SECONDS", default=1.5)
# A CA turns TLS on for the client, which then verifies the server's certificate and, with its
# own, authenticates (mutual TLS). A certificate and key turn TLS on for the server, which then
# requires client certificates signed by GRPC_SERVER_TLS_CA_FILE.
GRPC_TLS_CA_FILE = env.str("GRPC_TLS_CA_FILE", default="")
GRPC_TLS_CERT_FILE = env.str("GRPC_TLS_CERT_FILE", default="")
GRPC_TLS_KEY_FILE = env.str("GRPC_TLS_KEY_FILE", default="")
GRPC_SERVER_TLS_CERT_FILE = env.str("GRPC_SERVER_TLS_CERT_FILE", default="")
GRPC_SERVER_TLS_KEY_FILE = env.str("GRPC_SERVER_TLS_KEY_FILE", default="")
GRPC_SERVER_TLS_CA_FILE = env.str("GRPC_SERVER_TLS_CA_FILE", default="")
# Over mutual TLS, the certificates (by common name) the server takes a call of the relay
# from: the workers' alone; and those whose health checks it answers: readiness checks too.
GRPC_SERVER_TLS_CLIENT_NAMES = env.list("GRPC_SERVER_TLS_CLIENT_NAMES", default=["worker"])
GRPC_SERVER_TLS_HEALTH_CLIENT_NAMES = env.list(
    "GRPC_SERVER_TLS_HEALTH_CLIENT_NAMES", default=["worker", "web", "probe"]
)
# Server reflection lets any client list and describe the services: development only.
RELAY_GRPC_REFLECTION = env.bool("RELAY_GRPC_REFLECTION", default=False)
