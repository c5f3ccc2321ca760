"""``manage.py grpcserver``: run the relay's gRPC server (hop 5) in the foreground."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_app.grpc_server import serve


class Command(BaseCommand):
    help = "Serve relay.v1.Relay/Process with health checking and reflection until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--address", default=settings.GRPC_ADDRESS, help="host:port (default GRPC_ADDRESS)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            serve(options["address"])
        except OSError as exc:
            raise CommandError(str(exc)) from exc
