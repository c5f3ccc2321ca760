"""Django app configuration for the relay."""

from django.apps import AppConfig


class RelayAppConfig(AppConfig):
    name = "relay_app"
    verbose_name = "Relay"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_save

        # Registers the OpenAPI schema's extensions before any schema is built, and the
        # relay's system checks.
        from . import checks  # noqa: F401
        from .api import schema  # noqa: F401
        from .services.audit import audit_admin_log_entry

        # Every change made in the admin goes into the audit trail, as Django logs it.
        post_save.connect(
            audit_admin_log_entry, sender=LogEntry, dispatch_uid="relay-audit-admin-changes"
        )
