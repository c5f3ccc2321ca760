"""Output shapes of the relay API (transactions, hops, bulk jobs, errors) and its inputs."""

import difflib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from ..comparison import Comparison, HopSide
from ..hops import Stage
from ..models import Attempt, BulkJob, BulkJobItem, Hop, Transaction
from ..selectors import attempts_by_stage, bulk_job_progress
from ..services.audit import REASON_MAX_LENGTH
from ..services.dead_letters import dead_letter_of
from ..tracing import trace_url

STAGE_SLUGS = [stage.slug for stage in Stage]
HEALTH_STATUSES = ["ok", "unavailable"]


def _regex_class(characters: list[str]) -> str:
    r"""The inside of a regex character class matching ``characters``, as ``\uXXXX`` ranges,
    which Python's and ECMAScript's (JSON Schema's) regexes read alike."""
    codes = sorted(ord(c) for c in characters)
    runs: list[list[int]] = []
    for code in codes:
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(
        f"\\u{first:04x}" + (f"-\\u{last:04x}" if last > first else "") for first, last in runs
    )


# What ``str.strip()`` removes: Python's whitespace, all of it in the Basic Multilingual Plane.
# Spelled out because ``\s`` differs between regex engines (Python's includes U+001C-U+001F).
WHITESPACE = [chr(code) for code in range(0x10000) if chr(code).isspace()]


class ClosedSerializer(serializers.Serializer):
    """A body with these fields only: any other is refused by name, and the schema says so.

    A typo in a field name then fails loudly instead of passing silently, named beside the
    field it was meant to be (``{"mesage": ...}``: ``mesage`` is unknown, ``message``
    required). ``relay_app.api.schema`` adds ``additionalProperties: false``.
    """

    def to_internal_value(self, data: Any) -> Any:
        unknown = self._unknown_fields(data)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from exc
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value

    def _unknown_fields(self, data: Any) -> dict[str, list[str]]:
        """Each field of ``data`` this serializer does not have, with the reason."""
        if not isinstance(data, Mapping):
            return {}  # not an object at all: DRF's own error says so
        known = ", ".join(repr(name) for name in self.fields)
        verb = "is" if len(self.fields) == 1 else "are"
        reasons = {}
        for name in sorted(set(data) - set(self.fields)):
            close = difflib.get_close_matches(str(name), self.fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            reasons[name] = [f"Unknown field{hint}: only {known} {verb} accepted."]
        return reasons


class StrictCharField(serializers.CharField):
    """A string, as given: numbers, lists and objects are refused, not converted, and
    surrounding whitespace is kept (trimmed first, a string over ``max_length`` would pass,
    though the schema's ``maxLength`` refuses it)."""

    default_error_messages = {"not_a_string": "Must be a string, not {type}."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    @property
    def schema_pattern(self) -> str:
        """For the OpenAPI schema: no NUL (CharField refuses it); empty only if allowed."""
        return r"^[^\u0000]*$" if self.allow_blank else r"^[^\u0000]+$"

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", type=type(data).__name__)
        return str(super().to_internal_value(data))


class MessageField(StrictCharField):
    """A string, as given, with something in it other than whitespace.

    NUL and lone surrogate characters are refused by ``CharField`` itself.
    """

    default_error_messages = {"blank": "May not be empty or only whitespace."}
    #: The same rules for the OpenAPI schema: something other than whitespace, and no NUL
    #: (CharField refuses it). Lone surrogates are refused too, but cannot be written here
    #: portably; JSON Schema tools do not generate them.
    schema_pattern = rf"^[^\u0000]*[^\u0000{_regex_class(WHITESPACE)}][^\u0000]*$"

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str) and not data.strip():
            self.fail("blank")
        return super().to_internal_value(data)


class RelayInputSerializer(ClosedSerializer):
    """The client's message; any other field is refused, so a typo never passes silently."""

    message = MessageField(
        max_length=settings.RELAY_MESSAGE_MAX_LENGTH,
        help_text=(
            f"Any text of 1 to {settings.RELAY_MESSAGE_MAX_LENGTH} characters, not only"
            " whitespace, without NUL or lone surrogate characters."
        ),
        style={"base_template": "textarea.html", "rows": 3},
    )


class StrictBooleanField(serializers.BooleanField):
    """true or false: no "yes", 1 or "true" in its place."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class CancelInputSerializer(ClosedSerializer):
    """Why, optionally: the cancellation's entry in the audit trail keeps it."""

    reason = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=REASON_MAX_LENGTH,
        help_text="Why it is cancelled, for the audit trail.",
    )


IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Up to 255 visible ASCII characters (``!`` to ``~``); empty is as none.
KEY_PATTERN = "^[!-~]{0,255}$"
_KEY_CHARACTERS = re.compile(KEY_PATTERN)


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's Idempotency-Key, if it sent one (1-255 visible ASCII characters). An
    empty one is as none, as the proxy in front takes it (it gives a request with no key, or
    an empty one, a key of its own: ops/nginx.conf.template)."""
    key = headers.get(IDEMPOTENCY_HEADER)
    if not key:
        return None
    if not _KEY_CHARACTERS.fullmatch(key):
        raise serializers.ValidationError(
            {IDEMPOTENCY_HEADER: "Must be 1 to 255 visible ASCII characters."}
        )
    return key


PREFER_HEADER = "Prefer"
RESPOND_ASYNC = "respond-async"


def prefers_async(headers: Mapping[str, str]) -> bool:
    """Whether the request's ``Prefer`` header asks for ``respond-async`` (RFC 7240: a
    comma-separated list of preferences, each maybe with a value and parameters; names are
    case-insensitive; preferences the server does not know are ignored)."""
    value = headers.get(PREFER_HEADER) or ""
    names = (part.split(";", 1)[0].split("=", 1)[0].strip().lower() for part in value.split(","))
    return RESPOND_ASYNC in names


class KafkaRecordSerializer(serializers.Serializer):
    """Where a hop wrote or read its Kafka record."""

    topic = serializers.CharField()
    partition = serializers.IntegerField()
    offset = serializers.IntegerField()


class DeadLetterSerializer(serializers.Serializer):
    """Where a failed transaction's last consumed record went: its dead letter."""

    topic = serializers.CharField(help_text="The dead-letter topic: `<topic>.DLT`.")
    partition = serializers.IntegerField()
    offset = serializers.IntegerField()
    written_at = serializers.DateTimeField(help_text="When Kafka acknowledged it.")
    redrive_from_hop = serializers.IntegerField(
        min_value=1,
        max_value=len(Stage),
        help_text="The hop after the one that read the record: a rerun from it"
        " (`from_hop`) is the dead letter's redrive.",
    )


def dead_letter_representation(transaction: Transaction) -> dict[str, Any] | None:
    """The transaction's dead letter once Kafka has it, else ``None``."""
    written = dead_letter_of(transaction)
    if written is None:
        return None
    return {
        "topic": written.topic,
        "partition": written.partition,
        "offset": written.offset,
        "written_at": _DATETIME.to_representation(written.written_at),
        "redrive_from_hop": int(written.redrive_from_hop),
    }


# How the API writes a time (ISO 8601, in the current time zone), as DRF's field does.
_DATETIME = serializers.DateTimeField()


ATTEMPT_OUTCOMES = ["succeeded", *Attempt.Outcome.values]


