"""The Celery app: configured from Django settings (``CELERY_*``), tasks found in installed apps.

A worker defaults to production settings, like every entry point that serves, and so does
the scheduler (``celery beat``): both refuse to start with an error of the system checks.
"""

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init

from relay_app.integrations.celery_redis import ChainEndBackend, keep_redis_clients

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.production")


class RelayCelery(Celery):
    """Celery whose results are stored in CELERY_RESULT_BACKEND's Redis by ``ChainEndBackend``,
    which a waiting view blocks on with one pop instead of a subscription per result."""

    def _get_backend(self) -> ChainEndBackend:
        return ChainEndBackend(app=self, url=self.conf.result_backend)  # type: ignore[no-untyped-call]


app = RelayCelery("relay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fixup closes every database connection before and after each task unless
# told to reuse them; reconnecting for every hop cost more CPU than the hop's own queries.
# Connections still close after this many tasks, and whenever Django finds them unusable.
app.conf.CELERY_DB_REUSE_MAX = 1000

# One Redis client per kombu channel, not one per publish or acknowledgement.
keep_redis_clients()


@worker_init.connect
def set_up_worker(**_: Any) -> None:
    """The start-up checks, then the worker's own signal handlers and tracing, in its main
    process (Django is set up by then): its pool processes inherit them."""
    from relay_app import tracing, worker
    from relay_app.checks import check_at_start
    from relay_app.metrics import start_afresh

    check_at_start("worker")
    start_afresh()
    worker.connect_signals()
    tracing.setup("worker")


@beat_init.connect
def check_beat(**_: Any) -> None:
    """The start-up checks in the scheduler, which runs apart from the workers in compose."""
    from relay_app.checks import check_at_start

    check_at_start("beat")
