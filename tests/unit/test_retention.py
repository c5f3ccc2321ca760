"""Retention: old transactions are deleted with their hops; pending and recent ones stay."""

from datetime import timedelta
from io import StringIO

from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings, tag
from django.utils import timezone

from relay_app import tasks
from relay_app.hops import Stage
from relay_app.models import Hop, Transaction


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