class AttemptSerializer(serializers.Serializer):
    """One attempt of a hop: the hop's own (its last, ``succeeded``) or one that did not
    succeed, and whether another followed."""

    number = serializers.IntegerField(min_value=1, help_text="1 for the hop's first attempt.")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    duration_ms = serializers.FloatField()
    outcome = serializers.ChoiceField(
        choices=ATTEMPT_OUTCOMES,
        help_text="`succeeded`; `failed` (an error); `timed_out` (the deadline passed during"
        " it); `cancelled` (the transaction was cancelled during it).",
    )
    kind = serializers.CharField(
        help_text="The error's kind, as the hop's retry policy names it (`UNAVAILABLE`,"
        " `not_readable`, ...); empty when it succeeded."
    )
    error = serializers.CharField(help_text="Why it did not succeed; empty when it succeeded.")
    retried = serializers.BooleanField(help_text="Whether another attempt followed it.")


def _ms(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() * 1000, 3)


def attempt_representation(attempt: Attempt) -> dict[str, Any]:
    """An attempt that did not succeed, as the API shows it."""
    return {
        "number": attempt.number,
        "started_at": _DATETIME.to_representation(attempt.started_at),
        "finished_at": _DATETIME.to_representation(attempt.finished_at),
        "duration_ms": _ms(attempt.started_at, attempt.finished_at),
        "outcome": attempt.outcome,
        "kind": attempt.kind,
        "error": attempt.error,
        "retried": attempt.retried,
    }


def hop_attempts(hop: Hop, earlier: list[Attempt]) -> list[dict[str, Any]]:
    """Every attempt of a recorded hop: those that did not succeed, then the hop's own."""
    own = {
        "number": hop.attempt,
        "started_at": _DATETIME.to_representation(hop.started_at),
        "finished_at": _DATETIME.to_representation(hop.finished_at),
        "duration_ms": _ms(hop.started_at, hop.finished_at),
        "outcome": "succeeded",
        "kind": "",
        "error": "",
        "retried": False,
    }
    return [*(attempt_representation(a) for a in earlier if a.number < hop.attempt), own]


class HopSerializer(serializers.ModelSerializer):
    stage = serializers.SerializerMethodField()
    position = serializers.IntegerField(source="stage", min_value=1, max_value=len(Stage))
    duration_ms = serializers.SerializerMethodField()
    kafka = serializers.SerializerMethodField()
    attempts = serializers.SerializerMethodField()
    inherited = serializers.BooleanField(
        help_text="A rerun's hop copied from the transaction it reruns (`rerun_of`), as it"
        " was there: same text, times and Kafka record; not done again."
    )

    class Meta:
        model = Hop
        fields = [
            "position",
            "stage",
            "text",
            "started_at",
            "finished_at",
            "duration_ms",
            "kafka",
            "attempts",
            "inherited",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=STAGE_SLUGS))
    def get_stage(self, hop: Hop) -> str:
        return Stage(hop.stage).slug

    def get_duration_ms(self, hop: Hop) -> float:
        return round(hop.duration.total_seconds() * 1000, 3)

    @extend_schema_field(KafkaRecordSerializer(allow_null=True))
    def get_kafka(self, hop: Hop) -> dict[str, Any] | None:
        if not hop.kafka_topic:
            return None
        return {
            "topic": hop.kafka_topic,
            "partition": hop.kafka_partition,
            "offset": hop.kafka_offset,
        }

    @extend_schema_field(
        AttemptSerializer(
            many=True,
            help_text="Every attempt of the hop, in order; the last is the hop's own. One"
            " for a hop that needed no retry.",
        )
    )
    def get_attempts(self, hop: Hop) -> list[dict[str, Any]]:
        earlier = [a for a in hop.transaction.attempts.all() if a.stage == hop.stage]
        return hop_attempts(hop, earlier)

    def to_representation(
        self, instance: Hop, earlier: list[Attempt] | None = None
    ) -> dict[str, Any]:
        """The fields above, built at once: every answer shows eight hops, and DRF's walk of
        the fields one by one cost as much as the rest of the view's work on it. The fields
        still define the schema, and a test holds the two to the same output. ``earlier``:
        the hop's attempts that did not succeed, when the caller has them already."""
        return {
            "position": instance.stage,
            "stage": self.get_stage(instance),
            "text": instance.text,
            "started_at": _DATETIME.to_representation(instance.started_at),
            "finished_at": _DATETIME.to_representation(instance.finished_at),
            "duration_ms": self.get_duration_ms(instance),
            "kafka": self.get_kafka(instance),
            "attempts": hop_attempts(instance, earlier)
            if earlier is not None
            else self.get_attempts(instance),
            "inherited": instance.inherited,
        }


