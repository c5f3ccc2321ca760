"""``manage.py settle_stale_transactions``: time out transactions nobody will ever settle."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from relay_app.services.transactions import transactions_settle_stale


class Command(BaseCommand):
    help = (
        "Mark timed_out every transaction still pending GRACE seconds after its deadline"
        " (its web process or worker died), with the hop it was waiting on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=settings.RELAY_STALE_GRACE_SECONDS,
            help="seconds past the deadline (default RELAY_STALE_GRACE_SECONDS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settled = transactions_settle_stale(grace_seconds=options["grace"])
        self.stdout.write(f"settled {settled} stale transaction(s)")
