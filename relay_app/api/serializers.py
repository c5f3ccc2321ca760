"""Output shapes of the relay API (transactions and their hops) and the relay's input."""

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import serializers

from ..hops import Stage
from ..models import Hop, Transaction


class MessageField(serializers.CharField):
    """A string with something in it: numbers, lists and objects are refused, not converted.

    NUL and lone surrogate characters are refused by ``CharField`` itself.
    """

    default_error_messages = {
        "not_a_string": "Must be a string, not {type}.",
        "blank": "May not be empty or only whitespace.",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", type=type(data).__name__)
        if not data.strip():
            self.fail("blank")
        return str(super().to_internal_value(data))


class RelayInputSerializer(serializers.Serializer):
    """The client's message; any other field is refused, so a typo never passes silently."""

    message = MessageField(
        trim_whitespace=False,
        max_length=settings.RELAY_MESSAGE_MAX_LENGTH,
        help_text=f"Any text, 1 to {settings.RELAY_MESSAGE_MAX_LENGTH} characters.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                dict.fromkeys(unknown, "Unknown field: only 'message' is accepted.")
            )
        return attrs


IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_CHARACTERS = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's Idempotency-Key, if it sent one (1-255 visible ASCII characters)."""
    key = headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _KEY_CHARACTERS.match(key):
        raise serializers.ValidationError(
            {IDEMPOTENCY_HEADER: "Must be 1 to 255 visible ASCII characters."}
        )
    return key


class HopSerializer(serializers.ModelSerializer):
    stage = serializers.SerializerMethodField()
    position = serializers.IntegerField(source="stage")
    duration_ms = serializers.SerializerMethodField()
    kafka = serializers.SerializerMethodField()

    class Meta:
        model = Hop
        fields = ["position", "stage", "text", "started_at", "finished_at", "duration_ms", "kafka"]

    def get_stage(self, hop: Hop) -> str:
        return Stage(hop.stage).slug

    def get_duration_ms(self, hop: Hop) -> float:
        return round(hop.duration.total_seconds() * 1000, 3)

    def get_kafka(self, hop: Hop) -> dict[str, Any] | None:
        if not hop.kafka_topic:
            return None
        return {
            "topic": hop.kafka_topic,
            "partition": hop.kafka_partition,
            "offset": hop.kafka_offset,
        }


class TransactionSerializer(serializers.ModelSerializer):
    transaction_id = serializers.UUIDField(source="id")
    message = serializers.CharField(source="final_message")
    request_message = serializers.CharField(source="message")
    failed_stage = serializers.SerializerMethodField()
    duration_ms = serializers.SerializerMethodField()
    hops = HopSerializer(many=True)

    class Meta:
        model = Transaction
        fields = [
            "transaction_id",
            "status",
            "message",
            "request_message",
            "error",
            "failed_stage",
            "created_at",
            "finished_at",
            "duration_ms",
            "hops",
        ]

    def get_failed_stage(self, transaction: Transaction) -> str | None:
        return Stage(transaction.failed_stage).slug if transaction.failed_stage else None

    def get_duration_ms(self, transaction: Transaction) -> float | None:
        duration = transaction.duration
        return round(duration.total_seconds() * 1000, 3) if duration else None


class TransactionListSerializer(TransactionSerializer):
    class Meta(TransactionSerializer.Meta):
        fields = [f for f in TransactionSerializer.Meta.fields if f != "hops"]
