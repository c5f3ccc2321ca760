"""Kafka: the brokers, the relay's topics, how long an operation may take, transport security."""

from .environment import addresses, choice, env
from .relay import RELAY_KAFKA_BROKERS

# Every broker; each local one's KRaft controller listens on the port after its broker's.
KAFKA_ADDRESS = addresses("KAFKA_ADDRESS", "127.0.0.1:9092", count=RELAY_KAFKA_BROKERS, step=2)
KAFKA_REQUEST_TOPIC = env.str("KAFKA_REQUEST_TOPIC", default="CommunicationTopic")
KAFKA_REPLY_TOPIC = env.str("KAFKA_REPLY_TOPIC", default="CommunicationRestTopic")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=3)
# Replication of the topics the relay creates: a copy on this many brokers (at most as many
# as there are), and an acknowledged write on at least KAFKA_MIN_INSYNC_REPLICAS of them.
KAFKA_TOPIC_REPLICATION = env.int("KAFKA_TOPIC_REPLICATION", default=min(3, RELAY_KAFKA_BROKERS))
KAFKA_MIN_INSYNC_REPLICAS = env.int(
    "KAFKA_MIN_INSYNC_REPLICAS", default=2 if KAFKA_TOPIC_REPLICATION >= 3 else 1
)
# The longest one Kafka operation (connect, acknowledge, read back) may take before Kafka
# counts as unavailable (503), even when the transaction's deadline leaves more time.
KAFKA_TIMEOUT_SECONDS = env.float("KAFKA_TIMEOUT_SECONDS", default=2.0)
# PLAINTEXT, SSL (a client certificate is the credential) or SASL_SSL (a SCRAM user). Every
# producer, consumer and admin client gets the same options (relay_app/integrations/
# kafka_records.py, client_options).
KAFKA_SECURITY_PROTOCOL = choice(
    "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", ("PLAINTEXT", "SSL", "SASL_SSL")
)
KAFKA_TLS_CA_FILE = env.str("KAFKA_TLS_CA_FILE", default="")  # the CA of the brokers' certs
KAFKA_TLS_CERT_FILE = env.str("KAFKA_TLS_CERT_FILE", default="")  # this client's, over SSL
KAFKA_TLS_KEY_FILE = env.str("KAFKA_TLS_KEY_FILE", default="")
KAFKA_SASL_MECHANISM = env.str("KAFKA_SASL_MECHANISM", default="SCRAM-SHA-512")
KAFKA_SASL_USERNAME = env.str("KAFKA_SASL_USERNAME", default="")
KAFKA_SASL_PASSWORD = env.str("KAFKA_SASL_PASSWORD", default="")
