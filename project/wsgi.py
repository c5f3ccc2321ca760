"""WSGI entry point for gunicorn (``project.wsgi:application``).

Like every entry point that serves (``project.celery``, ``project.grpcserver``), it defaults
to production settings, which refuse to start without their secrets or with an error of the
system checks (``relay_app.checks.check_at_start``): development settings are chosen
explicitly (``make run``, ``make up`` and ``make test`` do).
"""

import os

from django.core.wsgi import get_wsgi_application

from relay_app import tracing
from relay_app.api.admission import admitting
from relay_app.checks import check_at_start

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.production")

# Before Django loads its middleware, which tracing adds to (gunicorn imports this module in
# each worker process, after its fork).
tracing.setup("web")
# A relay it cannot finish is refused before Django handles it (relay_app/api/admission.py).
application = admitting(get_wsgi_application())
check_at_start("web")
