"""Bulk actions: cancel or rerun every transaction a filter matched.

A dry run says what would be done to how many, with a sample, and why the others would be
skipped. The real run is a ``BulkJob``: its items are the transactions it may act on, taken
when it starts; a Celery task works through them in order, each item at most once, at
``RELAY_BULK_RATE`` for all jobs and processes together (one token bucket in Redis), so live
traffic keeps its throughput. A job is stopped between two items by ``bulk_job_cancel``.
Retention deletes a job, with its items, once it has ended long enough ago
(``bulk_jobs_purge``).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction as db_transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from ..integrations.rate_limit import get_rate_limiter
from ..models import AuditEntry, BulkJob, BulkJobItem, Transaction
from ..selectors import Viewer, bulk_job_get, transaction_get
from .audit import audit_record
from .cancel import transaction_cancel_by
from .rerun import RerunRefused, transaction_rerun

logger = logging.getLogger(__name__)

# How many transaction ids a dry run shows of those it would act on, and of each kind skipped.
SAMPLE_SIZE = 20
# A task works on a job this long at most, then queues the next step: a worker process is
# never held for long, and a task ends well within Celery's time limit.
STEP_SECONDS = 5.0
# The longest a step waits for the rate before the next one: below the broker's visibility
# timeout, so a delayed step is never delivered twice.
MAX_STEP_DELAY_SECONDS = 10.0
# One bucket for every job: the rate is what all bulk work together may take.
RATE_KEY = "bulk-items"

Status = Transaction.Status
# Why a transaction is skipped, by action and by its status; any other status is acted on.
SKIP_REASONS: dict[str, dict[str, str]] = {
    BulkJob.Action.CANCEL: {
        status: f"{status}: it has ended, only a pending transaction can be cancelled"
        for status in (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED)
    },
    BulkJob.Action.RERUN: {
        Status.PENDING: "pending: it has not ended, there is nothing to rerun yet",
        Status.SUCCEEDED: "succeeded: a rerun from a chosen hop is made one at a time",
    },
}


class BulkJobNotStarted(Exception):
    """The job could not be queued (Redis did not take it): it was stopped, nothing done."""


@dataclass(frozen=True)
class Skipped:
    """Transactions a bulk action would leave alone, for one reason."""

    reason: str
    count: int
    sample: list[str]


@dataclass(frozen=True)
class DryRun:
    """What a bulk action would do: to how many (``acting``), a sample, and what it skips."""

    action: str
    matched: int
    acting: int
    sample: list[str]
    skipped: list[Skipped] = field(default_factory=list)


def _acted_on(action: str) -> list[str]:
    return [status for status in Status.values if status not in SKIP_REASONS[action]]


def bulk_dry_run(*, action: str, transactions: QuerySet[Transaction]) -> DryRun:
    """What ``action`` would do to ``transactions`` (already scoped to the viewer), changing
    nothing: how many it would act on, a sample of them, and the rest by why."""
    by_status: dict[str, int] = dict(
        transactions.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    acting = _acted_on(action)
    skipped = [
        Skipped(
            reason=reason,
            count=by_status[status],
            sample=_ids(transactions.filter(status=status)[:SAMPLE_SIZE]),
        )
        for status, reason in SKIP_REASONS[action].items()
        if by_status.get(status)
    ]
    return DryRun(
        action=action,
        matched=sum(by_status.values()),
        acting=sum(by_status.get(status, 0) for status in acting),
        sample=_ids(transactions.filter(status__in=acting)[:SAMPLE_SIZE]),
        skipped=skipped,
    )


def _ids(transactions: QuerySet[Transaction]) -> list[str]:
    return [str(pk) for pk in transactions.values_list("id", flat=True)]


def bulk_job_start(
    *,
    viewer: User,
    action: str,
    transactions: QuerySet[Transaction],
    filters: dict[str, Any],
    reason: str,
    source: str,
) -> BulkJob:
    """Start ``action`` on ``transactions`` (already scoped to ``viewer``) as a background job
    for ``viewer``; the job, queued. Recorded in the audit trail, one entry for the job.

    Raises ``BulkJobNotStarted`` if the job could not be queued; it is then stopped.
    """
    dry_run = bulk_dry_run(action=action, transactions=transactions)
    with db_transaction.atomic():
        job = BulkJob.objects.create(
            action=action,
            created_by=viewer,
            source=source,
            reason=reason,
            filter=filters,
            skipped_at_start={skipped.reason: skipped.count for skipped in dry_run.skipped},
        )
        ids = list(transactions.filter(status__in=_acted_on(action)).values_list("id", flat=True))
        BulkJobItem.objects.bulk_create(
            (
                BulkJobItem(job=job, position=position, transaction_id=pk)
                for position, pk in enumerate(ids, start=1)
            ),
            batch_size=1000,
        )
        job.total = len(ids)
        job.save(update_fields=["total"])
        audit_record(
            actor=viewer,
            action=f"bulk_{action}",
            reason=reason,
            transactions=ids,
            details={
                "job": str(job.id),
                "filter": filters,
                "skipped": job.skipped_at_start,
            },
            source=source,
        )
    try:
        _queue_first_step(str(job.id))
    except (BrokerError, RedisError) as exc:
        logger.warning("bulk job %s not started: Redis did not take it (%r)", job.id, exc)
        _stop(job, by=None)
        raise BulkJobNotStarted(str(job.id)) from exc
    return job


def _queue_first_step(job_id: str) -> None:
    from ..tasks import bulk_job_continue

    bulk_job_continue.delay(job_id)


def bulk_job_cancel(*, job_id: str, viewer: Viewer, source: str) -> tuple[BulkJob, bool]:
    """Stop the job for ``viewer`` before its next item (the item being acted on, if any, is
    finished); the job as it is now, and whether this stopped it (``False``: it had ended).

    Raises ``BulkJob.DoesNotExist`` if ``viewer`` may not see it.
    """
    job = bulk_job_get(job_id=job_id, viewer=viewer)
    by = viewer if isinstance(viewer, User) else None
    with db_transaction.atomic():
        stopped = _stop(job, by=by)
        if stopped:
            audit_record(
                actor=by,
                action=AuditEntry.Action.BULK_JOB_CANCEL,
                reason=job.reason,
                details={"job": str(job.id), "not_run": stopped},
                source=source,
            )
    return bulk_job_get(job_id=job_id, viewer=None), bool(stopped)


def _stop(job: BulkJob, *, by: User | None) -> int:
    """Cancel the job if it has not ended, and mark its items not reached ``not_run``; how
    many those were, plus one (0: the job had already ended)."""
    ended = BulkJob.objects.filter(
        id=job.id, status__in=[BulkJob.Status.QUEUED, BulkJob.Status.RUNNING]
    ).update(status=BulkJob.Status.CANCELLED, cancelled_by=by, finished_at=timezone.now())
    if not ended:
        return 0
    not_run = BulkJobItem.objects.filter(job=job, outcome=BulkJobItem.Outcome.PENDING).update(
        outcome=BulkJobItem.Outcome.NOT_RUN
    )
    return not_run + 1


def bulk_job_step(*, job_id: str) -> float | None:
    """Act on the job's next items for up to ``STEP_SECONDS``, one at a time at the shared
    rate; in how many seconds the next step should run, or ``None`` once the job has ended.

    An item is taken by a conditional update, so no two steps act on one item; an item a dead
    worker left taken is taken again (a rerun repeats with its idempotency key, a cancel is
    harmless twice).
    """
    job = BulkJob.objects.select_related("created_by").filter(id=job_id).first()
    if job is None or job.status not in (BulkJob.Status.QUEUED, BulkJob.Status.RUNNING):
        return None
    BulkJob.objects.filter(id=job.id, status=BulkJob.Status.QUEUED).update(
        status=BulkJob.Status.RUNNING, started_at=timezone.now()
    )
    items = BulkJobItem.objects.filter(job=job)
    items.filter(outcome=BulkJobItem.Outcome.RUNNING).update(outcome=BulkJobItem.Outcome.PENDING)
    limiter = get_rate_limiter()
    until = time.monotonic() + STEP_SECONDS
    while time.monotonic() < until:
        status = BulkJob.objects.filter(id=job.id).values_list("status", flat=True).first()
        if status != BulkJob.Status.RUNNING:
            return None  # cancelled between two items
        item = items.filter(outcome=BulkJobItem.Outcome.PENDING).order_by("position").first()
        if item is None:
            BulkJob.objects.filter(id=job.id, status=BulkJob.Status.RUNNING).update(
                status=BulkJob.Status.FINISHED, finished_at=timezone.now()
            )
            return None
        wait = limiter.hit(RATE_KEY, settings.RELAY_BULK_RATE)
        if wait:
            return min(wait, MAX_STEP_DELAY_SECONDS)
        taken = items.filter(pk=item.pk, outcome=BulkJobItem.Outcome.PENDING).update(
            outcome=BulkJobItem.Outcome.RUNNING
        )
        if taken:
            outcome, detail, result = _act(job, item)
            items.filter(pk=item.pk, outcome=BulkJobItem.Outcome.RUNNING).update(
                outcome=outcome,
                detail=detail,
                result_transaction_id=result,
                finished_at=timezone.now(),
            )
    return 0.0


def _act(job: BulkJob, item: BulkJobItem) -> tuple[str, str, UUID | None]:
    """Do the job's action to one item's transaction: its outcome, why, and a rerun's new
    transaction. The transaction must still be one the job's operator may see."""
    transaction_id = str(item.transaction_id)
    if job.created_by is None:
        return BulkJobItem.Outcome.SKIPPED, "its operator's account was removed", None
    try:
        transaction = transaction_get(transaction_id=transaction_id, viewer=job.created_by)
    except Transaction.DoesNotExist:
        return BulkJobItem.Outcome.SKIPPED, "not found: removed, or no longer visible", None
    try:
        return ACTIONS[job.action](job, item, transaction)
    except Exception:
        # One item's failure is its own outcome; the job goes on with the next.
        logger.exception("bulk job %s: %s of %s failed", job.id, job.action, transaction_id)
        return BulkJobItem.Outcome.FAILED, "an internal error (in the worker's log)", None


