"""``manage.py ensure_topics``: create the relay's Kafka topics if they are missing."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relay_app.errors import DependencyUnavailable
from relay_app.integrations.kafka_records import ensure_relay_topics


class Command(BaseCommand):
    help = "Create the request and reply topics (KAFKA_TOPIC_PARTITIONS partitions) if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            created = ensure_relay_topics()
        except DependencyUnavailable as exc:
            raise CommandError(f"{exc} ({exc.internal})") from exc
        topics = [settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC]
        self.stdout.write(f"created: {', '.join(created)}" if created else f"present: {topics}")
