"""What the relay records: one ``Transaction`` per client message and one ``Hop`` per stage."""

import uuid
from datetime import timedelta

from django.db import models

from .hops import Stage


class Transaction(models.Model):
    """A client's message on its way through the relay, and how that ended."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        TIMED_OUT = "timed_out"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.TextField(help_text="The client's message, as received.")
    final_message = models.TextField(blank=True, help_text="The uppercase answer, once succeeded.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, help_text="Why the transaction failed or timed out.")
    failed_stage = models.PositiveSmallIntegerField(
        choices=[(s.value, s.slug) for s in Stage],
        null=True,
        blank=True,
        help_text="The hop that failed or was being waited on when the deadline passed.",
    )
    idempotency_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        unique=True,
        help_text="The client's Idempotency-Key: a repeated request gets this transaction back.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    deadline_at = models.DateTimeField(help_text="When the transaction's time budget runs out.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "deadline_at"])]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.created_at if self.finished_at else None


class Hop(models.Model):
    """One stage of a transaction: the text after it, when it ran, and where it touched Kafka."""

    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="hops")
    stage = models.PositiveSmallIntegerField(choices=[(s.value, s.slug) for s in Stage])
    text = models.TextField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    kafka_topic = models.CharField(max_length=249, blank=True)
    kafka_partition = models.IntegerField(null=True, blank=True)
    kafka_offset = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = [
            "transaction_id",
            "stage",
        ]  # no join: "transaction" would sort by its own ordering
        constraints = [
            # A re-delivered task must not record its hop twice.
            models.UniqueConstraint(fields=["transaction", "stage"], name="unique_hop_per_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} {Stage(self.stage).slug}"

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at
