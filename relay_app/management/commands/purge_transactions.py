"""``manage.py purge_transactions --older-than DAYS``: delete old transactions and their hops,
and bulk jobs that ended that long ago with their items."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_app.services.retention import retention_purge

MAX_DAYS = 100 * 365


class Command(BaseCommand):
    help = (
        "Delete transactions created more than DAYS ago, with their hops; pending ones are left"
        " to settle first. Bulk jobs that ended more than DAYS ago go too, with their items;"
        " the audit trail stays. The worker's beat does this hourly with RELAY_RETENTION_DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="DAYS",
            default=settings.RELAY_RETENTION_DAYS,
            help="age in days, 0 for every settled transaction (default: RELAY_RETENTION_DAYS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than"]
        if days is None:
            raise CommandError("give --older-than DAYS (RELAY_RETENTION_DAYS is off)")
        if not 0 <= days <= MAX_DAYS:  # also refuses nan
            raise CommandError(f"--older-than must be from 0 to {MAX_DAYS} days, not {days:g}")
        deleted, jobs = retention_purge(older_than=timedelta(days=days))
        self.stdout.write(
            f"deleted {deleted} transaction(s) and {jobs} bulk job(s) older than {days:g} day(s)"
        )
