"""Production settings: no default secret, no DEBUG, hosts named explicitly."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
# Never the local development superuser: not created, and its password refused at login.
RELAY_DEVELOPMENT_SUPERUSER = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
