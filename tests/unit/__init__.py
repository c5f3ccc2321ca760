"""Tests that need no running service: `make test-fast` (python manage.py test tests.unit)."""
