"""Clients for the outside systems (Kafka, gRPC), one set per process, created after fork."""
