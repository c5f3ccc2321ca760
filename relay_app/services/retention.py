"""Retention: what is deleted once it is older than ``RELAY_RETENTION_DAYS`` (the worker's
beat, hourly) or ``--older-than`` (``manage.py purge_transactions``)."""

from datetime import timedelta

from .bulk import bulk_jobs_purge
from .transactions import transactions_purge


def retention_purge(*, older_than: timedelta) -> tuple[int, int]:
    """Delete settled transactions with their hops, and bulk jobs that ended, with their
    items, more than ``older_than`` ago: how many transactions, and how many jobs."""
    jobs = bulk_jobs_purge(older_than=older_than)
    return transactions_purge(older_than=older_than), jobs