def _cancel(
    job: BulkJob, item: BulkJobItem, transaction: Transaction
) -> tuple[str, str, UUID | None]:
    """Cancel one transaction for the job's operator (unless it has ended since)."""
    if transaction_cancel_by(transaction_id=str(transaction.id), by=job.created_by):
        return BulkJobItem.Outcome.DONE, "", None
    status = Transaction.objects.values_list("status", flat=True).get(id=transaction.id)
    return BulkJobItem.Outcome.SKIPPED, SKIP_REASONS[job.action][status], None


def _rerun(
    job: BulkJob, item: BulkJobItem, transaction: Transaction
) -> tuple[str, str, UUID | None]:
    """Rerun one transaction for the job's operator from the hop it stopped at, recorded in
    the audit trail as the job's; a key of the job's own makes a step done twice rerun once."""
    try:
        rerun = transaction_rerun(
            transaction,
            user=job.created_by,  # type: ignore[arg-type]  # checked by _act
            idempotency_key=f"bulk-{job.id}-{item.position}",
            reason=job.reason,
            source=AuditEntry.Source.JOB,
        )
    except RerunRefused as refused:
        return BulkJobItem.Outcome.SKIPPED, str(refused), None
    detail = "" if rerun.status == Transaction.Status.PENDING else f"the rerun {rerun.status}"
    return BulkJobItem.Outcome.DONE, detail, rerun.id


