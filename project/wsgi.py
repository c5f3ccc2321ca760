"""WSGI entry point for gunicorn (``project.wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.development")

application = get_wsgi_application()
