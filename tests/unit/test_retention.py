"""Retention: old transactions are deleted with their hops, and bulk jobs that ended long ago
with their items; pending transactions, jobs still running, recent ones and the audit trail
stay."""

import uuid
from datetime import timedelta
from io import StringIO

from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings, tag
from django.utils import timezone

from relay_app import tasks
from relay_app.hops import Stage
from relay_app.models import AuditEntry, BulkJob, BulkJobItem, Hop, Transaction


def recorded(*, age_days: float, status: str = "succeeded") -> Transaction:
    """A transaction with all its hops, created ``age_days`` ago."""
    created = timezone.now() - timedelta(days=age_days)
    transaction = Transaction.objects.create(message="m", status=status, deadline_at=created)
    Transaction.objects.filter(id=transaction.id).update(created_at=created)
    Hop.objects.bulk_create(
        Hop(transaction=transaction, stage=stage, text="t", started_at=created, finished_at=created)
        for stage in Stage
    )
    return transaction


def job(*, age_days: float, status: str, items: int = 3) -> BulkJob:
    """A bulk job of ``items`` items, started ``age_days`` ago and, unless still queued or
    running, ended then too; with its audit entry, as ``bulk_job_start`` makes."""
    at = timezone.now() - timedelta(days=age_days)
    made = BulkJob.objects.create(action="cancel", source="api", reason="r", total=items)
    ended = at if status in ("finished", "cancelled") else None
    BulkJob.objects.filter(id=made.id).update(
        status=status, created_at=at, started_at=at, finished_at=ended
    )
    BulkJobItem.objects.bulk_create(
        BulkJobItem(job=made, position=n, transaction_id=uuid.uuid4(), outcome="done")
        for n in range(1, items + 1)
    )
    AuditEntry.objects.create(
        action=AuditEntry.Action.BULK_CANCEL,
        source=AuditEntry.Source.API,
        reason="r",
        details={"job": str(made.id)},
    )
    return made


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_transactions", *args, stdout=out)
    return out.getvalue()


@tag("postgres")
class RetentionTests(TestCase):
    def test_old_settled_transactions_go_with_their_hops_the_rest_stays(self) -> None:
        old = [recorded(age_days=40), recorded(age_days=31, status="timed_out")]
        kept = [recorded(age_days=29), recorded(age_days=45, status="pending")]
        self.assertIn("deleted 2 transaction(s)", purge("--older-than", "30"))
        self.assertEqual(
            set(Transaction.objects.values_list("id", flat=True)), {t.id for t in kept}
        )
        self.assertFalse(Hop.objects.filter(transaction_id__in=[t.id for t in old]).exists())
        self.assertEqual(Hop.objects.count(), len(Stage) * len(kept))

    def test_zero_days_deletes_every_settled_transaction(self) -> None:
        recorded(age_days=0.001)
        pending = recorded(age_days=0.001, status="pending")
        self.assertIn("deleted 1", purge("--older-than", "0"))
        self.assertEqual(list(Transaction.objects.values_list("id", flat=True)), [pending.id])

    def test_a_nonsense_age_is_refused(self) -> None:
        for days in ("-1", "nan", "inf"):
            with self.subTest(days=days), self.assertRaises(CommandError):
                purge("--older-than", days)

    @override_settings(RELAY_RETENTION_DAYS=30.0)
    def test_the_beat_purges_with_the_retention_setting(self) -> None:
        recorded(age_days=31)
        recorded(age_days=1)
        self.assertEqual(tasks.purge_transactions.apply().get(), 1)
        self.assertEqual(Transaction.objects.count(), 1)
        self.assertEqual(
            settings.CELERY_BEAT_SCHEDULE["purge-transactions"]["task"],
            tasks.purge_transactions.name,
        )

    def test_bulk_jobs_that_ended_long_ago_go_with_their_items_the_audit_trail_stays(
        self,
    ) -> None:
        old = [job(age_days=40, status="finished"), job(age_days=31, status="cancelled")]
        kept = [
            job(age_days=45, status="running"),
            job(age_days=45, status="queued"),
            job(age_days=29, status="finished"),
        ]
        entries = AuditEntry.objects.count()
        self.assertIn("and 2 bulk job(s) older than 30 day(s)", purge("--older-than", "30"))
        self.assertEqual(set(BulkJob.objects.values_list("id", flat=True)), {j.id for j in kept})
        self.assertFalse(BulkJobItem.objects.filter(job_id__in=[j.id for j in old]).exists())
        self.assertEqual(BulkJobItem.objects.count(), 3 * len(kept))
        self.assertEqual(AuditEntry.objects.count(), entries)
        self.assertEqual(
            {entry.details["job"] for entry in AuditEntry.objects.all()},
            {str(j.id) for j in old + kept},
        )

    @override_settings(RELAY_RETENTION_DAYS=30.0)
    def test_the_beat_purges_bulk_jobs_too_however_many_items(self) -> None:
        job(age_days=31, status="finished", items=1201)  # more than one batch of items
        running = job(age_days=31, status="running")
        self.assertEqual(tasks.purge_transactions.apply().get(), 0)
        self.assertEqual(list(BulkJob.objects.values_list("id", flat=True)), [running.id])
        self.assertEqual(BulkJobItem.objects.count(), 3)
