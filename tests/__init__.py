"""The relay's test suite, run with ``python manage.py test`` against real services."""
