"""Django app configuration for the relay."""

from django.apps import AppConfig


class RelayAppConfig(AppConfig):
    name = "relay_app"
    verbose_name = "Relay"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI schema's extensions before any schema is built, and the
        # relay's system checks.
        from . import checks  # noqa: F401
        from .api import schema  # noqa: F401
