"""``manage.py ensure_development_superuser``: a local admin login for ``make run``."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from relay_app.auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME
from relay_app.services.accounts import development_superuser_ensure

BAR = "!" * 78


class Command(BaseCommand):
    help = (
        "Create the local development superuser if missing and print how to log in."
        " Refused unless the settings are development's; other settings refuse its password."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            state = development_superuser_ensure()
        except ImproperlyConfigured as exc:
            raise CommandError(f"refused: {exc}") from exc
        if state == "password changed":
            login = f"user {DEVELOPMENT_USERNAME!r} with the password you gave it"
        else:
            login = f"user {DEVELOPMENT_USERNAME!r}, password {DEVELOPMENT_PASSWORD!r} ({state})"
        lines = [
            BAR,
            "!! LOCAL DEVELOPMENT SUPERUSER: for this machine's development settings only.",
            f"!! Admin login: {login}",
            "!! Production settings never create this user and refuse this password.",
            BAR,
        ]
        self.stdout.write(self.style.WARNING("\n".join(lines)))
