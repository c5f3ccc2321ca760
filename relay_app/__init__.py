"""The relay: carries a message REST → Kafka → gRPC → Kafka → REST and records every hop."""