class UnfinishedHopSerializer(serializers.Serializer):
    """A hop that was attempted and never recorded: the failed or cancelled one."""

    position = serializers.IntegerField(min_value=1, max_value=len(Stage))
    stage = serializers.ChoiceField(choices=STAGE_SLUGS)
    attempts = AttemptSerializer(many=True)


def unfinished_hops(
    transaction: Transaction, by_stage: dict[int, list[Attempt]]
) -> list[dict[str, Any]]:
    """The hops with attempts but no record, in order."""
    recorded = {hop.stage for hop in transaction.hops.all()}
    return [
        {
            "position": stage,
            "stage": Stage(stage).slug,
            "attempts": [attempt_representation(a) for a in attempts],
        }
        for stage, attempts in sorted(by_stage.items())
        if stage not in recorded
    ]


class TransactionSerializer(serializers.ModelSerializer):
    transaction_id = serializers.UUIDField(source="id")
    owner = serializers.SerializerMethodField()
    message = serializers.CharField(source="final_message")
    request_message = serializers.CharField(source="message")
    failed_stage = serializers.SerializerMethodField()
    duration_ms = serializers.SerializerMethodField()
    trace_id = serializers.SerializerMethodField()
    trace_url = serializers.SerializerMethodField()
    cancelled_by = serializers.SerializerMethodField()
    dead_letter = serializers.SerializerMethodField()
    rerun_of = serializers.UUIDField(
        source="rerun_of_id",
        allow_null=True,
        help_text="The transaction this one reruns (`POST /api/transactions/<id>/rerun/`);"
        " null for a relay.",
    )
    from_hop = serializers.IntegerField(
        min_value=1,
        max_value=len(Stage),
        allow_null=True,
        help_text="A rerun's first hop done again (its position); the hops before it are"
        " inherited. Null for a relay.",
    )
    hops = HopSerializer(many=True)
    unfinished_hops = serializers.SerializerMethodField()

    class Meta:
        model = Transaction
        fields = [
            "transaction_id",
            "owner",
            "status",
            "message",
            "request_message",
            "error",
            "failed_stage",
            "created_at",
            "finished_at",
            "duration_ms",
            "trace_id",
            "trace_url",
            "cancelled_by",
            "cancelled_at",
            "dead_letter",
            "rerun_of",
            "from_hop",
            "hops",
            "unfinished_hops",
        ]
        read_only_fields = fields

    @extend_schema_field(
        DeadLetterSerializer(
            allow_null=True,
            help_text="Where its last consumed Kafka record went when it failed or timed out"
            ' (docs/operations.md, "Dead letters"); null otherwise, and until it is written'
            " (moments after the answer).",
        )
    )
    def get_dead_letter(self, transaction: Transaction) -> dict[str, Any] | None:
        return dead_letter_representation(transaction)

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="Who cancelled it (status `cancelled`): its owner or a member of staff.",
        )
    )
    def get_cancelled_by(self, transaction: Transaction) -> str | None:
        return transaction.cancelled_by.get_username() if transaction.cancelled_by else None

    @extend_schema_field(
        UnfinishedHopSerializer(
            many=True,
            help_text="Hops attempted but never recorded (the one that failed, or was cut off"
            " by a cancellation), each with its attempts; empty when every hop attempted"
            " was recorded.",
        )
    )
    def get_unfinished_hops(self, transaction: Transaction) -> list[dict[str, Any]]:
        return unfinished_hops(transaction, attempts_by_stage(transaction))

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="Who relayed it; null if anonymous.")
    )
    def get_owner(self, transaction: Transaction) -> str | None:
        return transaction.owner.get_username() if transaction.owner else None

    @extend_schema_field(serializers.ChoiceField(choices=STAGE_SLUGS, allow_null=True))
    def get_failed_stage(self, transaction: Transaction) -> str | None:
        return Stage(transaction.failed_stage).slug if transaction.failed_stage else None

    def get_duration_ms(self, transaction: Transaction) -> float | None:
        duration = transaction.duration
        return round(duration.total_seconds() * 1000, 3) if duration else None

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="The OpenTelemetry trace id (32 hex digits); null when tracing is off.",
        )
    )
    def get_trace_id(self, transaction: Transaction) -> str | None:
        return transaction.trace_id or None

    @extend_schema_field(
        serializers.URLField(
            allow_null=True,
            help_text="The trace in a viewer (RELAY_TRACE_URL: the stack's Zipkin by default);"
            " null when untraced or no viewer is set.",
        )
    )
    def get_trace_url(self, transaction: Transaction) -> str | None:
        return trace_url(transaction.trace_id) or None

    def to_representation(self, instance: Transaction) -> dict[str, Any]:
        """Built at once, as the hops are (see ``HopSerializer.to_representation``)."""
        hop = HopSerializer()
        by_stage = attempts_by_stage(instance)
        return {
            "transaction_id": str(instance.id),
            "owner": self.get_owner(instance),
            "status": instance.status,
            "message": instance.final_message,
            "request_message": instance.message,
            "error": instance.error,
            "failed_stage": self.get_failed_stage(instance),
            "created_at": _DATETIME.to_representation(instance.created_at),
            "finished_at": _DATETIME.to_representation(instance.finished_at)
            if instance.finished_at
            else None,
            "duration_ms": self.get_duration_ms(instance),
            "trace_id": instance.trace_id or None,
            "trace_url": self.get_trace_url(instance),
            "cancelled_by": self.get_cancelled_by(instance),
            "cancelled_at": _DATETIME.to_representation(instance.cancelled_at)
            if instance.cancelled_at
            else None,
            "dead_letter": dead_letter_representation(instance),
            "rerun_of": str(instance.rerun_of_id) if instance.rerun_of_id else None,
            "from_hop": instance.from_hop,
            "hops": [
                hop.to_representation(each, by_stage.get(each.stage, []))
                for each in instance.hops.all()
            ],
            "unfinished_hops": unfinished_hops(instance, by_stage),
        }


