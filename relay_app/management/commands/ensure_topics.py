"""``manage.py ensure_topics``: create the relay's Kafka topics if they are missing."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_app.errors import DependencyUnavailable
from relay_app.integrations.kafka_records import ensure_relay_topics, relay_topics


class Command(BaseCommand):
    help = (
        "Create the request and reply topics and their dead-letter topics (<topic>.DLT;"
        " KAFKA_TOPIC_PARTITIONS partitions each) if missing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="retry this long while Kafka is unavailable or has too few brokers (at start)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        give_up = time.monotonic() + options["wait"]
        while True:
            try:
                created = ensure_relay_topics()
                break
            except DependencyUnavailable as exc:
                if time.monotonic() >= give_up:
                    raise CommandError(f"{exc} ({exc.internal})") from exc
                self.stderr.write(f"Kafka is not ready yet ({exc}); retrying")
                time.sleep(2)
        present = relay_topics()
        self.stdout.write(f"created: {', '.join(created)}" if created else f"present: {present}")
