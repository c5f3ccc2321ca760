"""What the relay records: one ``Transaction`` per client message, one ``Hop`` per stage, an
``Attempt`` for each try of a hop that did not succeed, the ``ApiToken`` clients
authenticate with, and an ``AuditEntry`` for each operator action."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .hops import Stage


class Transaction(models.Model):
    """A client's message on its way through the relay, and how that ended."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        TIMED_OUT = "timed_out"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # A user's messages go with the user; retention removes the rest in time.
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="transactions",
        help_text="Who relayed it; nobody for an anonymous relay (visible to staff only).",
    )
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
    # NULL, not "", for "no key": the unique constraints below leave NULLs alone.
    idempotency_key = models.CharField(  # noqa: DJ001
        max_length=255,
        null=True,
        blank=True,
        help_text=(
            "The client's Idempotency-Key: the same owner repeating it gets this transaction back."
        ),
    )
    trace_id = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text="The OpenTelemetry trace of the request that started it; empty if untraced.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    deadline_at = models.DateTimeField(help_text="When the transaction's time budget runs out.")
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who cancelled it (its owner or staff).",
    )
    cancelled_at = models.DateTimeField(null=True, blank=True, help_text="When it was cancelled.")
    # Where the last Kafka record it consumed went once it failed for good: set (topic alone)
    # by the one writer that claims it, then with the record's place once Kafka has it.
    dead_letter_topic = models.CharField(
        max_length=249,
        blank=True,
        default="",
        help_text="The dead-letter topic its last consumed record was written to (<topic>.DLT).",
    )
    dead_letter_partition = models.IntegerField(null=True, blank=True)
    dead_letter_offset = models.BigIntegerField(null=True, blank=True)
    dead_letter_at = models.DateTimeField(
        null=True, blank=True, help_text="When Kafka acknowledged its dead letter."
    )
    rerun_of = models.ForeignKey(
        "self",
        # Retention deletes a transaction before its reruns (they are younger): a rerun keeps
        # its inherited hops, copies, and only loses the link. PROTECT would stop the purge.
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reruns",
        help_text="The transaction this one reruns (services/rerun.py); it never changes.",
    )
    from_hop = models.PositiveSmallIntegerField(
        choices=[(s.value, s.slug) for s in Stage],
        null=True,
        blank=True,
        help_text="A rerun's first hop done again; the hops before it are inherited.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "deadline_at"])]
        constraints = [
            # A key belongs to its owner: another user's identical key is another transaction.
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"], name="unique_idempotency_key_per_owner"
            ),
            # Anonymous relays (development) share one owner, "nobody" (NULLs are all distinct
            # to the constraint above).
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(owner__isnull=True),
                name="unique_anonymous_idempotency_key",
            ),
        ]

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
    attempt = models.PositiveSmallIntegerField(
        default=1,
        help_text="Which attempt succeeded: the earlier ones are its Attempts. The hop's own"
        " times are that attempt's.",
    )
    # A default in the database too: the hops' own INSERT (services/transactions.py) names
    # only the columns a hop that runs has.
    inherited = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Copied from the transaction this one reruns, with its text, times and"
        " Kafka coordinates: not done again.",
    )

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