class RelayAcceptedSerializer(TransactionSerializer):
    """An asynchronous relay, accepted: the transaction so far, where to poll it and where
    to follow its hops live."""

    url = serializers.URLField(help_text="Poll the transaction here (also `Location`).")
    events = serializers.URLField(help_text="Its hops as Server-Sent Events, as they happen.")

    class Meta(TransactionSerializer.Meta):
        fields = ["url", "events", *TransactionSerializer.Meta.fields]
        read_only_fields = fields


class ServerSentEventSerializer(serializers.Serializer):
    """One event of a transaction's stream (OpenAPI 3.0 describes each event of a
    text/event-stream by its schema): a hop, then the settled transaction."""

    event = serializers.ChoiceField(
        choices=["attempt", "hop", "settled", "cancelled"],
        required=False,
        help_text="`attempt` for each attempt of a hop that did not succeed, as it ends;"
        " `hop`, one for each hop as it completes (with all its attempts); then the last:"
        " `cancelled` for a cancelled transaction, else `settled`.",
    )
    id = serializers.CharField(
        required=False, help_text="A hop's position, 1-8: send it back as `Last-Event-ID`."
    )
    # For the schema only; DRF's metaclass takes declared fields out of the class, so this
    # does not hide ``Serializer.data`` (mypy cannot know that).
    data = serializers.CharField(  # type: ignore[assignment]
        required=False,
        help_text=(
            "JSON: for `attempt`, the attempt as in a hop's `attempts`, with the hop's"
            " `position` and `stage`; for `hop`, the hop as in a transaction (with the"
            " original example's log `label`); for `settled` and `cancelled`, the transaction as"
            " `GET /api/transactions/<id>/` shows it."
        ),
    )
    retry = serializers.IntegerField(
        required=False, help_text="How long to wait before reconnecting, in milliseconds."
    )


