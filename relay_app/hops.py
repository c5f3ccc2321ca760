"""The eight hops of a transaction: what each appends and how the original example's log names it.

This table is the single source of the hop texts (docs/architecture.md); models,
services, the gRPC server and tests all read it from here. A new hop starts here.
"""

from dataclasses import dataclass
from enum import IntEnum


class Stage(IntEnum):
    """A hop's place in the flow; the value is its position (1-8)."""

    REST_REQUEST = 1
    KAFKA_PUBLISH_REQUEST = 2
    KAFKA_CONSUME_REQUEST = 3
    GRPC_CLIENT = 4
    GRPC_SERVER = 5
    KAFKA_PUBLISH_REPLY = 6
    KAFKA_CONSUME_REPLY = 7
    REST_RESPONSE = 8

    @property
    def slug(self) -> str:
        """The stage's name in the API and logs, e.g. ``kafka_publish_request``."""
        return self.name.lower()

    @property
    def spec(self) -> "HopSpec":
        return HOPS[self]


@dataclass(frozen=True)
class HopSpec:
    """What a hop appends to the text, and the original example's label for its log line."""

    log_label: str
    suffix: str
    description: str

    def apply(self, text: str) -> str:
        """Return ``text`` as it leaves this hop."""
        return text + self.suffix


HOPS: dict[Stage, HopSpec] = {
    Stage.REST_REQUEST: HopSpec("REST request: ", " from rest", "REST request"),
    Stage.KAFKA_PUBLISH_REQUEST: HopSpec(
        "KAFKA Publisher: ", " and Kafka publisher", "Kafka publish, request topic"
    ),
    Stage.KAFKA_CONSUME_REQUEST: HopSpec(
        "KAFKA Consumer: ", " and Kafka consumer", "Kafka consume, request topic"
    ),
    Stage.GRPC_CLIENT: HopSpec("gRPC Client:", " and gRPC client", "gRPC client"),
    Stage.GRPC_SERVER: HopSpec("gRPC Server:", " and gRPC server", "gRPC server"),
    Stage.KAFKA_PUBLISH_REPLY: HopSpec(
        "KAFKA Publisher: ", " and Kafka publisher", "Kafka publish, reply topic"
    ),
    Stage.KAFKA_CONSUME_REPLY: HopSpec(
        "KAFKA Consumer: ", " and Kafka consumer", "Kafka consume, reply topic"
    ),
    Stage.REST_RESPONSE: HopSpec("REST response: ", "", "REST response"),
}


def final_message(text: str) -> str:
    """The answer the client gets: the text after every hop, uppercased (``str.upper``)."""
    return text.upper()


def expected_final_message(message: str) -> str:
    """What a client sending ``message`` must receive; used by tests and benchmarks."""
    text = message
    for stage in Stage:
        text = stage.spec.apply(text)
    return final_message(text)


def max_text_length(message_max_length: int, *, after: Stage) -> int:
    """The longest text can be after hop ``after``, for a message of at most that length."""
    return message_max_length + sum(len(HOPS[stage].suffix) for stage in Stage if stage <= after)