class Attempt(models.Model):
    """One try of a hop that did not succeed: when, how long, and why. A hop that succeeded
    is its own last attempt (``Hop.attempt``), so a transaction without a fault writes none."""

    class Outcome(models.TextChoices):
        FAILED = "failed"  # an error; another attempt may follow, as ``retried`` says
        TIMED_OUT = "timed_out"  # the transaction's deadline passed during it
        CANCELLED = "cancelled"  # the transaction was cancelled (or ended) during it

    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="attempts")
    stage = models.PositiveSmallIntegerField(choices=[(s.value, s.slug) for s in Stage])
    number = models.PositiveSmallIntegerField(help_text="1 for the hop's first attempt.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    kind = models.CharField(
        max_length=32, blank=True, help_text="The error's kind, as the retry policy names it."
    )
    error = models.TextField(blank=True, help_text="What went wrong, as the client may read it.")
    retried = models.BooleanField(
        default=False, help_text="Whether another attempt followed (else why not is in error)."
    )

    class Meta:
        ordering = ["transaction_id", "stage", "number"]
        constraints = [
            # A re-delivered task numbers its attempts after the ones recorded.
            models.UniqueConstraint(
                fields=["transaction", "stage", "number"], name="unique_attempt_per_stage"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} {Stage(self.stage).slug} #{self.number} {self.outcome}"

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at


class ApiToken(models.Model):
    """A client's credential for ``Authorization: Bearer <token>``, stored as its SHA-256 only.

    The token itself is shown once, when made (``manage.py create_api_token``); a stolen
    database reveals no usable token. A token is random (256 bits), so one fast hash is
    enough: there is no password to guess behind it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    prefix = models.CharField(
        max_length=16, db_index=True, help_text="The token's first characters, to recognise it."
    )
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token, hex.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="Once set, the token is refused."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class AuditEntry(models.Model):
    """One operator action (a cancel, a rerun, a bulk job, a token made or revoked, a change in
    the admin): who, when, what, on which transactions, and why. Written once, never changed.

    The transactions are named by id, not by foreign key: retention removes transactions, the
    record of what was done to them stays. A bulk job names its job and its count here (its
    items are the job's); an entry keeps at most ``TRANSACTION_IDS_KEPT`` ids.
    """

    TRANSACTION_IDS_KEPT = 100

    class Action(models.TextChoices):
        CANCEL = "cancel"
        RERUN = "rerun"
        BULK_CANCEL = "bulk_cancel", "bulk cancel"
        BULK_RERUN = "bulk_rerun", "bulk rerun"
        BULK_JOB_CANCEL = "bulk_job_cancel", "bulk job cancelled"
        TOKEN_CREATED = "token_created", "token created"
        TOKEN_REVOKED = "token_revoked", "token revoked"
        ADMIN_ADD = "admin_add", "admin: added"
        ADMIN_CHANGE = "admin_change", "admin: changed"
        ADMIN_DELETE = "admin_delete", "admin: deleted"

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "admin"
        CLI = "cli", "command line"
        JOB = "job", "bulk job"

    at = models.DateTimeField(
        "when", default=timezone.now, db_index=True, help_text="When it was done."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # The entry outlives the account: its name stays in actor_name.
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who did it; empty for a command-line operator without an account.",
    )
    actor_name = models.CharField(
        "who",
        max_length=150,
        blank=True,
        help_text="Who did it, by name, as it was then (a command-line operator: their login).",
    )
    # Not enforced to the choices: a new kind of action is recorded before it is listed.
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    reason = models.TextField(blank=True, help_text="Why, as the operator gave it.")
    transaction_ids = models.JSONField(
        default=list,
        blank=True,
        help_text="The ids of the transactions concerned (the first ones, for many).",
    )
    transaction_count = models.PositiveIntegerField(
        "transactions", default=0, help_text="How many transactions it concerned."
    )
    details = models.JSONField(default=dict, blank=True, help_text="What else says what was done.")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action}"


class BulkJob(models.Model):
    """An operator's action (cancel or rerun) on every transaction a filter matched, done item
    by item in the background at a pace shared by every process (``RELAY_BULK_RATE``)."""

    class Action(models.TextChoices):
        CANCEL = "cancel"
        RERUN = "rerun"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        FINISHED = "finished"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    action = models.CharField(max_length=16, choices=Action.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # Without its operator, a job acts for nobody: its items are no one's to act on.
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bulk_jobs",
        help_text="Who started it: it acts on what they may see, as they could by hand.",
    )
    source = models.CharField(max_length=8, help_text="Where it was started: api or admin.")
    reason = models.TextField(help_text="Why, as the operator gave it.")
    filter = models.JSONField(
        default=dict, blank=True, help_text="What selected its transactions, as given."
    )
    total = models.PositiveIntegerField(default=0, help_text="How many items it has.")
    skipped_at_start = models.JSONField(
        default=dict,
        blank=True,
        help_text="Transactions the filter matched that it could not act on, counted by why.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who stopped it.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "bulk job"

    def __str__(self) -> str:
        return f"{self.action} of {self.total} ({self.status})"


class BulkJobItem(models.Model):
    """One transaction of a bulk job, and what became of it."""

    class Outcome(models.TextChoices):
        PENDING = "pending"  # not reached yet
        RUNNING = "running"  # taken by a worker, being acted on
        DONE = "done"
        SKIPPED = "skipped"  # nothing to do to it any more (detail says why)
        FAILED = "failed"  # the action went wrong (detail says how)
        NOT_RUN = "not_run"  # the job was cancelled before it

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(help_text="Its place in the job's order, from 1.")
    # An id, not a foreign key: retention may remove the transaction, the outcome stays.
    transaction_id = models.UUIDField(db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    detail = models.TextField(blank=True, help_text="Why it was skipped, or how it failed.")
    result_transaction_id = models.UUIDField(
        null=True, blank=True, help_text="The transaction a rerun made."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="unique_bulk_item_position"),
        ]
        indexes = [models.Index(fields=["job", "outcome", "position"])]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.position} {self.outcome}"