class TransactionListSerializer(TransactionSerializer):
    url = serializers.HyperlinkedIdentityField(
        view_name="transaction-detail", lookup_field="id", lookup_url_kwarg="transaction_id"
    )

    class Meta(TransactionSerializer.Meta):
        fields = [
            "url",
            *(f for f in TransactionSerializer.Meta.fields if f not in ("hops", "unfinished_hops")),
        ]
        read_only_fields = fields

    def to_representation(self, instance: Transaction) -> dict[str, Any]:
        # DRF's walk of the fields: a list's row has its link and no hops.
        return dict(serializers.ModelSerializer.to_representation(self, instance))


class ErrorSerializer(ClosedSerializer):
    """Every error's body: the reason in words and, for invalid input, the reasons per field."""

    detail = serializers.CharField(help_text="What went wrong, in words.")
    # Output only: DRF's metaclass takes declared fields out of the class, so this field
    # does not hide ``Serializer.errors`` (mypy cannot know that).
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=(
            "Invalid input only (400): for each field at fault (`non_field_errors` for the"
            " body as a whole, `Idempotency-Key` for the header), the reasons."
        ),
    )


class TransactionFailureSerializer(TransactionSerializer):
    """A recorded transaction that failed (503), timed out (504) or was cancelled (409), and
    why."""

    detail = serializers.CharField(
        help_text="Why: the dependency that is down (and after how many attempts, or why no"
        " further one), the hop the deadline passed on, or who cancelled it."
    )

    class Meta(TransactionSerializer.Meta):
        fields = ["detail", *TransactionSerializer.Meta.fields]
        read_only_fields = fields


class ApiRootSerializer(serializers.Serializer):
    """Where each part of the relay's HTTP interface lives."""

    relay = serializers.URLField(help_text="POST a message here to relay it.")
    transactions = serializers.URLField(help_text="Every transaction, newest first.")
    schema = serializers.URLField(help_text="This API's OpenAPI 3 schema.")
    docs = serializers.URLField(help_text="Interactive documentation of the schema.")
    health = serializers.URLField(help_text="Whether this web server answers (liveness).")
    ready = serializers.URLField(help_text="Whether every dependency answers (readiness).")
    seed = serializers.URLField(help_text="The original example's endpoint.")
    admin = serializers.URLField(help_text="The admin (staff only).")
    live = serializers.URLField(help_text="A page to relay a message and watch its hops live.")


class LivenessSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


class CheckSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="`ok`, or `unavailable: ` and why.")
    latency_ms = serializers.FloatField(help_text="How long the check took.")


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=HEALTH_STATUSES)
    checks = serializers.DictField(
        child=CheckSerializer(),
        required=False,
        help_text="Staff only: for each dependency, `ok` or why it does not answer, and how fast.",
    )


OWNER_FILTER_STAFF_ONLY = (
    "Only staff may choose an owner: your own transactions are the ones acted on."
)


