"""Reads of transactions, their hops and attempts, of API tokens, and of bulk jobs."""

from datetime import datetime
from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet

from .hops import Stage
from .models import ApiToken, Attempt, BulkJob, BulkJobItem, Hop, Transaction

#: Who is reading: a user, anonymous, or ``None`` for the relay itself (which sees everything).
Viewer = User | AnonymousUser | None


def is_staff(user: User | AnonymousUser) -> bool:
    """Whether ``user`` sees every transaction and bulk job (the relay itself does too)."""
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def may_see(user: User | AnonymousUser, transaction: Transaction) -> bool:
    """Whether ``transaction``, already read, is one ``user`` sees (``_visible_to``'s rule)."""
    return is_staff(user) or bool(
        user.is_authenticated
        and transaction.owner_id is not None
        and transaction.owner_id == user.pk
    )


def _visible_to(viewer: Viewer) -> QuerySet[Transaction]:
    """Staff see every transaction; a user only their own; anonymous, none.

    Anonymous relays are owned by nobody, so only staff see them.
    """
    if viewer is None or is_staff(viewer):
        return Transaction.objects.all()
    if viewer.is_authenticated:
        return Transaction.objects.filter(owner_id=viewer.pk)
    return Transaction.objects.none()


def transaction_list(*, viewer: Viewer, status: str | None = None) -> QuerySet[Transaction]:
    """The transactions ``viewer`` may see, newest first, optionally only those with ``status``."""
    transactions = _visible_to(viewer).select_related("owner").order_by("-created_at")
    return transactions.filter(status=status) if status else transactions


def transaction_filter(
    *,
    viewer: Viewer,
    status: str | None = None,
    failed_stage: Stage | None = None,
    owner: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    error_contains: str | None = None,
) -> QuerySet[Transaction]:
    """The transactions ``viewer`` may see that match every criterion given, oldest first
    (the order a bulk job works in). ``owner`` is a user name; ``error_contains`` is matched
    regardless of case."""
    transactions = _visible_to(viewer).order_by("created_at", "id")
    if status:
        transactions = transactions.filter(status=status)
    if failed_stage is not None:
        transactions = transactions.filter(failed_stage=failed_stage)
    if owner is not None:
        transactions = transactions.filter(owner__username=owner)
    if created_after is not None:
        transactions = transactions.filter(created_at__gte=created_after)
    if created_before is not None:
        transactions = transactions.filter(created_at__lt=created_before)
    if error_contains:
        transactions = transactions.filter(error__icontains=error_contains)
    return transactions


def transaction_get(*, transaction_id: str, viewer: Viewer) -> Transaction:
    """One transaction with its hops in stage order, and its attempts that did not succeed
    (``Attempt``, in stage and number order: ``attempts_by_stage``).

    Raises ``Transaction.DoesNotExist`` if there is none, or if ``viewer`` may not see it:
    another user's transaction is as unknown as one that never existed.
    """
    hops = Prefetch("hops", queryset=Hop.objects.order_by("stage"))
    attempts = Prefetch("attempts", queryset=Attempt.objects.order_by("stage", "number"))
    return (
        _visible_to(viewer)
        .select_related("owner", "cancelled_by")
        .prefetch_related(hops, attempts)
        .get(id=transaction_id)
    )


def attempts_by_stage(transaction: Transaction) -> dict[int, list[Attempt]]:
    """The transaction's attempts that did not succeed, by stage (prefetched by
    ``transaction_get``). A hop's successful attempt is the hop itself."""
    by_stage: dict[int, list[Attempt]] = {}
    for attempt in transaction.attempts.all():
        by_stage.setdefault(attempt.stage, []).append(attempt)
    return by_stage


