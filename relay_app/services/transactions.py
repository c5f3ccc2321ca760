"""Writes to the transaction record: start, record hops and attempts, settle in exactly one
final state (cancelled among them)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db import transaction as db_transaction
from django.db.models import Field
from django.db.models.constants import OnConflict
from django.utils import timezone

from .. import tracing
from ..hops import Stage
from ..integrations import notices
from ..integrations.kafka_records import RecordCoordinates
from ..metrics import HOP_SECONDS
from ..models import Attempt, Hop, Transaction
from ..original_log import log_hop
from ..selectors import transaction_list_stale, transaction_waiting_on

# How long past its deadline an event stream leaves a pending transaction to whoever else
# settles it (its chain, its waiting view) before it times the transaction out itself.
# Short: every hop gives up at the deadline.
SETTLE_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class HopRecord:
    """One hop as it happened, ready to be recorded."""

    stage: Stage
    text: str
    started_at: datetime
    finished_at: datetime
    record: RecordCoordinates | None = None
    attempt: int = 1  # which attempt this is: the earlier ones failed (``attempt_record``)

    @property
    def ms(self) -> float:
        """How long the hop took, in milliseconds."""
        return round((self.finished_at - self.started_at).total_seconds() * 1000, 3)


def transaction_start(
    *,
    message: str,
    owner: User | None,
    deadline_at: datetime,
    idempotency_key: str | None = None,
) -> Transaction:
    """Record a new transaction of ``owner`` and perform hop 1 (``REST request``) on its message.

    Raises ``IntegrityError`` if ``owner`` already used ``idempotency_key``.
    """
    with tracing.hop_span(Stage.REST_REQUEST) as span, db_transaction.atomic():
        started_at = timezone.now()
        text = Stage.REST_REQUEST.spec.apply(message)
        transaction = Transaction.objects.create(
            owner=owner,
            message=message,
            deadline_at=deadline_at,
            idempotency_key=idempotency_key,
            trace_id=tracing.current_trace_id(),
        )
        span.set_attribute(tracing.TRANSACTION_ATTRIBUTE, str(transaction.id))
        hops_record(
            transaction_id=str(transaction.id),
            hops=[HopRecord(Stage.REST_REQUEST, text, started_at, timezone.now())],
            notify=False,
        )
    log_hop(Stage.REST_REQUEST, text, transaction_id=transaction.id)
    return transaction


def hops_record(*, transaction_id: str, hops: Sequence[HopRecord], notify: bool = True) -> int:
    """Record hops while the transaction is pending; a hop already recorded for its stage (a
    re-run task) is kept as it was. Returns how many were recorded now: none once the
    transaction has ended (cancelled, timed out, failed), since nothing happens to it after.

    ``notify``: tell the transaction's event streams (not for hop 1, which no stream can
    be waiting for yet, nor for hop 8, whose settlement tells them right after).

    Every hop records itself, so this is one plain INSERT ... SELECT that writes only while
    the transaction is pending and skips a conflict (SQLite's "OR IGNORE", PostgreSQL's "ON
    CONFLICT DO NOTHING"), each value prepared by its model field as the ORM would: a third
    of ``bulk_create``'s cost, with the same rows. On PostgreSQL the pending row is read FOR
    SHARE, so a cancellation committing at that moment is waited for and then seen.
    """
    key = _TRANSACTION_KEY.get_db_prep_value(transaction_id, connection)
    rows = [
        [
            *(
                field.get_db_prep_save(value, connection)
                for field, value in zip(_HOP_FIELDS, _hop_values(transaction_id, hop), strict=True)
            ),
            key,
            Transaction.Status.PENDING.value,
        ]
        for hop in hops
    ]
    recorded = 0
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute(_hop_insert_sql(), row)
            recorded += max(cursor.rowcount, 0)
    if recorded:
        for hop in hops:
            HOP_SECONDS.labels(hop.stage.slug).observe(hop.ms / 1000)
        if notify:
            _notify(transaction_id)
    return recorded


def _notify(transaction_id: str) -> None:
    """Tell the transaction's event streams to look again, once what changed is committed
    (at once outside a database transaction)."""
    db_transaction.on_commit(lambda: notices.notify(transaction_id))


_TRANSACTION_KEY: "Field[Any, Any]" = cast(Field, Transaction._meta.get_field("id"))
_HOP_FIELDS: "list[Field[Any, Any]]" = [
    cast(Field, Hop._meta.get_field(name))
    for name in (
        "transaction",
        "stage",
        "text",
        "started_at",
        "finished_at",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "attempt",
    )
]


def _hop_values(transaction_id: str, hop: HopRecord) -> tuple[object, ...]:
    """A hop's values in the order of ``_HOP_FIELDS``."""
    record = hop.record
    return (
        transaction_id,
        hop.stage,
        hop.text,
        hop.started_at,
        hop.finished_at,
        record["topic"] if record else "",
        record["partition"] if record else None,
        record["offset"] if record else None,
        hop.attempt,
    )


def _hop_insert_sql() -> str:
    ops = connection.ops
    columns = ", ".join(ops.quote_name(str(field.column)) for field in _HOP_FIELDS)
    placeholders = ", ".join(["%s"] * len(_HOP_FIELDS))
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    # The table and columns are the models' own; the values go as parameters.
    pending = (
        f"SELECT 1 FROM {ops.quote_name(Transaction._meta.db_table)}"  # noqa: S608
        f" WHERE {ops.quote_name('id')} = %s AND {ops.quote_name('status')} = %s{lock}"
    )
    return (
        f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)}"
        f" {ops.quote_name(Hop._meta.db_table)} ({columns}) SELECT {placeholders}"
        f" WHERE EXISTS ({pending})"
        f" {ops.on_conflict_suffix_sql([], OnConflict.IGNORE, [], [])}"
    ).rstrip()


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a hop that did not succeed, ready to be recorded."""

    stage: Stage
    number: int
    started_at: datetime
    finished_at: datetime
    outcome: Attempt.Outcome
    kind: str
    error: str
    retried: bool


def attempt_record(*, transaction_id: str, attempt: AttemptRecord) -> None:
    """Record an attempt that did not succeed, whatever the transaction's state (it is what
    happened); one already recorded under its number (a re-run task) is kept as it was. The
    transaction's event streams are told, so they show it as it ends."""
    Attempt.objects.bulk_create(
        [
            Attempt(
                transaction_id=transaction_id,
                stage=attempt.stage,
                number=attempt.number,
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
                outcome=attempt.outcome,
                kind=attempt.kind[:32],
                error=attempt.error,
                retried=attempt.retried,
            )
        ],
        ignore_conflicts=True,
    )
    _notify(transaction_id)


