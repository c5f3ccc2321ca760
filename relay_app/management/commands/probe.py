"""``manage.py probe web|grpc|worker``: does this container's process answer? For the health
checks of docker-compose.yml, which run it inside the process's own container."""

import http.client
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_app.services.health import grpc_serving

TIMEOUT_SECONDS = 3.0


def _web(address: str) -> None:
    """``/readyz`` answers 200: the web server runs and reaches every dependency."""
    host, _, port = (address or "127.0.0.1:8000").rpartition(":")
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=TIMEOUT_SECONDS)
    # As a client of a host the server serves would (a name of DJANGO_ALLOWED_HOSTS).
    served = next((h.lstrip(".") for h in settings.ALLOWED_HOSTS if h != "*"), "localhost")
    try:
        connection.request("GET", "/readyz", headers={"Host": served})
        response = connection.getresponse()
        body = response.read(2000).decode(errors="replace")
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"/readyz answered {response.status}: {body}")


def _grpc(address: str) -> None:
    grpc_serving(address or "127.0.0.1:50051")


def _worker(address: str) -> None:
    """The worker of this container (its node name, relay@<hostname>) answers a ping."""
    from relay_app.tasks import chain_app

    app = chain_app()

    node = address or f"relay@{socket.gethostname()}"
    if not app.control.ping(destination=[node], timeout=TIMEOUT_SECONDS):
        raise RuntimeError(f"the Celery worker {node} does not answer ping")


PROBES = {"web": _web, "grpc": _grpc, "worker": _worker}


class Command(BaseCommand):
    help = "Exit 0 if this container's web server, gRPC server or worker answers; else say why."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("process", choices=sorted(PROBES))
        parser.add_argument(
            "--address",
            default="",
            help="host:port of the server (default: its port on 127.0.0.1), or the worker's node",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            PROBES[options["process"]](options["address"])
        except Exception as exc:  # any failure means "not healthy", with its reason
            raise CommandError(f"{options['process']} does not answer: {exc}") from exc
        self.stdout.write(f"{options['process']}: ok")