class BulkFilterSerializer(ClosedSerializer):
    """Which transactions: every criterion given must hold (none: all you may see)."""

    status = serializers.ChoiceField(choices=Transaction.Status.choices, required=False)
    failed_hop = serializers.ChoiceField(
        choices=STAGE_SLUGS,
        required=False,
        help_text="The hop it failed or timed out at, by name, as `failed_stage` shows it.",
    )
    # Both as given, spaces included: a user's name and an error's text are matched exactly.
    owner = StrictCharField(
        required=False,
        max_length=150,
        help_text="Staff only: one user's transactions.",
    )
    created_after = serializers.DateTimeField(
        required=False, help_text="Created at or after this time."
    )
    created_before = serializers.DateTimeField(required=False, help_text="Created before this.")
    error_contains = StrictCharField(
        required=False,
        max_length=200,
        help_text="Its error holds this text, regardless of case.",
    )

    def validate_owner(self, owner: str) -> str:
        if not self.context.get("staff"):
            raise serializers.ValidationError(OWNER_FILTER_STAFF_ONLY)
        return owner


class BulkInputSerializer(ClosedSerializer):
    """A bulk action: a dry run unless `dry_run` is false; always with its reason."""

    action = serializers.ChoiceField(choices=BulkJob.Action.choices)
    filter = BulkFilterSerializer(required=False)
    dry_run = StrictBooleanField(
        default=True, help_text="true (the default): only say what would be done."
    )
    reason = MessageField(
        max_length=REASON_MAX_LENGTH,
        help_text=f"Why, in up to {REASON_MAX_LENGTH} characters: the job's audit entry keeps it.",
    )


class SkippedSerializer(serializers.Serializer):
    reason = serializers.CharField()
    count = serializers.IntegerField()
    sample = serializers.ListField(child=serializers.UUIDField())


class BulkDryRunSerializer(serializers.Serializer):
    """What the action would do; nothing was changed."""

    action = serializers.CharField()
    dry_run = serializers.SerializerMethodField()
    matched = serializers.IntegerField(help_text="How many transactions the filter matched.")
    acting = serializers.IntegerField(help_text="How many of them it would act on.")
    sample = serializers.ListField(
        child=serializers.UUIDField(), help_text="The first of those (oldest first)."
    )
    skipped = SkippedSerializer(many=True, help_text="The others, by why they would be skipped.")

    def get_dry_run(self, dry_run: Any) -> bool:
        return True


class BulkJobItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = BulkJobItem
        fields = [
            "position",
            "transaction_id",
            "outcome",
            "detail",
            "result_transaction_id",
            "finished_at",
        ]
        read_only_fields = fields


class BulkJobSerializer(serializers.ModelSerializer):
    """A bulk job: where it is (``progress``, by outcome) and each item's outcome."""

    job_id = serializers.UUIDField(source="id")
    url = serializers.SerializerMethodField()
    cancel_url = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    cancelled_by = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = BulkJob
        fields = [
            "job_id",
            "url",
            "cancel_url",
            "action",
            "status",
            "created_by",
            "source",
            "reason",
            "filter",
            "total",
            "progress",
            "skipped_at_start",
            "created_at",
            "started_at",
            "finished_at",
            "cancelled_by",
        ]
        read_only_fields = fields

    def get_url(self, job: BulkJob) -> str:
        return reverse("bulk-job-detail", args=[job.id], request=self.context.get("request"))

    def get_cancel_url(self, job: BulkJob) -> str:
        return reverse("bulk-job-cancel", args=[job.id], request=self.context.get("request"))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_created_by(self, job: BulkJob) -> str | None:
        return job.created_by.get_username() if job.created_by else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_cancelled_by(self, job: BulkJob) -> str | None:
        return job.cancelled_by.get_username() if job.cancelled_by else None

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_progress(self, job: BulkJob) -> dict[str, int]:
        """How many items have each outcome (pending, running, done, skipped, failed, not_run)."""
        return bulk_job_progress(job=job)


class BulkJobItemPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = BulkJobItemSerializer(many=True)