def transaction_succeed(*, transaction_id: str, final_message: str, last_hop: HopRecord) -> bool:
    """Mark the transaction succeeded and record its last hop (8), together; ``False`` if it had
    already ended otherwise, and then the hop is not recorded: a transaction that timed out
    or failed never shows a REST response."""
    with db_transaction.atomic():
        # Its row locked first (PostgreSQL; SQLite has one writer at a time): two waiters
        # settling it at once would otherwise each hold a share of it for hop 8 and wait for
        # the other's to update it, a deadlock. The second finds it settled.
        pending = Transaction.objects.select_for_update().filter(
            id=transaction_id, status=Transaction.Status.PENDING
        )
        if not list(pending.values_list("id", flat=True)):
            return False
        # Hop 8 first, while the transaction is pending (hops are recorded only then); if it
        # ended meanwhile, the settlement below does nothing and the hop goes with it.
        hops_record(transaction_id=transaction_id, hops=[last_hop], notify=False)
        succeeded = _settle(
            transaction_id, status=Transaction.Status.SUCCEEDED, final_message=final_message
        )
        if not succeeded:
            db_transaction.set_rollback(True)
    return succeeded


def transaction_cancel(*, transaction_id: str, by: User | None) -> bool:
    """Cancel the transaction for ``by`` (its owner or staff, checked by the caller): it ends
    ``cancelled``, with who and when; ``False`` if it had already ended (nothing changes).

    From then on no hop is recorded for it, its tasks not yet run do nothing, a gRPC call in
    progress is cancelled (the worker looks while it waits) and whoever waits for it is
    woken at once (the caller wakes them: ``relay_app/services/cancel.py``).
    """
    who = by.get_username() if by is not None else "the relay"
    return _settle(
        transaction_id,
        status=Transaction.Status.CANCELLED,
        cancelled_by=by,
        cancelled_at=timezone.now(),
        error=f"cancelled by {who}",
    )


