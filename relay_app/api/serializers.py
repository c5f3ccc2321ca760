"""Output shapes of the relay API (transactions and their hops) and the relay's input."""

from typing import Any

from rest_framework import serializers

from ..hops import Stage
from ..models import Hop, Transaction


class RelayInputSerializer(serializers.Serializer):
    """The client's message."""

    message = serializers.CharField(trim_whitespace=False)


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
