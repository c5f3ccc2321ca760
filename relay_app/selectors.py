"""Reads of transactions and their hops."""

from datetime import datetime
from uuid import UUID

from django.db import connection
from django.db.models import Prefetch, QuerySet

from .hops import Stage
from .models import Hop, Transaction


def transaction_list(*, status: str | None = None) -> QuerySet[Transaction]:
    """Transactions newest first, optionally only those with ``status``."""
    transactions = Transaction.objects.order_by("-created_at")
    return transactions.filter(status=status) if status else transactions


def transaction_get(*, transaction_id: str) -> Transaction:
    """One transaction with its hops in stage order (raises ``Transaction.DoesNotExist``)."""
    hops = Prefetch("hops", queryset=Hop.objects.order_by("stage"))
    return Transaction.objects.prefetch_related(hops).get(id=transaction_id)


def transaction_status(*, transaction_id: str) -> str:
    """The transaction's status, read alone (raises ``Transaction.DoesNotExist``)."""
    return Transaction.objects.values_list("status", flat=True).get(id=transaction_id)


def transaction_find(*, idempotency_key: str) -> Transaction | None:
    """The transaction recorded for an Idempotency-Key, if any."""
    return Transaction.objects.filter(idempotency_key=idempotency_key).first()


def transaction_list_stale(*, before: datetime) -> list[UUID]:
    """Ids of transactions still pending although their deadline was before ``before``."""
    return list(
        Transaction.objects.filter(
            status=Transaction.Status.PENDING, deadline_at__lt=before
        ).values_list("id", flat=True)
    )


def hop_find(*, transaction_id: str, stage: Stage) -> Hop | None:
    """The hop recorded for ``stage`` of a transaction, if it happened.

    Every hop asks this before it acts, so it is a raw query: a quarter of the ORM's cost.
    """
    key = Hop._meta.get_field("transaction").get_db_prep_value(UUID(transaction_id), connection)
    # The table name is the model's own; the values go as parameters.
    query = f'SELECT * FROM "{Hop._meta.db_table}" WHERE "transaction_id" = %s AND "stage" = %s'  # noqa: S608
    return next(iter(Hop.objects.raw(query, [key, int(stage)])), None)


def transaction_waiting_on(*, transaction_id: str) -> Stage:
    """The first hop not yet recorded: what the transaction was waiting on."""
    done = set(Hop.objects.filter(transaction_id=transaction_id).values_list("stage", flat=True))
    return next((stage for stage in Stage if stage not in done), Stage.REST_RESPONSE)