def transaction_fail(
    *, transaction_id: str, timed_out: bool, stage: Stage | None, error: str
) -> bool:
    """Mark the transaction failed or timed out at ``stage``; ``False`` if it had already ended."""
    status = Transaction.Status.TIMED_OUT if timed_out else Transaction.Status.FAILED
    return _settle(transaction_id, status=status, failed_stage=stage, error=error)


def transaction_abandon(
    *, transaction_id: str, timed_out: bool, describe: Callable[[Stage], str]
) -> bool:
    """Fail or time out the transaction at the hop it was waiting on (the first not recorded).

    ``describe`` turns that hop into the reason recorded. ``False`` if it had already ended.
    """
    stage = transaction_waiting_on(transaction_id=transaction_id)
    return transaction_fail(
        transaction_id=transaction_id, timed_out=timed_out, stage=stage, error=describe(stage)
    )


def transaction_time_out(*, transaction_id: str) -> bool:
    """Time out the transaction at the hop it was waiting on: its deadline passed.

    ``False`` if it had already ended (the chain, a failing hop or another watcher won).
    """
    return transaction_abandon(
        transaction_id=transaction_id,
        timed_out=True,
        describe=lambda stage: (
            f"the deadline of {settings.RELAY_DEADLINE_SECONDS:g} s"
            f" passed while waiting on {stage.slug}" + _last_attempt_error(transaction_id, stage)
        ),
    )


def _last_attempt_error(transaction_id: str, stage: Stage) -> str:
    """Why the latest attempt from ``stage`` on did not succeed, as the reason's tail (empty
    if none did not): a deadline that ran out while a dependency was down then says so,
    whether the waiting view or the hop itself times the transaction out first."""
    error = (
        Attempt.objects.filter(transaction_id=transaction_id, stage__gte=stage)
        .exclude(error="")
        .order_by("-started_at")
        .values_list("error", flat=True)
        .first()
    )
    return f"; its last attempt: {error}" if error else ""


def transactions_settle_stale(*, grace_seconds: float) -> int:
    """Time out transactions still pending ``grace_seconds`` after their deadline.

    Such a transaction lost the process that was waiting for it (a web server killed
    mid-request, a chain lost with its worker); nothing else would ever settle it.
    """
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    settled = 0
    for transaction_id in transaction_list_stale(before=cutoff):
        settled += transaction_abandon(
            transaction_id=str(transaction_id),
            timed_out=True,
            describe=lambda stage: (
                f"still pending {grace_seconds:g} s after its deadline while waiting on"
                f" {stage.slug}: settled by the stale-transaction sweep"
            ),
        )
    return settled


def _settle(transaction_id: str, *, status: Transaction.Status, **fields: object) -> bool:
    # A conditional update: whoever settles first (the waiting view, a failing task) wins,
    # so a transaction ends in exactly one final state.
    updated = Transaction.objects.filter(
        id=transaction_id, status=Transaction.Status.PENDING
    ).update(status=status, finished_at=timezone.now(), **fields)
    if updated:
        _notify(transaction_id)
    return updated == 1


def transactions_purge(*, older_than: timedelta, batch_size: int = 500) -> int:
    """Delete settled transactions created more than ``older_than`` ago, with their hops.

    In small batches, so writers never wait long on the database. A transaction still
    pending is left to settle first (the stale sweep ends it); its waiter may still read it.
    """
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        batch = list(
            Transaction.objects.filter(created_at__lt=cutoff)
            .exclude(status=Transaction.Status.PENDING)
            .values_list("id", flat=True)[:batch_size]
        )
        if not batch:
            return deleted
        with db_transaction.atomic():
            Attempt.objects.filter(transaction_id__in=batch).delete()
            Hop.objects.filter(transaction_id__in=batch).delete()
            _, per_model = Transaction.objects.filter(id__in=batch).delete()
        deleted += per_model.get(Transaction._meta.label, 0)
