"""Test settings: the suite's own ports and ``var/test/``, so it never meets a running dev stack.

The test runner starts every process of the suite's stack with these settings, so they all
read the same values (profiles.TEST).
"""

from .environment import use_profile
from .profiles import TEST

use_profile(TEST)

from .base import *  # noqa: E402,F403

RELAY_ENVIRONMENT = "test"
RELAY_PROFILE = "test"

# Starts Redis, Kafka, the gRPC server and a Celery worker around the suite.
TEST_RUNNER = "tests.runner.StackTestRunner"
# Fast hashing for test users only.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files come straight from the apps (no collectstatic before the suite).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# Tests send bad requests on purpose: Django's "Bad Request" warnings would only be noise.
LOGGING["loggers"]["django.request"] = {"level": "ERROR"}  # noqa: F405
# ... and failed logins on purpose: django-axes's warnings for each, likewise.
LOGGING["loggers"]["axes"] = {"level": "ERROR"}  # noqa: F405
