"""Django app configuration for the relay."""

from django.apps import AppConfig


class RelayAppConfig(AppConfig):
    name = "relay_app"
    verbose_name = "Relay"
    default_auto_field = "django.db.models.BigAutoField"