def attempt_next_number(*, transaction_id: str, stage: Stage) -> int:
    """The number the next attempt of a hop takes: 1, or one past those recorded (a task
    delivered again goes on counting).

    Every hop asks this once, so it is one plain SELECT by the unique (transaction, stage,
    number) index, as ``hop_find``: the ORM's building of the query cost more than the rest
    of the hop's database work.
    """
    key = Attempt._meta.get_field("transaction").get_db_prep_value(transaction_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(_ATTEMPT_LAST_SQL, [key, int(stage)])
        (last,) = cursor.fetchone()
    return (last or 0) + 1


_ATTEMPT_LAST_SQL = (
    'SELECT MAX("number")'  # noqa: S608
    f' FROM "{Attempt._meta.db_table}" WHERE "transaction_id" = %s AND "stage" = %s'
)


def transaction_status(*, transaction_id: str) -> str:
    """The transaction's status, read alone (raises ``Transaction.DoesNotExist``)."""
    return Transaction.objects.values_list("status", flat=True).get(id=transaction_id)


def transaction_find(*, owner: User | None, idempotency_key: str) -> Transaction | None:
    """The transaction ``owner`` recorded with an Idempotency-Key, if any.

    Keys are scoped to their owner; anonymous relays (``owner`` None) share one scope.
    """
    return Transaction.objects.filter(owner=owner, idempotency_key=idempotency_key).first()


def transaction_list_stale(*, before: datetime) -> list[UUID]:
    """Ids of transactions still pending although their deadline was before ``before``."""
    return list(
        Transaction.objects.filter(
            status=Transaction.Status.PENDING, deadline_at__lt=before
        ).values_list("id", flat=True)
    )


def hop_progress(*, transaction_id: str, stage: Stage) -> tuple[str | None, Hop | None]:
    """The transaction's status and the hop recorded for ``stage``, if any, in one SELECT:
    what each hop asks before it acts (``None`` status: no such transaction)."""
    key = Hop._meta.get_field("transaction").get_db_prep_value(transaction_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(_HOP_PROGRESS_SQL, [int(stage), key])
        row = cursor.fetchone()
    if row is None:
        return None, None
    status, found, text, topic, partition, offset, attempt = row
    if found is None:
        return status, None
    hop = Hop(
        transaction_id=transaction_id,
        stage=stage,
        text=text,
        kafka_topic=topic,
        kafka_partition=partition,
        kafka_offset=offset,
        attempt=attempt,
    )
    return status, hop


_HOP_PROGRESS_SQL = (
    'SELECT t."status", h."id", h."text", h."kafka_topic", h."kafka_partition",'  # noqa: S608
    ' h."kafka_offset", h."attempt"'
    f' FROM "{Transaction._meta.db_table}" t LEFT JOIN "{Hop._meta.db_table}" h'
    ' ON h."transaction_id" = t."id" AND h."stage" = %s WHERE t."id" = %s'
)


def hop_find(*, transaction_id: str, stage: Stage) -> Hop | None:
    """The hop recorded for ``stage`` of a transaction, if it happened.

    Every hop asks this before it acts, so it is one plain SELECT of the columns a re-run
    needs, by the unique (transaction, stage) index: a fifth of the ORM's cost.
    """
    key = Hop._meta.get_field("transaction").get_db_prep_value(transaction_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(_HOP_FIND_SQL, [key, int(stage)])
        row = cursor.fetchone()
    if row is None:
        return None
    text, topic, partition, offset = row
    return Hop(
        transaction_id=transaction_id,
        stage=stage,
        text=text,
        kafka_topic=topic,
        kafka_partition=partition,
        kafka_offset=offset,
    )


# The table and columns are the model's own; the values go as parameters.
_HOP_FIND_SQL = (
    'SELECT "text", "kafka_topic", "kafka_partition", "kafka_offset"'  # noqa: S608
    f' FROM "{Hop._meta.db_table}" WHERE "transaction_id" = %s AND "stage" = %s'
)


def hop_chain_end(*, transaction_id: str) -> str | None:
    """Hop 7's text if hops 1-7 of the transaction are all recorded, else ``None``: what hop 8
    answers from, and the only proof that the chain did its work.

    One plain SELECT, as ``hop_find``: how many hops before 8 there are (one per stage, by the
    unique index), and hop 7's text alone.
    """
    key = Hop._meta.get_field("transaction").get_db_prep_value(transaction_id, connection)
    last = Stage.KAFKA_CONSUME_REPLY
    with connection.cursor() as cursor:
        cursor.execute(_HOP_CHAIN_END_SQL, [int(last), key, int(Stage.REST_RESPONSE)])
        recorded, text = cursor.fetchone()
    return text if recorded == int(last) and text is not None else None


_HOP_CHAIN_END_SQL = (
    'SELECT COUNT(*), MAX(CASE WHEN "stage" = %s THEN "text" END)'  # noqa: S608
    f' FROM "{Hop._meta.db_table}" WHERE "transaction_id" = %s AND "stage" < %s'
)


#: How far back a lineage is followed: further than any operator reruns by hand.
LINEAGE_DEPTH = 100


def transaction_lineage(*, transaction_id: str) -> list[str]:
    """The transaction's id, then the id of the one it reruns, and so on back to the first
    (its root): one small SELECT per generation. A link lost to retention ends it early."""
    lineage = [str(transaction_id)]
    for _ in range(LINEAGE_DEPTH):
        parent = (
            Transaction.objects.filter(id=lineage[-1]).values_list("rerun_of_id", flat=True).first()
        )
        if parent is None:
            break
        lineage.append(str(parent))
    return lineage


def transaction_waiting_on(*, transaction_id: str) -> Stage:
    """The first hop not yet recorded: what the transaction was waiting on."""
    done = set(Hop.objects.filter(transaction_id=transaction_id).values_list("stage", flat=True))
    return next((stage for stage in Stage if stage not in done), Stage.REST_RESPONSE)


def api_token_list(*, username: str | None = None, prefix: str | None = None) -> QuerySet[ApiToken]:
    """Tokens of a user, or the token(s) starting with ``prefix`` (its shown characters)."""
    tokens = ApiToken.objects.select_related("user")
    if username is not None:
        tokens = tokens.filter(user__username=username)
    if prefix is not None:
        tokens = tokens.filter(prefix=prefix)
    return tokens


def bulk_job_get(*, job_id: str, viewer: Viewer) -> BulkJob:
    """A bulk job: staff see every one, a user only those they started. Raises
    ``BulkJob.DoesNotExist`` otherwise, as for a job that never existed."""
    jobs = BulkJob.objects.select_related("created_by", "cancelled_by")
    if not (viewer is None or is_staff(viewer)):
        jobs = jobs.filter(created_by_id=viewer.pk) if viewer.is_authenticated else jobs.none()
    return jobs.get(id=job_id)


def _progress_field(outcome: str) -> str:
    return f"progress_{outcome}"


def bulk_jobs_with_progress(jobs: QuerySet[BulkJob]) -> QuerySet[BulkJob]:
    """``jobs``, each with its items counted by outcome in the same query (which
    ``bulk_job_progress`` then reads): a list of jobs takes one query, not one more per job."""
    return jobs.annotate(
        **{
            _progress_field(outcome): Count("items", filter=Q(items__outcome=outcome))
            for outcome in BulkJobItem.Outcome.values
        }
    )


def bulk_job_progress(*, job: BulkJob) -> dict[str, int]:
    """How many of the job's items have each outcome (every outcome named, 0 if none): the
    counts ``bulk_jobs_with_progress`` read with the job, or else one query for them."""
    outcomes = BulkJobItem.Outcome.values
    if all(hasattr(job, _progress_field(outcome)) for outcome in outcomes):
        return {outcome: getattr(job, _progress_field(outcome)) for outcome in outcomes}
    counts = dict(
        BulkJobItem.objects.filter(job=job)
        .values_list("outcome")
        .annotate(n=Count("id"))
        .values_list("outcome", "n")
    )
    return {outcome: counts.get(outcome, 0) for outcome in outcomes}


def bulk_job_items(*, job: BulkJob, outcome: str | None = None) -> QuerySet[BulkJobItem]:
    """The job's items in its order, optionally only those with ``outcome``."""
    items = BulkJobItem.objects.filter(job=job).order_by("position")
    return items.filter(outcome=outcome) if outcome else items


def hop_last_consumed(*, transaction_id: str) -> Hop | None:
    """The last hop of the transaction that read a Kafka record back (3 or 7), if any: the
    record a dead letter copies."""
    consumers = (Stage.KAFKA_CONSUME_REQUEST, Stage.KAFKA_CONSUME_REPLY)
    return (
        Hop.objects.filter(
            transaction_id=transaction_id, stage__in=consumers, kafka_offset__isnull=False
        )
        .order_by("-stage")
        .first()
    )