#: What a job does to each item, by action.
ACTIONS: dict[str, Callable[[BulkJob, BulkJobItem, Transaction], tuple[str, str, UUID | None]]] = {
    BulkJob.Action.CANCEL: _cancel,
    BulkJob.Action.RERUN: _rerun,
}


#: The states a job ends in: it acts on nothing more, and retention may delete it.
ENDED = (BulkJob.Status.FINISHED, BulkJob.Status.CANCELLED)


def bulk_jobs_purge(*, older_than: timedelta, batch_size: int = 500) -> int:
    """Delete bulk jobs that ended more than ``older_than`` ago, with their items; how many
    jobs. A job still queued or running stays, however old: it may yet act.

    The audit trail's entries for a job stay: an audit trail outlives what it audits (each
    names its job, who, why and how many transactions). Items go first, in batches (one job
    may have thousands), so writers never wait long on the database; then their jobs.
    """
    cutoff = timezone.now() - older_than
    ended = BulkJob.objects.filter(status__in=ENDED, finished_at__lt=cutoff)
    while items := list(
        BulkJobItem.objects.filter(job__in=ended).values_list("id", flat=True)[:batch_size]
    ):
        BulkJobItem.objects.filter(id__in=items).delete()
    deleted = 0
    while jobs := list(ended.values_list("id", flat=True)[:batch_size]):
        _, per_model = BulkJob.objects.filter(id__in=jobs).delete()
        deleted += per_model.get(BulkJob._meta.label, 0)
    return deleted