class BulkJobDetailSerializer(BulkJobSerializer):
    """A bulk job with a page of its items (``?page=``, 50 a page; ``?outcome=`` for those
    with one outcome), in the job's order."""

    items = serializers.SerializerMethodField()

    class Meta(BulkJobSerializer.Meta):
        fields = [*BulkJobSerializer.Meta.fields, "items"]
        read_only_fields = fields

    @extend_schema_field(BulkJobItemPageSerializer)
    def get_items(self, job: BulkJob) -> dict[str, Any]:
        return dict(self.context["items"])


class RerunInputSerializer(ClosedSerializer):
    """What to rerun from, and why; both optional."""

    from_hop = serializers.IntegerField(
        min_value=1,
        max_value=len(Stage),
        required=False,
        allow_null=True,
        help_text="The hop to run again from (its position); the hops before it are"
        " inherited. By default the hop that failed; only staff choose another, or rerun a"
        " transaction that succeeded.",
    )
    reason = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=REASON_MAX_LENGTH,
        help_text="Why, for the audit trail (the admin requires one).",
    )


class CompareSideSerializer(serializers.Serializer):
    """One hop of one of the two transactions."""

    state = serializers.ChoiceField(
        choices=["done", "inherited", "failed", "not_reached"],
        help_text="`done`; `inherited` (copied from the transaction it reruns); `failed`"
        " (attempted, never recorded); `not_reached`.",
    )
    text = serializers.CharField(allow_null=True, help_text="The text after the hop.")
    attempts = serializers.IntegerField(help_text="How many attempts it took (or were made).")
    duration_ms = serializers.FloatField(allow_null=True)
    inherited = serializers.BooleanField()
    kafka = KafkaRecordSerializer(allow_null=True)


class DiffSegmentSerializer(serializers.Serializer):
    """A stretch of the two texts, as ``difflib`` finds it."""

    op = serializers.ChoiceField(
        choices=["equal", "replace", "delete", "insert"],
        help_text="`equal`: the same on both sides; `replace`, `delete` (left only),"
        " `insert` (right only).",
    )
    left = serializers.CharField(allow_blank=True)
    right = serializers.CharField(allow_blank=True)


class CompareHopSerializer(serializers.Serializer):
    position = serializers.IntegerField(min_value=1, max_value=len(Stage))
    stage = serializers.ChoiceField(choices=STAGE_SLUGS)
    same_text = serializers.BooleanField()
    same_record = serializers.BooleanField(help_text="Whether both read or wrote one Kafka record.")
    left = CompareSideSerializer()
    right = CompareSideSerializer()
    diff = DiffSegmentSerializer(many=True)


class ComparisonSerializer(serializers.Serializer):
    """Two transactions of one lineage, side by side, hop by hop."""

    lineage_root = serializers.UUIDField(help_text="The lineage's first transaction.")
    left = TransactionSerializer()
    right = TransactionSerializer()
    hops = CompareHopSerializer(many=True)


def comparison_representation(comparison: Comparison) -> dict[str, Any]:
    """A ``relay_app.comparison.Comparison`` as the API shows it."""

    def side(hop: HopSide) -> dict[str, Any]:
        kafka = (
            {"topic": hop.kafka_topic, "partition": hop.kafka_partition, "offset": hop.kafka_offset}
            if hop.kafka_topic
            else None
        )
        return {
            "state": hop.state,
            "text": hop.text,
            "attempts": hop.attempts,
            "duration_ms": hop.duration_ms,
            "inherited": hop.inherited,
            "kafka": kafka,
        }

    return {
        "lineage_root": comparison.root_id,
        "left": TransactionSerializer(comparison.left).data,
        "right": TransactionSerializer(comparison.right).data,
        "hops": [
            {
                "position": row.stage.value,
                "stage": row.stage.slug,
                "same_text": row.same_text,
                "same_record": row.same_record,
                "left": side(row.left),
                "right": side(row.right),
                "diff": [{"op": s.op, "left": s.left, "right": s.right} for s in row.segments],
            }
            for row in comparison.hops
        ],
    }
