"""Kafka as the tools see it (the chaos runs, the stack, the tests), never on a transaction's
path: every record of a topic, and who leads what."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import KafkaError

from relay_app.integrations.kafka_records import Record, client_options


def read_all(topics: list[str], *, give_up_after: float = 60.0) -> list[Record]:
    """Every record on ``topics``, read to their ends by a consumer of its own: for audits
    of what Kafka holds (the chaos ledger, the tests), never on a transaction's path."""
    with KafkaConsumer(**client_options(), group_id=None, enable_auto_commit=False) as consumer:
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            for number in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[Record] = []
        give_up = time.monotonic() + give_up_after
        while any(consumer.position(partition) < ends[partition] for partition in partitions):
            if time.monotonic() > give_up:
                raise TimeoutError(f"could not read {topics} to their ends in {give_up_after:g} s")
            for batch in consumer.poll(timeout_ms=500).values():
                found += [Record.of(message) for message in batch]
        return found


@dataclass(frozen=True)
class Leadership:
    """Who leads what right now: the active KRaft controller, and each partition's leader and
    in-sync replicas (node ids; -1 where there is none, or no broker said)."""

    controller: int
    leaders: dict[tuple[str, int], int]
    in_sync: dict[tuple[str, int], list[int]]
    replicas: dict[tuple[str, int], list[int]]

    def led_by(self, node: int) -> list[tuple[str, int]]:
        return [partition for partition, leader in self.leaders.items() if leader == node]

    @property
    def fully_in_sync(self) -> bool:
        """Every partition has a leader and every replica in sync."""
        return all(
            self.leaders[partition] != -1 and set(self.in_sync[partition]) == set(replicas)
            for partition, replicas in self.replicas.items()
        )


def kafka_admin(*, timeout: float = 2.0) -> KafkaAdminClient:
    """An admin client for tools that watch the cluster (the chaos runs), with short timeouts:
    a dead node must not stall the watcher. Closed at the end of its ``with`` block."""
    return KafkaAdminClient(
        **client_options(),
        request_timeout_ms=int(timeout * 1000),
        bootstrap_timeout_ms=int(timeout * 1000),
        reconnect_backoff_max_ms=500,
    )


def leadership(admin: KafkaAdminClient, topics: list[str]) -> Leadership:
    """The cluster's leadership of ``topics``, as the brokers now describe it."""
    try:
        quorum = admin.describe_metadata_quorum()
        controller = quorum["topics"][0]["partitions"][0]["leader_id"]
    except (KafkaError, KeyError, IndexError):
        controller = -1  # no controller answered: an election is on
    leaders, in_sync, replicas = {}, {}, {}
    for topic in admin.describe_topics(topics):
        for partition in topic["partitions"]:
            key = (topic["name"], partition["partition_index"])
            leaders[key] = partition["leader_id"]
            in_sync[key] = list(partition["isr_nodes"])
            replicas[key] = list(partition["replica_nodes"])
    return Leadership(controller, leaders, in_sync, replicas)


# What the relay's user may do on each of its topics: produce, read back by coordinates, and
# learn their partitions and offsets. Nothing on any other topic, no group, no admin.
RELAY_TOPIC_OPERATIONS = (ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE)


def grant_topics(user: str, topics: list[str]) -> None:
    """Allow Kafka's SCRAM ``user`` the relay's operations on ``topics`` (existing or not yet),
    as the admin the settings name (an ACL already there stays as it is)."""
    acls = [
        ACL(
            principal=f"User:{user}",
            host="*",
            operation=operation,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(ResourceType.TOPIC, topic),
        )
        for topic in topics
        for operation in RELAY_TOPIC_OPERATIONS
    ]
    with kafka_admin(timeout=5.0) as admin:
        failed = admin.create_acls(acls)["failed"]
    if failed:
        raise RuntimeError(f"Kafka refused ACLs: {failed}")
